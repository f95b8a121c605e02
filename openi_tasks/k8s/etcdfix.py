"""`inv k8s.etcdfix --nodes bad.yaml`: rebuild one broken etcd member, safely.

1. Show the member table. Refuse when the other members cannot form a quorum without the bad
   one (with the numbers), and refuse to touch a member that is healthy unless forced.
2. Take a snapshot into the state directory.
3. Stop the bad member and wipe its data. If its host cannot be reached (powered off, disk dead),
   say so and go on.
4. Remove the member through a healthy member, so the cluster is healthy on the others.
5. Unless its host was unreachable: add the member back, start it on an empty data directory with
   `initial-cluster-state=existing` and the live member list (the deploy's etcd code does the
   starting), and wait until it is healthy and caught up. Show the member table again.

Run it again when an unreachable host is back, or when a replacement machine with the same
`etcdid` (and its new address) is in the configuration: the member then rejoins. Because a
rejoining member always starts on an empty data directory named after it, etcd's "member ID
mismatch" cannot happen.
"""

from __future__ import annotations

import shlex
import time

from ..config import Cluster, EtcdMember, Machine
from ..errors import OpenIError, UsageError
from ..phase import PhaseRunner, apply_changes
from ..report import Reporter
from ..run import open_run
from ..ssh import describe_error
from .backup import operator_pki
from .etcd_client import Member, MemberHealth, add_member, member_health, members, remove_member, wait_healthy
from .files import bootstrap_env, member_of
from .phases.etcd import etcd_changes
from .phases.lock import Lock, release
from .phases.snapshot import take_snapshot
from .pki import ClusterPki


class EtcdfixRefused(OpenIError):
    """etcdfix will not act: the message says why, with the numbers; nothing was changed."""


def _table(reporter: Reporter, title: str, live: list[Member], health: list[MemberHealth]) -> None:
    by_name = {h.name: h for h in health}
    rows = []
    for member in live:
        h = by_name.get(member.name)
        state = "not started" if not member.name else ("healthy" if h and h.healthy else (h.error if h else "?"))
        rows.append((f"{member.id:x}", member.name or "(new)", ",".join(member.peer_urls), state,
                     "leader" if h and h.leader else "", h.raft_index if h and h.healthy else ""))
    reporter.table(title, ("id", "name", "peer URL", "state", "leader", "raft index"), rows)


def etcdfix(cluster: Cluster, reporter: Reporter, nodes: list[Machine], force: bool = False) -> None:
    if len(nodes) != 1:
        raise UsageError(f"etcdfix repairs exactly one member per run; the nodes file names {len(nodes)}")
    machine = nodes[0]
    bad = member_of(cluster, machine)
    if bad is None:
        raise UsageError(f"{machine.hostname} is not a master: it has no etcd member to repair")
    pki = operator_pki(cluster)
    excluding = frozenset([machine.hostname])
    with open_run(cluster, reporter, "etcdfix", machines=cluster.masters) as run:
        run.pki = pki
        # The cluster lock on a majority of the other masters: the broken one may be dead.
        PhaseRunner([Lock(excluding=excluding)]).run(run)
        try:
            _repair(run, reporter, machine, bad, force)
        finally:
            release(run, excluding)


def _repair(run, reporter: Reporter, machine: Machine, bad: EtcdMember, force: bool) -> None:
    cluster, pki = run.cluster, run.pki
    others = [m for m in cluster.etcd_members if m is not bad]
    health = member_health(cluster, pki)
    healthy = {h.name for h in health if h.healthy}
    answering = [m for m in others if m.name in healthy]
    live = _member_list(pki, answering)
    _table(reporter, "etcd members before", live, health)
    bad_live = next((m for m in live if m.name == bad.name or bad.peer_url in m.peer_urls), None)
    _check_quorum(bad, live, bad_live, answering, len(cluster.etcd_members))
    if bad_live is not None and bad.name in healthy and not force:
        raise EtcdfixRefused(f"{bad.name} is a healthy member: nothing to repair (use --force to rebuild it anyway)")

    take_snapshot(run, f"etcdfix-{bad.name}")
    leader = next((h.url for h in health if h.leader and h.name != bad.name), None)
    via = leader or answering[0].client_url
    _rebuild(run, reporter, machine, bad, bad_live, answering, others, via)
    _table(reporter, "etcd members after", _member_list(pki, answering), member_health(cluster, pki))


