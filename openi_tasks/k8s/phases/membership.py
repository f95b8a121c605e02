"""Phases that change the cluster's membership: new hosts checked, new masters joining etcd one
at a time, removed masters leaving it."""

from __future__ import annotations

from ...errors import OpenIError
from ...phase import Change, Phase, apply_changes
from ...run import Run
from ...ssh import Host
from ..etcd_client import add_member, healthy_url, lead_elsewhere, members, remove_member, wait_healthy
from ..files import bootstrap_env, member_of
from ..static_pods import MANIFESTS, process_pattern, stop_command
from .etcd import etcd_changes
from .facts import facts_of


class CheckNew(Phase):
    """Hosts being added must not be part of the cluster already."""

    name = "check-new"
    title = "Check that the new hosts are not in the cluster yet"

    def __init__(self, new: tuple[str, ...]) -> None:
        self.new = new

    def hosts(self, run: Run) -> list[Host]:
        return [run.host(name) for name in self.new]

    def plan(self, run: Run, host: Host) -> list[Change]:
        facts = facts_of(run, host)
        if facts.kubelet_joined:
            raise OpenIError(f"{host.name} is already a Kubernetes node (its kubelet has joined)")
        member = member_of(run.cluster, host.machine)
        if member is not None and not run.dry_run:
            names = {m.name for m in members(run.pki, healthy_url(run.cluster, run.pki, excluding=[member.name]))}
            if member.name in names:
                raise OpenIError(f"{host.name}'s etcd member {member.name} is already in the cluster")
        return []


class EtcdJoin(Phase):
    """New masters join etcd one at a time: member add, then started with the live member list."""

    name = "etcd-join"
    title = "Add the new masters to etcd, one at a time"
    parallel = False

    def __init__(self, new: tuple[str, ...]) -> None:
        self.new = new

    def hosts(self, run: Run) -> list[Host]:
        return [run.host(n) for n in self.new if run.cluster.by_name[n].is_master]

    def plan(self, run: Run, host: Host) -> list[Change]:
        member = member_of(run.cluster, host.machine)
        return [Change(f"add etcd member {member.name} ({member.peer_url}) and start it with the live member list",
                       lambda: self._join(run, host))]

    def _join(self, run: Run, host: Host) -> None:
        member = member_of(run.cluster, host.machine)
        live = add_member(run.pki, healthy_url(run.cluster, run.pki, excluding=[member.name]), member.peer_url)
        initial = ",".join(f"{m.name or member.name}={m.peer_urls[0]}" for m in live)
        apply_changes(host, etcd_changes(run, host, joining=bootstrap_env(run.cluster, initial, "existing")))
        names = {x.name or member.name for x in live}
        wait_healthy(run.cluster, run.pki, members=tuple(m for m in run.cluster.etcd_members if m.name in names))


class StopApiServer(Phase):
    """Removed masters stop serving the API before their etcd member leaves.

    The endpoint no longer sends new connections to them, but a client's keep-alive connection
    made before stays with its API server; a request on it would fail once that server's etcd
    member is gone. A graceful stop finishes the requests in flight and closes those connections,
    so the clients' next requests go through the endpoint to the masters that stay."""

    name = "stop-apiserver"
    title = "Stop the API server on the masters being removed"

    def hosts(self, run: Run) -> list[Host]:
        return run.hosts("master")

    def plan(self, run: Run, host: Host) -> list[Change]:
        if host.sh(f"test -f {MANIFESTS}/kube-apiserver.yaml || pgrep -f {process_pattern('kube-apiserver')}").exited != 0:
            return []
        # The rest of the control plane goes with the clean's kubeadm reset.
        return [Change("stop the API server gracefully (its static pod's manifest moved aside) and wait until it "
                       "has exited", stop_command("kube-apiserver"))]


class EtcdLeave(Phase):
    """Removed masters leave etcd, one at a time, through a healthy member."""

    name = "etcd-leave"
    title = "Remove the masters' etcd members"
    parallel = False

    def hosts(self, run: Run) -> list[Host]:
        return run.hosts("master")

    def plan(self, run: Run, host: Host) -> list[Change]:
        member = member_of(run.cluster, host.machine)
        # Never through a leaving member: it stops as it applies its own removal, and the answer
        # may not get out first (then asking again finds nobody at that address).
        leaving = [member_of(run.cluster, h.machine).name for h in self.hosts(run)]
        via = healthy_url(run.cluster, run.pki, excluding=leaving)
        current = next((m for m in members(run.pki, via) if m.name == member.name or member.peer_url in m.peer_urls), None)
        if current is None:
            return []
        return [Change(f"remove etcd member {member.name} ({current.id:x}) through {via}, handing over its "
                       f"leadership first if it leads", lambda: self._leave(run, member.name, via, current.id))]

    @staticmethod
    def _leave(run: Run, name: str, via: str, member_id: int) -> None:
        successor = lead_elsewhere(run.cluster, run.pki, name)
        if successor is not None:
            run.log.write(f"etcd member {name} led: the leadership went to {successor} before its removal")
        remove_member(run.pki, via, member_id)
