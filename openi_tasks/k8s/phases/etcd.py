"""etcd: a TLS etcd member as a Docker container on every master, all started from one full
initial-cluster list, then a wait until every member answers and one leads."""

from __future__ import annotations

import shlex

from ...operations import ensure_file, ensure_files
from ...phase import Change, Phase
from ...render import RenderedFile
from ...run import Run
from ...ssh import Host
from ..containers import ContainerSpec, digest, ensure_container, inspect
from ..etcd_client import wait_healthy
from ..files import ETCD_BOOTSTRAP, ETCD_CONTAINER, ETCD_PKI, etcd_pki_files, file_at, host_files, member_of


def etcd_changes(run: Run, host: Host, joining: RenderedFile | None = None) -> list[Change]:
    """Certificates, definition, data directory and container of this host's member.

    The bootstrap file is written when absent (a new cluster's), or replaced by `joining` when a
    member is (re)added to a running cluster; an existing one is left alone, since etcd reads it
    only on an empty data directory.
    """
    cluster = run.cluster
    member = member_of(cluster, host.machine)
    pki_files = etcd_pki_files(run.pki, member)
    files = host_files(cluster, host.machine)
    definition = file_at(files, ETCD_CONTAINER)
    changes = ensure_files(host, pki_files + [definition] + ([joining] if joining is not None else []))
    data = shlex.quote(cluster.kubernetes.etcd_data_path)
    has_bootstrap, has_data = (r.exited == 0 for r in host.sh_all([f"test -f {shlex.quote(ETCD_BOOTSTRAP)}",
                                                                     f"test -d {data}"]))
    if joining is None and not has_bootstrap:
        changes += ensure_file(host, file_at(files, ETCD_BOOTSTRAP), (None, None))
    if not has_data:
        changes.append(Change(f"create the etcd data directory {cluster.kubernetes.etcd_data_path}",
                              f"mkdir -p -m 700 {data}"))
    # etcd reads its certificate and key again for every new connection, client or peer, so new ones
    # need no restart (k8s.certs --renew relies on it); the CA it reads only when it starts.
    ca = file_at(pki_files, f"{ETCD_PKI}/ca.crt")
    spec = ContainerSpec.from_yaml(definition.content, "etcd", depends=(digest(ca.content),))
    return changes + ensure_container(spec, inspect(host, spec.name))


class Etcd(Phase):
    name = "etcd"
    title = "etcd members (TLS) on the masters"

    def hosts(self, run: Run) -> list[Host]:
        return run.hosts("master")

    def plan(self, run: Run, host: Host) -> list[Change]:
        return etcd_changes(run, host)

    def after(self, run: Run) -> None:
        wait_healthy(run.cluster, run.pki)
