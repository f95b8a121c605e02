"""lock / unlock: one deploy at a time per cluster, with a lock on the first master.

The lock is a directory made with `mkdir` (atomic) holding who took it. A lock left by a run
that died can be broken with `--break-lock`; a failing run releases its lock (clean-up).
"""

from __future__ import annotations

import getpass
import os
import shlex
import socket
import time

from ...errors import OpenIError
from ...inventory import Host
from ...phase import Change, Run
from .base import OnFirstMaster, first_master

LOCK = "/var/lib/openi/deploy.lock"


class LockHeld(OpenIError):
    """Another run holds the cluster lock."""


def lock_owner(run: Run) -> str:
    """Who this run is, as written into the lock."""
    if "lock_owner" not in run.options:
        run.options["lock_owner"] = (
            f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()} "
            f"since {time.strftime('%Y-%m-%dT%H:%M:%S%z')} run {os.urandom(4).hex()}"
        )
    return run.options["lock_owner"]


def current_owner(host: Host) -> str | None:
    result = host.sh(f"cat {LOCK}/owner 2>/dev/null")
    return (result.stdout.strip() or None) if result.exited == 0 else None


class Lock(OnFirstMaster):
    name = "lock"
    title = "Take the cluster lock"
    bookkeeping = True

    def plan(self, run: Run, host: Host) -> list[Change]:
        me = lock_owner(run)
        owner = current_owner(host)
        if owner == me:
            return []
        take = f"mkdir -p {os.path.dirname(LOCK)} && mkdir {LOCK} && printf '%s\\n' {shlex.quote(me)} > {LOCK}/owner"
        if owner is None:
            return [Change("take the cluster lock", lambda: self._take(host, take))]
        if not run.options.get("break_lock"):
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
        release(run)


def release(run: Run) -> None:
    """Remove the lock if this run holds it."""
    if run.dry_run:
        return
    host = first_master(run)
    if current_owner(host) == lock_owner(run):
        host.sh(f"rm -rf {LOCK}", check=True)


class Unlock(OnFirstMaster):
    name = "unlock"
    title = "Release the cluster lock"
    bookkeeping = True

    def plan(self, run: Run, host: Host) -> list[Change]:
        if current_owner(host) != lock_owner(run):
            return []
        return [Change("release the cluster lock", lambda: release(run))]
