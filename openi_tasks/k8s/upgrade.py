"""`inv k8s.upgrade --to VERSION`: a rolling upgrade of Kubernetes (and of etcd, when its image changes).

The configuration says what the cluster should run: the operator first sets
`kubernetes.kubernetes-version` to the target (and points `binaries-dir` at the target's bundle);
`--to` repeats the version, so that an edit by mistake upgrades nothing. Then, under the cluster
lock: the plan (refusals before any change), an etcd snapshot, the target's kubeadm and images
(etcd's too) on the masters, etcd one member at a time, the first master (`kubeadm upgrade apply`), the other
masters one at a time (`kubeadm upgrade node`), the workers in batches of `--batch`, and the
operator's admin.conf (kubeadm renewed its certificate). Phases: phases/upgrade.py.
"""

from __future__ import annotations

from ..config import Cluster
from ..errors import UsageError
from ..phase import PhaseOutcome, PhaseRunner
from ..report import Reporter
from ..run import open_run
from .backup import operator_pki
from .phases.connect import Connect
from .phases.facts import Facts
from .phases.kubeconfig import Kubeconfig
from .phases.lock import Lock, Unlock
from .phases.upgrade import (PlanUpgrade, Upgrade, UpgradeEtcd, UpgradeNodes, UpgradePreflight, UpgradeSnapshot,
                             worker_batches)
from .versions import target_version


def upgrade(cluster: Cluster, reporter: Reporter, to: str, batch: int = 1, dry_run: bool = False,
            break_lock: bool = False) -> list[PhaseOutcome]:
    target = target_version(to)
    configured = cluster.kubernetes.kubernetes_version
    if configured != str(target):
        raise UsageError(f"--to {target}, but kubernetes-configuration says kubernetes-version: {configured}: set it to "
                         f"{target} (and binaries-dir to the bundle of {target}) first, so that the configuration says "
                         f"what the cluster runs")
    if batch < 1:
        raise UsageError("--batch must be at least 1")
    operator_pki(cluster)
    state = Upgrade(target)
    masters = [m.hostname for m in cluster.masters]
    workers = [m.hostname for m in cluster.machines if not m.is_master]
    phases = [
        Connect(), Facts(upgrading=True), Lock(break_lock=break_lock), PlanUpgrade(state), UpgradeSnapshot(state),
        UpgradePreflight(state), UpgradeEtcd(),
        UpgradeNodes(state, "upgrade-first-master", f"Upgrade the first master {masters[0]}: kubeadm upgrade apply",
                     masters[:1], parallel=False),
        *([UpgradeNodes(state, "upgrade-masters", "Upgrade the other masters, one at a time: kubeadm upgrade node",
                        masters[1:], parallel=False)] if masters[1:] else []),
        *worker_batches(state, workers, batch),
        Kubeconfig(), Unlock(),
    ]
    with open_run(cluster, reporter, "upgrade", dry_run=dry_run) as run:
        return PhaseRunner(phases).run(run)
