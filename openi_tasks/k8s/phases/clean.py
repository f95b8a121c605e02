"""clean: undo what deploy put on a host, leaving it ready for a fresh deploy.

Removed: the containers deploy started, kubeadm's state (`kubeadm reset`), the files it wrote and
the data directories (etcd's data too). Kept: Docker and the Kubernetes packages (software, not
state), the /etc/hosts fix, and the CAs in the state directory (a new deploy reuses them).
"""

from __future__ import annotations

import shlex

from ...operations import ensure_absent
from ...phase import Change, Phase
from ...run import Run
from ...ssh import Host
from ..containers import managed_containers
from ..files import MODULES_LOAD, SYSCTL_CONF
from .lock import LOCK
from .packages import CONTAINERD_CONFIG
from .reset import NETWORK

FILES = ("/etc/openi", "/etc/kubernetes", "/var/lib/kubelet", "/etc/cni/net.d/10-flannel.conflist",
         MODULES_LOAD, SYSCTL_CONF)
VAR_LIB_OPENI = "/var/lib/openi"


class Clean(Phase):
    """`forget_cluster`: also drop the admin kubeconfig and join token from the state directory
    (the whole cluster is gone); not when only some hosts are removed."""

    name = "clean"
    title = "Remove what deploy put on the hosts"

    def __init__(self, forget_cluster: bool = False) -> None:
        self.forget_cluster = forget_cluster

    def plan(self, run: Run, host: Host) -> list[Change]:
        changes = []
        if host.sh("command -v kubeadm && test -e /etc/kubernetes/kubelet.conf -o -e /etc/kubernetes/manifests").exited == 0:
            changes.append(Change("reset kubeadm's state (kubeadm reset -f)", "kubeadm reset -f"))
        if host.sh("ip link show cni0 || ip link show flannel.1 || test -e /var/lib/cni").exited == 0:
            changes.append(Change("remove the pod network's interfaces and IP allocations", NETWORK))
        for name in managed_containers(host):
            changes.append(Change(f"remove container {name}", f"docker rm -f {shlex.quote(name)}"))
        changes += ensure_absent(host, FILES + (run.cluster.kubernetes.etcd_data_path,))
        changes += _var_lib_openi(host)
        containerd = ensure_absent(host, [CONTAINERD_CONFIG])
        if containerd:
            changes += containerd + [Change("restart containerd with its default configuration",
                                            "systemctl restart containerd")]
        return changes

    def after(self, run: Run) -> None:
        if self.forget_cluster:
            for stale in (run.state.admin_conf, run.state.bootstrap_token):
                stale.unlink(missing_ok=True)


def _var_lib_openi(host: Host) -> list[Change]:
    """Everything in /var/lib/openi but the cluster lock, which unlock removes last. The names are
    read NUL-separated and removed by `find` itself, so no name is ever split into words."""
    keep = shlex.quote(LOCK.rsplit("/", 1)[1])
    listing = host.sh(f"find {VAR_LIB_OPENI} -mindepth 1 -maxdepth 1 ! -name {keep} -print0 2>/dev/null")
    names = [name for name in listing.stdout.split("\0") if name]
    if not names:
        return []
    remove = f"find {VAR_LIB_OPENI} -mindepth 1 -maxdepth 1 ! -name {keep} -exec rm -rf -- {{}} +"
    return [Change(f"remove {', '.join(repr(n) if n != n.strip() or ' ' in n else n for n in names)}", remove)]
