"""One run of a task against a cluster: its hosts, state directory, log, and what phases derive.

Every task that reaches hosts opens its run with `open_run`, which gives the same things to all
of them: the inventory (one connection per host), the state directory, the run log, the report
of host keys trusted on first use, and connections closed at the end, even on Ctrl-C. Values that
phases derive from the cluster (its PKI, the join secrets, the lock's owner, the Kubernetes
binaries) are typed, cached attributes of the run, computed the first time a phase asks.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Iterable, Iterator

from .config import Cluster, Machine
from .report import Reporter
from .runlog import RunLog
from .ssh import Host, Inventory
from .ssh.channel import CANCEL
from .state import StateDir

if TYPE_CHECKING:
    from .k8s.binaries import Binaries
    from .k8s.hostfacts import HostFacts
    from .k8s.kubeadm import JoinSecrets
    from .k8s.pki import ClusterPki
    from .kube import KubeApi


@dataclass
class Run:
    """What the phases of one task share."""

    cluster: Cluster
    inventory: Inventory
    reporter: Reporter
    state: StateDir
    dry_run: bool = False
    targets: frozenset[str] | None = None  # when set, the phases act on these hosts only
    log: RunLog = field(default_factory=lambda: RunLog(None))
    facts: dict[str, "HostFacts"] = field(default_factory=dict)

    def hosts(self, role: str | None = None) -> list[Host]:
        """The hosts phases act on: all (or of `role`), narrowed to `targets` when set."""
        return [h for h in self.inventory.hosts(role=role) if self.targets is None or h.name in self.targets]

    def host(self, machine: Machine | str) -> Host:
        return self.inventory.host(machine if isinstance(machine, str) else machine.hostname)

    @property
    def first_master(self) -> Host:
        return self.host(self.cluster.masters[0])

    @cached_property
    def pki(self) -> "ClusterPki":
        """The cluster's CAs and certificates (made in memory only in a dry run)."""
        from .k8s.pki import ClusterPki

        return ClusterPki(self.cluster, self.state, persist=not self.dry_run)

    @cached_property
    def join(self) -> "JoinSecrets":
        """The bootstrap token and CA hash every kubeadm join needs (the token kept in the state)."""
        from .k8s import kubeadm

        token = kubeadm.bootstrap_token(self.state.bootstrap_token, persist=not self.dry_run)
        self.log.add_secret(token)
        return kubeadm.JoinSecrets(token, kubeadm.ca_cert_hash(self.pki.kubernetes_ca.cert_pem))

    @cached_property
    def lock_owner(self) -> str:
        """Who this run is, as written into the cluster lock."""
        return (f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()} "
                f"since {time.strftime('%Y-%m-%dT%H:%M:%S%z')} run {os.urandom(4).hex()}")

    @cached_property
    def binaries(self) -> "Binaries":
        """The Kubernetes binaries from `binaries-dir`, hashed once per run rather than once per host."""
        from .k8s.binaries import Binaries

        return Binaries.from_cluster(self.cluster)

    def api(self) -> "KubeApi | None":
        """The cluster's API through the admin kubeconfig, or None before the control plane exists."""
        from .kube import KubeApi

        return KubeApi(self.state.admin_conf, log=self.log.write) if self.state.admin_conf.is_file() else None


def secrets_of(cluster: Cluster) -> list[str]:
    """Every secret value of the configuration, for the run log to scrub."""
    values = [m.password.get_secret_value() for m in cluster.machines if m.password is not None]
    services = cluster.services
    values += [s for s in services.secret_values() if s]
    s3_key = cluster.kubernetes.etcd_backup_s3_secret_key
    values += [s3_key.get_secret_value()] if s3_key is not None and s3_key.get_secret_value() else []
    return values


@contextlib.contextmanager
def open_run(cluster: Cluster, reporter: Reporter, task: str, *, dry_run: bool = False,
             machines: Iterable[Machine] | None = None, targets: Iterable[str] | None = None,
             record: bool = True) -> Iterator[Run]:
    """A run of `task`: inventory, state directory and run log (not in a dry run, which changes
    nothing here either), closed at the end; host keys trusted on first use are reported."""
    CANCEL.clear()
    state = StateDir.of(cluster)
    log = RunLog(None, secrets_of(cluster))
    if record and not dry_run:
        state.create()
        log = RunLog(state.run_log(task), secrets_of(cluster))
        log.write(f"openi-tasks {task} on {cluster.id} ({len(cluster.machines)} machines) by {getpass.getuser()}")
    inventory = Inventory(cluster, machines, log=log.command)
    for warning in inventory.known_hosts.warnings:
        reporter.warn(warning)
    run = Run(cluster, inventory, reporter, state, dry_run=dry_run,
              targets=frozenset(targets) if targets is not None else None, log=log)
    failed = True
    try:
        yield run
        failed = False
    except BaseException as exc:
        log.write(f"failed: {exc!r}"[:4000])
        if isinstance(exc, KeyboardInterrupt):
            CANCEL.set()
        raise
    finally:
        inventory.close()
        for accepted in inventory.known_hosts.accepted:
            reporter.warn(f"trusted a new host key (first use): {accepted}")
            log.write(f"trusted a new host key (first use): {accepted}")
        log.write("finished" if not failed else "stopped")
        log.close()
        if failed and log.path is not None:
            reporter.info(f"run log: {log.path}")