def _rebuild(run, reporter: Reporter, machine: Machine, bad: EtcdMember, bad_live: Member | None,
             answering: list[EtcdMember], others: list[EtcdMember], via: str) -> None:
    cluster, pki = run.cluster, run.pki
    host = run.host(machine)
    wiped, reason = _wipe(host, cluster, bad)
    reporter.info(f"{machine.hostname}: " + (f"stopped etcd-{bad.name} and wiped its data" if wiped
                                              else f"could not be reached to wipe: {reason}"))
    if bad_live is not None:
        remove_member(pki, via, bad_live.id)
        reporter.info(f"removed member {bad.name} ({bad_live.id:x}) through {via}")
    if not wiped:
        wait_healthy(cluster, pki, timeout=60, members=tuple(others))
        _table(reporter, "etcd members after", _member_list(pki, answering), member_health(cluster, pki, tuple(others)))
        raise OpenIError(
            f"etcd is healthy on {len(others)} members without {bad.name}, but {machine.hostname} could not be "
            f"wiped ({reason}). Run k8s.etcdfix again when it is back (or with a replacement machine, same "
            f"etcdid, in the configuration) to bring the member back."
        )
    after_add = add_member(pki, via, bad.peer_url)
    reporter.info(f"added member {bad.name} ({bad.peer_url}) through {via}")
    initial = ",".join(f"{m.name or bad.name}={m.peer_urls[0]}" for m in after_add)
    changes = etcd_changes(run, host, joining=bootstrap_env(cluster, initial, "existing"))
    apply_changes(host, changes)
    for change in changes:
        reporter.info(f"{machine.hostname}: {change.description}")
    _wait_caught_up(reporter, cluster, pki, bad)


def _member_list(pki: ClusterPki, answering: list[EtcdMember]) -> list[Member]:
    for member in answering:
        try:
            return members(pki, member.client_url)
        except Exception:  # try the next member; all failing is a refusal below
            continue
    return []


def _check_quorum(bad: EtcdMember, live: list[Member], bad_live: Member | None, answering: list[EtcdMember],
                  configured: int) -> None:
    # Removing needs a quorum of the current membership; re-adding, of the membership after it.
    # Without a member list (no member would give one), the configured membership is counted.
    present = bad_live is not None or not live
    size = len(live) if live else configured
    needed = size // 2 + 1 if present else (size + 1) // 2 + 1
    if len(answering) < needed:
        others = size - 1 if present else size
        raise EtcdfixRefused(
            f"only {len(answering)} of the {others} other members answer "
            f"({', '.join(m.name for m in answering) or 'none'}); repairing {bad.name} needs {needed} "
            f"(a quorum of {size if present else size + 1} members). Nothing was changed. "
            f"Bring the others back first, or rebuild etcd from a snapshot (inv k8s.restore)."
        )
    if not live:
        raise EtcdfixRefused("no other member answers with the member list: etcd has no quorum. Nothing was changed. "
                             "Rebuild it from a snapshot (inv k8s.restore).")


def _wipe(host, cluster: Cluster, bad: EtcdMember) -> tuple[bool, str]:
    data = shlex.quote(f"{cluster.kubernetes.etcd_data_path}/{bad.name}")
    try:
        host.sh(f"docker rm -f {shlex.quote(f'etcd-{bad.name}')} >/dev/null 2>&1; rm -rf {data}", check=True, timeout=120)
        return True, ""
    except Exception as exc:  # unreachable is expected here, and reported
        return False, describe_error(exc)


def _wait_caught_up(reporter: Reporter, cluster: Cluster, pki: ClusterPki, bad: EtcdMember,
                    timeout: float = 180) -> None:
    """Until the rebuilt member answers and its raft index has reached the leader's (shown live)."""
    deadline = time.monotonic() + timeout
    last = ""
    with reporter.activity(f"{bad.name}: catching up with the leader") as activity:
        while time.monotonic() < deadline:
            rows = {r.name: r for r in member_health(cluster, pki)}
            leader = next((r for r in rows.values() if r.leader), None)
            mine = rows.get(bad.name)
            if mine and mine.healthy and leader and mine.raft_index >= leader.raft_index - 10:
                return
            last = mine.error if mine and not mine.healthy else \
                f"raft index {mine.raft_index if mine else '?'} of {leader.raft_index if leader else '?'}"
            activity.event(last)
            time.sleep(1)
    raise OpenIError(f"{bad.name} did not catch up within {timeout:.0f}s ({last})")
