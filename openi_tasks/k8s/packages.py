"""kubeadm, kubelet and kubectl on a host: from the package repository, or from a directory of
binaries on the operator's machine (air-gapped clusters)."""

from __future__ import annotations

import shlex

from ..operations import ensure_files
from ..phase import Change
from ..render import RenderedFile, render
from ..run import Run
from ..ssh import FileWrite, Host
from .binaries import NAMES
from .hostfacts import HostFacts

APT = "DEBIAN_FRONTEND=noninteractive apt-get -q -o Dpkg::Options::=--force-confold"
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
    pinned = " ".join(f"{name}={version}-*" for name in NAMES)
    command = (
        f"{APT} update && {APT} install -y ca-certificates curl gpg conntrack socat && "
        f"install -m 0755 -d /etc/apt/keyrings && "
        f"curl -fsSL {shlex.quote(repo + '/Release.key')} | gpg --batch --yes --dearmor -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg && "
        f"printf '%s\\n' {shlex.quote(source)} > /etc/apt/sources.list.d/kubernetes.list && "
        f"{APT} update && {APT} install -y --allow-change-held-packages {pinned} && "
        f"apt-mark hold {' '.join(NAMES)} && systemctl enable kubelet"
    )
    return [Change(f"install kubeadm, kubelet and kubectl {k.kubernetes_version} from {repo}: {command}", command)]


def _from_binaries(run: Run, host: Host) -> list[Change]:
    binaries = run.binaries.files
    installed = host.sh_all([f"sha256sum {b.remote} 2>/dev/null" for b in binaries])
    # Read piece by piece as they are sent: many hosts at once must not each hold a copy in memory.
    changes = [Change(f"upload {b.local} to {b.remote}", FileWrite(b.remote, b.local, 0o755))
               for b, current in zip(binaries, installed) if current.stdout.split()[:1] != [b.digest]]
    changes += ensure_files(host, [RenderedFile(target, render(template))
                                   for template, target in (("k8s/kubelet/kubelet.service.j2", KUBELET_UNIT),
                                                            ("k8s/kubelet/10-kubeadm.conf.j2", KUBEADM_DROP_IN))])
    if changes:
        command = f"{APT} update && {APT} install -y conntrack socat && systemctl daemon-reload && systemctl enable kubelet"
        changes.append(Change(f"install kubelet's prerequisites and enable it: {command}", command))
    return changes
