"""`inv cluster.exec`: one command on selected hosts in parallel, a row per host."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..config import Cluster
from ..errors import UsageError
from ..ssh import Host, Inventory, describe_error
from ..report import Reporter


@dataclass
class ExecOutcome:
    host: str
    exit_code: int | None  # None: the command did not run (connection, host key, timeout)
    seconds: float
    first_line: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def select_hosts(cluster: Cluster, inventory: Inventory, role: str | None, names: list[str]) -> list[Host]:
    """Hosts by role and/or name; an unknown role or host is a usage error (nothing contacted)."""
    if role and role not in ("master", "worker", "proxy"):
        raise UsageError(f"unknown role '{role}'; the roles are master, worker, proxy")
    unknown = [n for n in names if n not in cluster.by_name]
    if unknown:
        raise UsageError(f"not in the configuration: {', '.join(unknown)}")
    hosts = inventory.hosts(role=role, names=names or None)
    if not hosts:
        raise UsageError("no host matches the selection")
    return hosts


def run_everywhere(inventory: Inventory, hosts: list[Host], command: str, sudo: bool) -> list[ExecOutcome]:
    def one(host: Host) -> ExecOutcome:
        start = time.monotonic()
        try:
            result = host.sh(command, sudo=sudo)
        except Exception as exc:
            return ExecOutcome(host.name, None, time.monotonic() - start, describe_error(exc))
        output = (result.stdout.strip() or result.stderr.strip()).splitlines()
        return ExecOutcome(host.name, result.exited, time.monotonic() - start, output[0] if output else "")

    done = inventory.map(hosts, one)
    return [done[h] for h in hosts]


def report(reporter: Reporter, outcomes: list[ExecOutcome]) -> None:
    reporter.table(
        "",
        ("host", "exit", "seconds", "output (first line)"),
        [
            (o.host, "-" if o.exit_code is None else o.exit_code, f"{o.seconds:.2f}", o.first_line)
            for o in outcomes
        ],
    )
    failed = [o.host for o in outcomes if not o.ok]
    if failed:
        reporter.info(f"{len(failed)} of {len(outcomes)} host(s) failed: {', '.join(failed)}")
