"""packages: what kubelet needs on every node, in parallel: kubeadm, kubelet and kubectl (from the
package repository, or from the bundle in `binaries-dir`), the CNI plugins and kubelet's upstream
resolvers. It runs together with the etcd and endpoint phases: it touches nothing they use.

container-runtime, after them: containerd's CRI configured for kubelet. Its sandbox (pause) image
is the one the host's own kubeadm asks for, so kubeadm and containerd never disagree; on a host
that may not lower OOM scores (itself a container), containerd is told not to ask runc to. A
changed configuration restarts containerd; Docker's containers (etcd, haproxy) keep running.
On a host whose machine type has GPUs, NVIDIA's runtime is one of containerd's runtimes (see gpu.py).
"""

from __future__ import annotations

import re
import shlex

from ...operations import ensure_file, ensure_files
from ...phase import Change, Phase
from ...render import RenderedFile, render
from ...run import Run
from ...ssh import Host
from ..binaries import NAMES
from ..hostfacts import HostFacts
from ..kubeadm import KUBELET_RESOLV_CONF
from ..runtime import BIN_DIR as OWN_BIN_DIR, OWN, ROOT as OWN_ROOT, STATE as OWN_STATE, UNIT as OWN_UNIT, \
    Runtime, runtime_of
from .facts import facts_of

APT = "DEBIAN_FRONTEND=noninteractive apt-get -q -o Dpkg::Options::=--force-confold"
KUBELET_UNIT = "/etc/systemd/system/kubelet.service"
KUBEADM_DROP_IN = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
NVIDIA_RUNTIME = "/usr/bin/nvidia-container-runtime"  # containerd's runtime `nvidia` (see gpu.py)
CNI_BIN = "/opt/cni/bin"


def repository_url(run: Run) -> str:
    k = run.cluster.kubernetes
    minor = ".".join(k.kubernetes_version.lstrip("v").split(".")[:2])
    return (k.package_repository or f"https://pkgs.k8s.io/core:/stable:/v{minor}/deb").rstrip("/")


class Packages(Phase):
    name = "packages"
    title = "kubeadm, kubelet, kubectl, CNI plugins and containerd's CRI on every node"

    def plan(self, run: Run, host: Host) -> list[Change]:
        facts = facts_of(run, host)
        k = run.cluster.kubernetes
        installed = facts.kubeadm == k.kubernetes_version and facts.kubelet == k.kubernetes_version
        changes = [] if installed else self._packages(run, host)
        changes += self._cni_plugins(run, host)
        if run.cluster.kubernetes.cluster_dns is not None:
            upstream = f"# Written by openi-tasks: kubernetes.cluster-dns, the upstream of cluster DNS.\n" \
                       f"nameserver {run.cluster.kubernetes.cluster_dns}\n"
            changes += ensure_file(host, RenderedFile(KUBELET_RESOLV_CONF, upstream))
        return changes

    def _packages(self, run: Run, host: Host) -> list[Change]:
        if run.cluster.kubernetes.package_source == "binaries":
            return _from_binaries(run, host)
        return [_from_repository(run)]

    def _cni_plugins(self, run: Run, host: Host) -> list[Change]:
        """From the bundle; with the package repository, its kubernetes-cni package brings them."""
        if run.cluster.kubernetes.package_source != "binaries":
            return []
        plugins = run.binaries.cni
        installed = host.sh_all([f"sha256sum {CNI_BIN}/{b.name} 2>/dev/null" for b in plugins])
        return [Change(f"install CNI plugin {b.name} into {CNI_BIN}", b.write(f"{CNI_BIN}/{b.name}"))
                for b, current in zip(plugins, installed) if current.stdout.split()[:1] != [b.digest]]


def install_changes(run: Run, host: Host, names: tuple[str, ...]) -> list[Change]:
    """Of kubeadm, kubelet and kubectl, `names` at the configured version (from the bundle, those
    whose copy differs; or from the package repository): what an upgrade installs, step by step."""
    if run.cluster.kubernetes.package_source == "binaries":
        return binary_uploads(run, host, names)
    return [_from_repository(run, names)]


def _from_repository(run: Run, names: tuple[str, ...] = NAMES) -> Change:
    k = run.cluster.kubernetes
    repo = repository_url(run)
    version = k.kubernetes_version.lstrip("v")
    keyring = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
    pinned = " ".join(f"{name}={version}-*" for name in names)
    command = (
        f"{APT} update && {APT} install -y ca-certificates curl gpg conntrack socat && "
        f"{add_apt_repository(repo + '/Release.key', keyring, f'deb [signed-by={keyring}] {repo}/ /', 'kubernetes')} && "
        f"{APT} update && {APT} install -y --allow-change-held-packages {pinned} && "
        f"apt-mark hold {' '.join(names)} && systemctl enable kubelet"
    )
    return Change(f"install {', '.join(names)} {k.kubernetes_version} from {repo}: {command}", command)


def add_apt_repository(key_url: str, keyring: str, source: str, name: str) -> str:
    """The command that trusts an apt repository's (armored) signing key in `keyring` and lists
    `source` in /etc/apt/sources.list.d/<name>.list (curl and gpg must be installed)."""
    return (f"install -m 0755 -d /etc/apt/keyrings && "
            f"curl -fsSL {shlex.quote(key_url)} | gpg --batch --yes --dearmor -o {keyring} && "
            f"printf '%s\\n' {shlex.quote(source)} > /etc/apt/sources.list.d/{name}.list")


