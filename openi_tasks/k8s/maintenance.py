"""`inv k8s.add`, `k8s.remove` and `k8s.repair`: change a running cluster with the deploy's phases.

- add: the deploy phases run over the cluster extended by the new hosts. Being idempotent, they
  change nothing on the existing hosts; new masters first join etcd one at a time (member add,
  then started with the live member list), then the control plane, one at a time.
- remove: refused when it would leave no master or etcd without quorum. Drains and deletes the
  Kubernetes Node (when the API answers), removes a master's etcd member, then resets the hosts
  with the clean phase.
- repair: workers only. Resets the node's Kubernetes state, then joins it again with the deploy's
  prepare, docker and workers phases.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from ..config import Cluster, Machine
from ..errors import OpenIError, UsageError
from ..inventory import Host, Inventory
from ..kube import KubeApi
from ..phase import Change, Phase, PhaseOutcome, PhaseRunner, Run, apply_changes
from ..report import Reporter
from ..state import state_dir
from .clean import Clean
from .etcd import add_member, member_health, members, remove_member, wait_healthy
from .files import bootstrap_env, member_of
from .kubeconfig import admin_path
from .phases import deploy_phases
from .phases.connect import Connect
from .phases.docker import Docker
from .phases.etcd import etcd_changes
from .phases.facts import Facts, facts_of
from .phases.lock import Lock, Unlock
from .phases.prepare import Prepare
from .phases.workers import Workers
from .pki import pki_of


def _healthy_url(run: Run, excluding: Iterable[str] = ()) -> str:
    """A healthy etcd member's client URL (the leader when it answers), not among `excluding`."""
    skip = set(excluding)
    rows = [r for r in member_health(run.cluster, pki_of(run)) if r.healthy and r.name not in skip]
    if not rows:
        raise OpenIError("no healthy etcd member answers")
    return sorted(rows, key=lambda r: not r.leader)[0].url


# --- add ----------------------------------------------------------------------------------


class RefuseMembers(Phase):
    """Hosts being added must not be part of the cluster already."""

    name = "check-new"
    title = "Check that the new hosts are not in the cluster yet"

    def hosts(self, run: Run) -> list[Host]:
        return [run.inventory.host(name) for name in run.options["new"]]

    def plan(self, run: Run, host: Host) -> list[Change]:
        facts = facts_of(run, host)
        if facts.kubelet_joined:
            raise OpenIError(f"{host.name} is already a Kubernetes node (its kubelet has joined)")
        member = member_of(run.cluster, host.machine)
        if member is not None and not run.dry_run:
            names = {m.name for m in members(pki_of(run), _healthy_url(run, excluding=[member.name]))}
            if member.name in names:
                raise OpenIError(f"{host.name}'s etcd member {member.name} is already in the cluster")
        return []


class EtcdJoin(Phase):
    """New masters join etcd one at a time: member add, then started with the live member list."""

    name = "etcd-join"
    title = "Add the new masters to etcd, one at a time"
    parallel = False

    def hosts(self, run: Run) -> list[Host]:
        return [run.inventory.host(n) for n in run.options["new"] if run.cluster.by_name[n].is_master]

    def plan(self, run: Run, host: Host) -> list[Change]:
        member = member_of(run.cluster, host.machine)
        return [Change(f"add etcd member {member.name} ({member.peer_url}) and start it with the live member list",
                       lambda: self._join(run, host))]

    def _join(self, run: Run, host: Host) -> None:
        member = member_of(run.cluster, host.machine)
        live = add_member(pki_of(run), _healthy_url(run, excluding=[member.name]), member.peer_url)
        initial = ",".join(f"{m.name or member.name}={m.peer_urls[0]}" for m in live)
        apply_changes(host, etcd_changes(run, host, joining=bootstrap_env(run.cluster, initial, "existing")))
        wait_healthy(run.cluster, pki_of(run), members=tuple(m for m in run.cluster.etcd_members
                                                             if m.name in {x.name or member.name for x in live}))


def extended(cluster: Cluster, new: list[Machine]) -> Cluster:
    """The cluster as it is with the new machines in it."""
    return dataclasses.replace(cluster, machines=cluster.machines + tuple(m for m in new if m.hostname not in cluster.by_name))


