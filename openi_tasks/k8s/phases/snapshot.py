"""snapshot: an etcd snapshot into the state directory before a destructive step.

`k8s.clean`, `k8s.restore`, `k8s.remove` of a master and `k8s.etcdfix` take one first, named
`etcd-<clusterid>-<time>-before-<task>.db` with its .sha256 (as `k8s.backup` writes them). Only
these automatic snapshots are pruned, to the newest `operator.keep-snapshots`; what the operator
took with `k8s.backup` is theirs and never deleted.

When no member answers, a snapshot cannot be had: a step that needs etcd's quorum anyway (removing
a master, etcdfix) fails then; clean and restore warn and go on, because a dead etcd is exactly
when an operator cleans or restores.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...phase import Change, Phase
from ...run import Run
from ...ssh import Host, describe_error
from ..backup import backup
from ..etcd_client import member_health

AUTOMATIC = "-before-"


class Snapshot(Phase):
    name = "snapshot"
    title = "Take an etcd snapshot first"
    parallel = False
    bookkeeping = True  # a file on this machine, not a change to the cluster

    def __init__(self, label: str, required: bool = False) -> None:
        self.label = label
        self.required = required

    def hosts(self, run: Run) -> list[Host]:
        # One row in the run's tables: the snapshot is taken from this machine, through the API.
        return [run.first_master]

    def plan(self, run: Run, host: Host) -> list[Change]:
        where = run.state.snapshots
        if not run.pki.has_operator_client:
            run.reporter.warn(f"no snapshot: etcd was never deployed from this state directory ({run.state.root})")
            return []
        answering = [h for h in member_health(run.cluster, run.pki) if h.healthy]
        if not answering:
            message = f"no etcd member answers: no snapshot could be taken before {self.label}"
            if self.required:
                raise RuntimeError(message)
            run.reporter.warn(message)
            return []
        keep = run.cluster.operator.keep_snapshots
        return [Change(f"take an etcd snapshot into {where} (automatic snapshots kept: the newest {keep})",
                       lambda: self._take(run))]

    def _take(self, run: Run) -> None:
        try:
            take_snapshot(run, self.label)
        except Exception as exc:
            raise RuntimeError(f"the etcd snapshot before {self.label} failed, so nothing was changed: "
                               f"{describe_error(exc)}") from exc


def take_snapshot(run: Run, label: str) -> Path:
    """An automatic snapshot before `label` (reported), then the old ones pruned."""
    taken = backup(run.cluster, label=f"before-{label}")
    run.reporter.info(f"etcd snapshot: {taken} ({taken.stat().st_size} bytes)")
    for old in prune(run.state.snapshots, run.cluster.id, run.cluster.operator.keep_snapshots):
        run.log.write(f"pruned the automatic snapshot {old}")
    return taken


def prune(directory: Path, cluster_id: str, keep: int) -> list[Path]:
    """Delete all but the newest `keep` (at least 1) automatic snapshots of the cluster (with their .sha256);
    the deleted ones. Names sort by time: they start with the UTC time they were taken."""
    name = re.compile(rf"etcd-{re.escape(cluster_id)}-\d{{8}}T\d{{6}}Z{AUTOMATIC}.+\.db")
    automatic = sorted(p for p in directory.glob("*.db") if name.fullmatch(p.name) and p.is_file())
    old = automatic[:-keep]
    for snapshot in old:
        snapshot.unlink()
        Path(f"{snapshot}.sha256").unlink(missing_ok=True)
    return old
