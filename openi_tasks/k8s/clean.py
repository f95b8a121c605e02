"""`inv k8s.clean`: undo what deploy put on the hosts, leaving them ready for a fresh deploy.

Removed: the containers deploy started, kubeadm's state (`kubeadm reset`), the files it wrote and
the data directories (etcd's data too). Kept: Docker and the Kubernetes packages (software, not
state), the /etc/hosts fix, and the CAs in the state directory (a new deploy reuses them).
"""

from __future__ import annotations

import shlex

from ..config import Cluster
from ..inventory import Host, Inventory
from ..operations import ensure_absent
from ..phase import Change, Phase, PhaseOutcome, PhaseRunner, Run
from ..report import Reporter
from ..state import state_dir
from .containers import managed_containers
from .files import CONTAINERD_CONFIG, MODULES_LOAD, SYSCTL_CONF
from .kubeconfig import admin_path
from .phases.connect import Connect
from .phases.lock import LOCK, Lock, Unlock

FILES = ("/etc/openi", "/etc/kubernetes", "/var/lib/kubelet", "/etc/cni/net.d/10-flannel.conflist",
         MODULES_LOAD, SYSCTL_CONF)


class Clean(Phase):
    name = "clean"
    title = "Remove what deploy put on every host"

    def plan(self, run: Run, host: Host) -> list[Change]:
        changes = []
        if host.sh("command -v kubeadm && test -e /etc/kubernetes/kubelet.conf -o -e /etc/kubernetes/manifests").exited == 0:
            changes.append(Change("reset kubeadm's state (kubeadm reset -f)",
                                  lambda: host.sh("kubeadm reset -f", check=True)))
        for name in managed_containers(host):
            changes.append(Change(f"remove container {name}",
                                  lambda n=name: host.sh(f"docker rm -f {shlex.quote(n)}", check=True)))
        paths = FILES + (run.cluster.kubernetes.etcd_data_path,) + _var_lib_openi(host)
        for path in dict.fromkeys(paths):
            changes += ensure_absent(host, path)
        containerd = ensure_absent(host, CONTAINERD_CONFIG)
        if containerd:
            changes += containerd + [Change("restart containerd with its default configuration",
                                            lambda: host.sh("systemctl restart containerd", check=True))]
        return changes

    def after(self, run: Run) -> None:
        for stale in (admin_path(run.state_dir), run.state_dir / "kubeadm" / "bootstrap-token"):
            stale.unlink(missing_ok=True)


def _var_lib_openi(host: Host) -> tuple[str, ...]:
    """Everything in /var/lib/openi but the cluster lock, which unlock removes last."""
    lock = shlex.quote(LOCK.rsplit("/", 1)[1])
    return tuple(host.sh(f"find /var/lib/openi -mindepth 1 -maxdepth 1 ! -name {lock} 2>/dev/null").stdout.split())


def clean(cluster: Cluster, reporter: Reporter, dry_run: bool = False, break_lock: bool = False) -> list[PhaseOutcome]:
    with Inventory(cluster) as inventory:
        run = Run(cluster, inventory, reporter, dry_run=dry_run, state_dir=state_dir(cluster),
                  options={"break_lock": break_lock})
        return PhaseRunner([Connect(), Lock(), Clean(), Unlock()]).run(run)
