"""Machines -> `Host`s for one run: one connection per host, reused by every phase, and role groups.

    >>> with Inventory(cluster) as inventory:
    ...     uptimes = inventory.map(inventory.hosts(role="master"), lambda h: h.sh("uptime"))
    ...     # {Host('master1'): Result(...), Host('master2'): NoValidConnectionsError(...), ...}
"""

from __future__ import annotations

import resource
import threading
from typing import Any, Callable, Iterable

from ..config import Cluster, Machine
from .fanout import Results, fan_out
from .host import CommandLog, Host
from .known_hosts import KnownHosts


DESCRIPTORS_PER_HOST = 4  # its socket, paramiko's pipe for a waited channel, and some room


def ensure_open_files(needed: int) -> None:
    """Raise this process's soft limit of open files towards `needed` (up to the hard limit): a
    run holds every host's connection, and many systems start a process at a soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (needed if hard == resource.RLIM_INFINITY else min(needed, hard), hard))
        except (ValueError, OSError):  # a system cap below the hard limit (macOS): the run goes on as it was
            pass


class Inventory:
    """One `Host` per machine for a run, with role groups and a bounded fan-out."""

    def __init__(self, cluster: Cluster, machines: Iterable[Machine] | None = None,
                 log: CommandLog | None = None) -> None:
        self.cluster = cluster
        op = cluster.operator
        self.known_hosts = KnownHosts(op.known_hosts, op.host_key_policy)
        self.limit = op.concurrency
        self.log = log
        self._machines = {m.hostname: m for m in (machines if machines is not None else cluster.machines)}
        ensure_open_files(256 + DESCRIPTORS_PER_HOST * len(self._machines))
        self._hosts: dict[str, Host] = {}
        self._lock = threading.Lock()

    def host(self, hostname: str) -> Host:
        with self._lock:
            if hostname not in self._hosts:
                op = self.cluster.operator
                self._hosts[hostname] = Host(self._machines[hostname], self.known_hosts,
                                             connect_timeout=op.connect_timeout, command_timeout=op.command_timeout,
                                             keepalive=op.keepalive, log=self.log)
            return self._hosts[hostname]

    def hosts(self, role: str | None = None, names: Iterable[str] | None = None) -> list[Host]:
        """Hosts in configuration order, optionally only of `role` and/or named in `names`."""
        wanted = set(names) if names is not None else None
        return [
            self.host(m.hostname)
            for m in self._machines.values()
            if (role is None or m.role == role) and (wanted is None or m.hostname in wanted)
        ]

    def map(self, hosts: Iterable[Host], work: Callable[[Host], Any]) -> Results:
        """`work(host)` on every host, at most `operator.concurrency` at once; host -> result or
        the exception that stopped it (never raised here)."""
        return fan_out(list(hosts), work, self.limit)

    def close(self) -> None:
        for host in list(self._hosts.values()):
            host.close()

    def __enter__(self) -> "Inventory":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
