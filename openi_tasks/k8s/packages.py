"""kubeadm, kubelet and kubectl on a host: from the package repository, or from a directory of
binaries on the operator's machine (air-gapped clusters)."""

from __future__ import annotations

import shlex
from pathlib import Path

from ..errors import OpenIError
from ..inventory import FileWrite, Host
from ..localfiles import file_digest
from ..operations import ensure_files, write_change
from ..phase import Change, Run
from ..render import RenderedFile, render
from .facts import HostFacts

APT = "DEBIAN_FRONTEND=noninteractive apt-get -q -o Dpkg::Options::=--force-confold"
BINARIES = ("kubeadm", "kubelet", "kubectl")
KUBELET_UNIT = "/etc/systemd/system/kubelet.service"
KUBEADM_DROP_IN = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"


def repository_url(run: Run) -> str:
    k = run.cluster.kubernetes
    minor = ".".join(k.kubernetes_version.lstrip("v").split(".")[:2])
    return (k.package_repository or f"https://pkgs.k8s.io/core:/stable:/v{minor}/deb").rstrip("/")


def kubernetes_packages(run: Run, host: Host, facts: HostFacts) -> list[Change]:
    """Make it so: the configured Kubernetes version's kubeadm, kubelet and kubectl."""
    k = run.cluster.kubernetes
    if facts.kubeadm == k.kubernetes_version:
        return []
    if k.package_source == "binaries":
        return _from_binaries(run, host)
    repo = repository_url(run)
    version = k.kubernetes_version.lstrip("v")
    source = f"deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] {repo}/ /"
    pinned = " ".join(f"{name}={version}-*" for name in BINARIES)
    command = (
        f"{APT} update && {APT} install -y ca-certificates curl gpg conntrack socat && "
        f"install -m 0755 -d /etc/apt/keyrings && "
        f"curl -fsSL {shlex.quote(repo + '/Release.key')} | gpg --batch --yes --dearmor -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg && "
        f"printf '%s\\n' {shlex.quote(source)} > /etc/apt/sources.list.d/kubernetes.list && "
        f"{APT} update && {APT} install -y --allow-change-held-packages {pinned} && "
        f"apt-mark hold {' '.join(BINARIES)} && systemctl enable kubelet"
    )
    return [Change(f"install kubeadm, kubelet and kubectl {k.kubernetes_version} from {repo}: {command}",
                   lambda: host.sh(command, check=True))]


def _binaries(run: Run) -> dict[str, tuple[Path, str]]:
    """remote path -> (local file, its sha256), hashed once per run rather than once per host."""
    if "binaries" not in run.options:
        directory = Path(run.cluster.kubernetes.binaries_dir or "").expanduser()
        binaries = {}
        for name in BINARIES:
            local = directory / name
            if not local.is_file():
                raise OpenIError(f"{local} does not exist (kubernetes.binaries-dir must hold {', '.join(BINARIES)})")
            binaries[f"/usr/local/bin/{name}"] = (local, file_digest(local))
        run.options["binaries"] = binaries
    return run.options["binaries"]


def _from_binaries(run: Run, host: Host) -> list[Change]:
    binaries = _binaries(run)
    installed = host.sh_all([f"sha256sum {remote} 2>/dev/null" for remote in binaries])
    changes = []
    for (remote, (local, digest)), current in zip(binaries.items(), installed):
        if current.stdout.split()[:1] != [digest]:
            # Read piece by piece as it is sent: many hosts at once must not each hold a copy in memory.
            changes.append(write_change(host, f"upload {local} to {remote}", FileWrite(remote, local, 0o755)))
    changes += ensure_files(host, [RenderedFile(target, render(template))
                                   for template, target in (("k8s/kubelet/kubelet.service.j2", KUBELET_UNIT),
                                                            ("k8s/kubelet/10-kubeadm.conf.j2", KUBEADM_DROP_IN))])
    if changes:
        command = f"{APT} update && {APT} install -y conntrack socat && systemctl daemon-reload && systemctl enable kubelet"
        changes.append(Change(f"install kubelet's prerequisites and enable it: {command}",
                              lambda: host.sh(command, check=True)))
    return changes
