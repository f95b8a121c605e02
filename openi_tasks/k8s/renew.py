"""`inv k8s.certs --renew`: renew what expires within `--within` days (everything with `--all`).

Under the cluster lock: the etcd members' certificates one member at a time (phases/renew.py),
this machine's etcd client certificate, then the control plane one master at a time, and last the
operator's admin.conf, fetched again from the first master. The CAs are not renewed.
"""

from __future__ import annotations

import datetime

from ..config import Cluster
from ..phase import PhaseOutcome, PhaseRunner
from ..report import Reporter
from ..run import open_run
from .backup import operator_pki
from .phases.connect import Connect
from .phases.kubeconfig import Kubeconfig
from .phases.lock import Lock, Unlock
from .phases.renew import RenewControlPlane, RenewEtcd
from .pki import ClusterPki

EVERYTHING = datetime.timedelta(days=100 * 365)  # longer than any certificate here lives: --all


def renew(cluster: Cluster, reporter: Reporter, within: datetime.timedelta, dry_run: bool = False) -> list[PhaseOutcome]:
    operator_pki(cluster)
    hosts = cluster.masters + cluster.with_role("proxy")
    with open_run(cluster, reporter, "certs-renew", dry_run=dry_run, machines=hosts) as run:
        run.pki = ClusterPki(cluster, run.state, persist=not dry_run, renew_within=within)
        if not dry_run:
            run.pki.client_paths()  # this machine's etcd client certificate, renewed when due
        return PhaseRunner([Connect(), Lock(), RenewEtcd(), RenewControlPlane(within), Kubeconfig(),
                            Unlock()]).run(run)
