"""`inv k8s.clean`: undo what deploy put on every host (see `phases/clean.py`), after an etcd
snapshot into the state directory (`phases/snapshot.py`)."""

from __future__ import annotations

from ..config import Cluster
from ..phase import PhaseOutcome, PhaseRunner
from ..report import Reporter
from ..run import open_run
from .phases.clean import Clean, StopKubernetes
from .phases.connect import Connect
from .phases.lock import Lock, Unlock
from .phases.snapshot import Snapshot


def clean(cluster: Cluster, reporter: Reporter, dry_run: bool = False, break_lock: bool = False) -> list[PhaseOutcome]:
    with open_run(cluster, reporter, "clean", dry_run=dry_run) as run:
        return PhaseRunner([Connect(), Lock(break_lock=break_lock), Snapshot("clean"), StopKubernetes(), Clean(forget_cluster=True),
                            Unlock()]).run(run)
