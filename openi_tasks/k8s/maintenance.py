"""`inv k8s.add`, `k8s.remove` and `k8s.repair`: change a running cluster with the deploy's phases.

- add: the deploy phases run over the cluster extended by the new hosts. Being idempotent, they
  change nothing on the existing hosts; new masters first join etcd one at a time (member add,
  then started with the live member list), then the control plane, one at a time.
- remove: refused when it would leave no master or etcd without quorum. Drains and deletes the
  Kubernetes Node (when the API answers), removes a master's etcd member, then resets the hosts
  with the clean phase. Removing a master takes an etcd snapshot first.
- repair: workers and the proxy node (its kubelet; the endpoint's haproxy, a Docker container of
  its own, keeps running). Resets the node's Kubernetes state, then joins it again with the
  deploy's prepare, docker and workers phases.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from ..config import Cluster, Machine
from ..errors import UsageError
from ..phase import PhaseOutcome, PhaseRunner, insert_after, insert_before
from ..report import Reporter
from ..run import open_run
from .etcd_client import member_health
from .files import member_of
from .phases import deploy_phases
from .phases.addons import Addons
from .phases.clean import Clean, StopKubernetes
from .phases.connect import Connect
from .phases.docker import Docker
from .phases.drain import DrainNodes
from .phases.endpoint import Endpoint
from .phases.facts import Facts
from .phases.gpu import GpuRuntime
from .phases.lock import Lock, Unlock
from .phases.membership import CheckNew, EtcdJoin, EtcdLeave, StopApiServer
from .phases.packages import ContainerRuntime, Packages
from .phases.prepare import Prepare
from .phases.reset import ResetKubelet
from .phases.snapshot import Snapshot
from .phases.workers import Workers
from .pki import ClusterPki


def extended(cluster: Cluster, new: list[Machine]) -> Cluster:
    """The cluster as it is with the new machines in it."""
    return dataclasses.replace(cluster, machines=cluster.machines + tuple(m for m in new if m.hostname not in cluster.by_name))


def add(cluster: Cluster, reporter: Reporter, nodes: list[Machine], *, dry_run: bool = False,
        only: Iterable[str] = (), skip: Iterable[str] = ()) -> list[PhaseOutcome]:
    bigger = extended(cluster, nodes)
    new = tuple(n.hostname for n in nodes)
    phases = insert_after(deploy_phases(), "facts", CheckNew(new))
    phases = insert_before(phases, "etcd", EtcdJoin(new))
    runner = PhaseRunner(phases, only=only, skip=skip)
    cluster.require_supported_versions()
    with open_run(bigger, reporter, "add", dry_run=dry_run) as run:
        return runner.run(run)


def check_removal(cluster: Cluster, pki: ClusterPki, gone: set[str]) -> None:
    """Refuse a removal that leaves no master, or etcd without the quorum to shrink."""
    remaining = [m for m in cluster.masters if m.hostname not in gone]
    if not remaining:
        raise UsageError("removing these hosts would leave the cluster without a master")
    leaving = {member_of(cluster, m).name for m in cluster.masters if m.hostname in gone}
    if not leaving:
        return
    health = member_health(cluster, pki)
    size = len(health)
    healthy_staying = [h.name for h in health if h.healthy and h.name not in leaving]
    needed = size // 2 + 1
    if len(healthy_staying) < needed:
        raise UsageError(
            f"etcd has {size} members; removing {', '.join(sorted(leaving))} needs {needed} healthy members "
            f"that stay, and only {len(healthy_staying)} ({', '.join(healthy_staying) or 'none'}) answer. "
            f"Nothing was changed."
        )


def remove(cluster: Cluster, reporter: Reporter, nodes: list[Machine], *, dry_run: bool = False) -> list[PhaseOutcome]:
    gone = frozenset(n.hostname for n in nodes)
    with open_run(cluster, reporter, "remove", dry_run=dry_run, targets=gone) as run:
        check_removal(cluster, run.pki, set(gone))
        # The lock is taken on the masters that stay: a removed master may already be gone. The
        # endpoint stops sending requests to removed masters before anything on them is stopped,
        # and their API servers stop before their etcd members leave.
        phases = [Connect(), Lock(excluding=gone), DrainNodes(), Endpoint(without=gone), StopApiServer(), EtcdLeave(), StopKubernetes(), Clean(),
                  Unlock(excluding=gone)]
        if any(cluster.by_name[name].is_master for name in gone):
            phases = insert_after(phases, "lock", Snapshot("remove", required=True))
        return PhaseRunner(phases).run(run)


def repair(cluster: Cluster, reporter: Reporter, nodes: list[Machine], *, dry_run: bool = False) -> list[PhaseOutcome]:
    refused = [n.hostname for n in nodes if n.is_master]
    if refused:
        raise UsageError(f"repair is for workers and the proxy node; {', '.join(refused)} run etcd and the control "
                         f"plane (k8s.etcdfix repairs an etcd member; k8s.remove, then k8s.add, a master)")
    cluster.require_supported_versions()
    with open_run(cluster, reporter, "repair", dry_run=dry_run, targets=[n.hostname for n in nodes]) as run:
        # The add-ons phase gives the rejoined Node its labels (the machine's flags) again.
        phases = [Connect(), Facts(rejoining=True), Lock(), DrainNodes(), ResetKubelet(), Prepare(), Docker(), Packages(),
                  GpuRuntime(), ContainerRuntime(), Workers(), Addons(), Unlock()]
        return PhaseRunner(phases).run(run)
