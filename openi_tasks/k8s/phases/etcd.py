"""etcd: a TLS etcd member as a Docker container on every master, all started from one full
initial-cluster list, then a wait until every member answers and one leads."""

from __future__ import annotations

import shlex

from ...inventory import Host
from ...operations import ensure_file
from ...phase import Change, Phase, Run
from ..containers import ContainerSpec, digest, ensure_container, inspect
from ..etcd import wait_healthy
from ..files import ETCD_CONTAINER, etcd_pki_files, file_at, host_files, member_of
from ..pki import pki_of


def etcd_changes(run: Run, host: Host, initial_cluster_state: str = "new") -> list[Change]:
    """Certificates, definition, data directory and container of this host's member."""
    cluster = run.cluster
    member = member_of(cluster, host.machine)
    pki_files = etcd_pki_files(pki_of(run), member)
    definition = file_at(host_files(cluster, host.machine, initial_cluster_state), ETCD_CONTAINER)
    changes = [c for f in pki_files + [definition] for c in ensure_file(host, f)]
    data = shlex.quote(cluster.kubernetes.etcd_data_path)
    if host.sh(f"test -d {data}").exited != 0:
        changes.append(Change(f"create the etcd data directory {cluster.kubernetes.etcd_data_path}",
                              lambda: host.sh(f"mkdir -p -m 700 {data}", check=True)))
    spec = ContainerSpec.from_yaml(definition.content, "etcd", depends=tuple(digest(f.content) for f in pki_files))
    return changes + ensure_container(host, spec, inspect(host, spec.name))


class Etcd(Phase):
    name = "etcd"
    title = "etcd members (TLS) on the masters"

    def hosts(self, run: Run) -> list[Host]:
        return run.inventory.hosts(role="master")

    def plan(self, run: Run, host: Host) -> list[Change]:
        return etcd_changes(run, host)

    def after(self, run: Run) -> None:
        wait_healthy(run.cluster, pki_of(run))