def add(cluster: Cluster, reporter: Reporter, nodes: list[Machine], *, dry_run: bool = False,
        only: Iterable[str] = (), skip: Iterable[str] = ()) -> list[PhaseOutcome]:
    bigger = extended(cluster, nodes)
    phases = deploy_phases()
    at = next(i for i, p in enumerate(phases) if p.name == "etcd")
    phases[at:at] = [EtcdJoin()]
    phases.insert(next(i for i, p in enumerate(phases) if p.name == "facts") + 1, RefuseMembers())
    runner = PhaseRunner(phases, only=only, skip=skip)
    with Inventory(bigger) as inventory:
        run = Run(bigger, inventory, reporter, dry_run=dry_run, state_dir=state_dir(cluster),
                  options={"new": [n.hostname for n in nodes]})
        return runner.run(run)


# --- remove -------------------------------------------------------------------------------


class DrainNodes(Phase):
    """Drain and delete the Kubernetes Nodes of the hosts, through the API from this machine."""

    name = "drain"
    title = "Drain and delete the Kubernetes nodes"

    def plan(self, run: Run, host: Host) -> list[Change]:
        kubeconfig = admin_path(run.state_dir)
        node = host.name.lower()
        what = f"cordon Node {node}, evict its pods (all but DaemonSets' and static ones), delete the Node"
        if not kubeconfig.is_file():
            if run.dry_run:
                return [Change(f"{what} (through the API, once the control plane exists)", lambda: None)]
            run.reporter.warn(f"{host.name}: no admin kubeconfig ({kubeconfig}): the Kubernetes API was never deployed "
                              f"from here, so there is no Node to drain")
            return []
        api = KubeApi(kubeconfig)
        if api.get({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}) is None:
            return []
        return [Change(what, lambda: api.drain_and_delete(node))]


class EtcdLeave(Phase):
    """Removed masters leave etcd, one at a time, through a healthy member."""

    name = "etcd-leave"
    title = "Remove the masters' etcd members"
    parallel = False

    def hosts(self, run: Run) -> list[Host]:
        return run.hosts("master")

    def plan(self, run: Run, host: Host) -> list[Change]:
        member = member_of(run.cluster, host.machine)
        via = _healthy_url(run, excluding=run.targets or ())
        current = next((m for m in members(pki_of(run), via) if m.name == member.name or member.peer_url in m.peer_urls), None)
        if current is None:
            return []
        return [Change(f"remove etcd member {member.name} ({current.id:x}) through {via}",
                       lambda: remove_member(pki_of(run), via, current.id))]


def check_removal(cluster: Cluster, pki, gone: set[str]) -> None:
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
    gone = {n.hostname for n in nodes}
    with Inventory(cluster) as inventory:
        run = Run(cluster, inventory, reporter, dry_run=dry_run, state_dir=state_dir(cluster), targets=frozenset(gone))
        check_removal(cluster, pki_of(run), gone)
        return PhaseRunner([Connect(), Lock(), DrainNodes(), EtcdLeave(), Clean(), Unlock()]).run(run)


# --- repair -------------------------------------------------------------------------------


class ResetKubelet(Phase):
    """Stop and remove the node's Kubernetes containers and kubelet state (kubeadm reset)."""

    name = "reset"
    title = "Reset the nodes' Kubernetes state"

    def plan(self, run: Run, host: Host) -> list[Change]:
        command = "kubeadm reset -f && rm -rf /etc/kubernetes /var/lib/kubelet /etc/cni/net.d/10-flannel.conflist"
        if host.sh("command -v kubeadm").exited != 0:
            command = "rm -rf /etc/kubernetes /var/lib/kubelet /etc/cni/net.d/10-flannel.conflist"
        return [Change(f"reset the node: {command}", lambda: host.sh(command, check=True))]


def repair(cluster: Cluster, reporter: Reporter, nodes: list[Machine], *, dry_run: bool = False) -> list[PhaseOutcome]:
    refused = [n.hostname for n in nodes if n.role != "worker"]
    if refused:
        raise UsageError(f"repair is for workers only; {', '.join(refused)} run etcd or the endpoint "
                         f"(use k8s.etcdfix for an etcd member)")
    with Inventory(cluster) as inventory:
        run = Run(cluster, inventory, reporter, dry_run=dry_run, state_dir=state_dir(cluster),
                  targets=frozenset(n.hostname for n in nodes))
        phases = [Connect(), Facts(), Lock(), DrainNodes(), ResetKubelet(), Prepare(), Docker(), Workers(), Unlock()]
        return PhaseRunner(phases).run(run)
