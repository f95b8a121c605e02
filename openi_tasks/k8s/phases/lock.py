"""lock / unlock: one run at a time per cluster.

The lock is a directory made with `mkdir` (atomic) on each master, holding who took it. A run
holds the cluster lock when it holds it on a majority of the masters, so two runs can never both
hold it, and a run that must not touch one master (etcdfix of that master's member, which may be
dead) can still lock the cluster on the others. A lock left by a run that died can be broken with
`--break-lock`; a failing run releases its lock (clean-up).
"""

from __future__ import annotations

import os
import shlex

from ...errors import OpenIError
from ...phase import Change, Phase
from ...run import Run
from ...ssh import Host, describe_error

LOCK = "/var/lib/openi/deploy.lock"


class LockHeld(OpenIError):
    """Another run holds the cluster lock."""


def current_owner(host: Host) -> str | None:
    result = host.sh(f"cat {LOCK}/owner 2>/dev/null")
    return (result.stdout.strip() or None) if result.exited == 0 else None


def lock_hosts(run: Run, excluding: frozenset[str]) -> list[Host]:
    return [run.host(m) for m in run.cluster.masters if m.hostname not in excluding]


def majority(run: Run) -> int:
    return len(run.cluster.masters) // 2 + 1


class Lock(Phase):
    name = "lock"
    title = "Take the cluster lock (on a majority of the masters)"
    bookkeeping = True

    def __init__(self, break_lock: bool = False, excluding: frozenset[str] = frozenset()) -> None:
        self.break_lock = break_lock
        self.excluding = excluding

    def hosts(self, run: Run) -> list[Host]:
        return lock_hosts(run, self.excluding)

    def should_run(self, run: Run) -> bool:
        if len(self.hosts(run)) < majority(run):
            raise LockHeld(f"the cluster lock needs {majority(run)} of the {len(run.cluster.masters)} masters; "
                           f"only {len(self.hosts(run))} may be used by this run")
        return True

    def plan(self, run: Run, host: Host) -> list[Change]:
        me = run.lock_owner
        owner = current_owner(host)
        if owner == me:
            return []
        take = f"mkdir -p {os.path.dirname(LOCK)} && mkdir {LOCK} && printf '%s\\n' {shlex.quote(me)} > {LOCK}/owner"
        if owner is None:
            return [Change("take the cluster lock", lambda: self._take(host, take))]
        if not self.break_lock:
            raise LockHeld(
                f"the cluster is locked by {owner}. If that run is still going, wait for it; "
                f"if it died, run again with --break-lock"
            )
        return [Change(f"break the lock held by {owner} and take it",
                       lambda: self._take(host, f"rm -rf {LOCK} && {take}"))]

    def _take(self, host: Host, command: str) -> None:
        if host.sh(command).exited != 0:
            raise LockHeld(f"another run took the cluster lock first: {current_owner(host)}")

    def cleanup(self, run: Run) -> None:
        release(run, self.excluding)


def release(run: Run, excluding: frozenset[str] = frozenset()) -> list[str]:
    """Remove the lock wherever this run holds it, on every master at once, each with one command
    that compares the owner and removes; the masters where it was released. A master that cannot
    be reached keeps its copy (its owner line names this run, so --break-lock is safe)."""
    if run.dry_run:
        return []
    command = (f"[ \"$(cat {LOCK}/owner 2>/dev/null)\" = {shlex.quote(run.lock_owner)} ] "
               f"&& rm -rf {LOCK} && echo released || true")
    done = run.inventory.map(lock_hosts(run, excluding), lambda host: host.sh(command, check=True))
    for host, result in done.items():
        if isinstance(result, Exception):  # reported; releasing the others matters more
            run.reporter.warn(f"{host.name}: could not release the cluster lock: {describe_error(result)}")
    return [host.name for host, result in done.items() if not isinstance(result, Exception)
            and result.stdout.strip() == "released"]


class Unlock(Phase):
    """Shown against the first master that is not excluded; releases on every master at once."""

    name = "unlock"
    title = "Release the cluster lock"
    bookkeeping = True
    parallel = False

    def __init__(self, excluding: frozenset[str] = frozenset()) -> None:
        self.excluding = excluding

    def hosts(self, run: Run) -> list[Host]:
        return lock_hosts(run, self.excluding)[:1]

    def plan(self, run: Run, host: Host) -> list[Change]:
        if run.dry_run:
            return []
        return [Change("release the cluster lock on every master", lambda: self._release(run))]

    def _release(self, run: Run) -> None:
        released = release(run, self.excluding)
        run.log.write(f"released the cluster lock on {', '.join(released) or 'no master'}")
