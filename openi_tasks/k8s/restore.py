"""`inv k8s.restore --snapshot FILE`: a whole etcd cluster rebuilt from a snapshot.

It checks the snapshot's checksum, takes a snapshot of etcd as it is now (when a member answers),
then on every master (under the cluster lock): stops the member, moves its data aside (kept, not
deleted), restores the snapshot into a fresh data directory as a member of a new cluster of the
configured masters, starts all members together with the deploy's etcd phase, and restarts the
control plane on the restored data.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..config import Cluster
from ..phase import PhaseOutcome, PhaseRunner
from ..report import Reporter
from ..run import open_run
from .backup import operator_pki, verify
from .phases.connect import Connect
from .phases.etcd import Etcd
from .phases.lock import Lock, Unlock
from .phases.restore import RestartControlPlane, RestoreData
from .phases.snapshot import Snapshot


def restore(cluster: Cluster, reporter: Reporter, snapshot: Path, dry_run: bool = False) -> list[PhaseOutcome]:
    verify(snapshot)
    operator_pki(cluster)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    with open_run(cluster, reporter, "restore", dry_run=dry_run, machines=cluster.masters) as run:
        return PhaseRunner([Connect(), Lock(), Snapshot("restore"), RestoreData(snapshot, stamp), Etcd(),
                            RestartControlPlane(), Unlock()]).run(run)