def binary_uploads(run: Run, host: Host, names: tuple[str, ...] = NAMES) -> list[Change]:
    """The bundle's `names` (of kubeadm, kubelet, kubectl) whose copy on the host differs."""
    binaries = [b for b in run.binaries.files if b.name in names]
    installed = host.sh_all([f"sha256sum {b.remote} 2>/dev/null" for b in binaries])
    # Read piece by piece as they are sent: many hosts at once must not each hold a copy in memory.
    return [Change(f"upload {b.local} to {b.remote}", b.write())
            for b, current in zip(binaries, installed) if current.stdout.split()[:1] != [b.digest]]


def _from_binaries(run: Run, host: Host) -> list[Change]:
    changes = binary_uploads(run, host)
    changes += ensure_files(host, [RenderedFile(target, render(template))
                                   for template, target in (("k8s/kubelet/kubelet.service.j2", KUBELET_UNIT),
                                                            ("k8s/kubelet/10-kubeadm.conf.j2", KUBEADM_DROP_IN))])
    if changes:
        command = f"{APT} update && {APT} install -y conntrack socat && systemctl daemon-reload && systemctl enable kubelet"
        changes.append(Change(f"install kubelet's prerequisites and enable it: {command}", command))
    return changes


def kubeadm_images(run: Run, host: Host) -> list[str]:
    """The images the host's kubeadm (of the configured version) names: the control plane's,
    kube-proxy, CoreDNS, the sandbox (pause) image and etcd, from the configured registry."""
    k = run.cluster.kubernetes
    listed = host.sh(f"kubeadm config images list --kubernetes-version {shlex.quote(k.kubernetes_version)} "
                     f"--image-repository {shlex.quote(k.docker_registry)}", check=True)
    return listed.stdout.split()


def sandbox_image(run: Run, host: Host) -> str:
    """The pause image the host's kubeadm (of the configured version) will ask containerd for."""
    return next(ref for ref in kubeadm_images(run, host) if "/pause:" in ref)


def containerd_release(run: Run, facts: HostFacts) -> tuple[int, int]:
    """(major, minor) of kubelet's runtime: openi-tasks' own, or the host's (1.6 when unknown)."""
    version = run.cluster.kubernetes.containerd_version if runtime_of(run.cluster).own else facts.containerd
    numbers = re.match(r"v?(\d+)\.(\d+)", version or "")
    return (int(numbers[1]), int(numbers[2])) if numbers else (1, 6)


def containerd_config(run: Run, host: Host, facts: HostFacts, pause: str) -> RenderedFile:
    """The configuration of kubelet's runtime: openi-tasks' own containerd 2.x, or the host's (in the
    format of its version)."""
    runtime = runtime_of(run.cluster)
    release = containerd_release(run, facts)
    nvidia = {"binary": NVIDIA_RUNTIME, "default": run.cluster.kubernetes.gpu_default_runtime} \
        if host.machine.gpu_count else None
    own = {"root": OWN_ROOT, "state": OWN_STATE, "address": runtime.address} if runtime.own else None
    text = render("k8s/containerd/config.toml.j2", sandbox_image=pause, containerd=release,
                  restrict_oom_score_adj=not facts.cap_sys_resource, nvidia=nvidia, own=own)
    return RenderedFile(runtime.config, text)


def restart_runtime(runtime: Runtime) -> str:
    """Restart kubelet's runtime and wait until it answers. The host's containerd is Docker's too:
    Docker is started again if its restart took it down; its containers keep running."""
    if not runtime.own:
        return "systemctl restart containerd && (systemctl is-active --quiet docker || systemctl restart docker)"
    return (f"systemctl daemon-reload && systemctl enable {runtime.service} && systemctl restart {runtime.service} && "
            f"for try in $(seq 1 100); do {runtime.ctr} version >/dev/null 2>&1 && exit 0; sleep 0.1; done; "
            f"echo '{runtime.service} does not answer on {runtime.address}' >&2; exit 1")


class ContainerRuntime(Phase):
    name = "container-runtime"
    title = "kubelet's container runtime (containerd's CRI) on every node"

    def plan(self, run: Run, host: Host) -> list[Change]:
        facts = facts_of(run, host)
        runtime = runtime_of(run.cluster)
        if host.sh("command -v kubeadm").exited != 0:
            if run.dry_run:  # the packages phase would have installed it
                return [Change(f"configure kubelet's runtime ({runtime.service}) in {runtime.config} (sandbox image "
                               f"from kubeadm {run.cluster.kubernetes.kubernetes_version}) and restart it",
                               lambda: None)]
            raise FileNotFoundError(f"{host.name}: kubeadm is not installed: run the packages phase first")
        changes = own_runtime_files(run, host) if runtime.own else []
        changes += ensure_file(host, containerd_config(run, host, facts, sandbox_image(run, host)))
        if changes:
            return changes + [Change(f"restart {runtime.service} to load its binaries and configuration",
                                     restart_runtime(runtime))]
        if runtime.own and host.sh(f"systemctl is-active --quiet {runtime.service}").exited != 0:
            return [Change(f"start {runtime.service}", restart_runtime(runtime))]
        return []


def own_runtime_files(run: Run, host: Host) -> list[Change]:
    """openi-tasks' containerd, its runc shim, ctr and runc from the bundle (those whose copy
    differs), and its systemd unit."""
    binaries = run.binaries.containerd
    installed = host.sh_all([f"sha256sum {OWN_BIN_DIR}/{b.name} 2>/dev/null" for b in binaries])
    changes = [Change(f"install {b.name} {b.local} into {OWN_BIN_DIR}", b.write(f"{OWN_BIN_DIR}/{b.name}"))
               for b, current in zip(binaries, installed) if current.stdout.split()[:1] != [b.digest]]
    unit = render("k8s/containerd/openi-containerd.service.j2", version=run.cluster.kubernetes.containerd_version,
                  bin_dir=OWN_BIN_DIR, config=OWN.config)
    return changes + ensure_file(host, RenderedFile(OWN_UNIT, unit))
