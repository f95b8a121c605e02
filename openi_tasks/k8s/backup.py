"""`inv k8s.backup`: etcd snapshots, checksummed; now, or on a schedule on the masters.

A backup streams a snapshot from a healthy member (the leader when it answers) through the v3
API into `<state>/snapshots/etcd-<clusterid>-<UTC time>.db` (0600), with its sha256 beside it.
`k8s.restore` (restore.py) checks that checksum with `verify`. `schedule_backups` puts a timer
on the masters instead (phases/backup_schedule.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..config import Cluster
from ..errors import OpenIError
from ..localfiles import file_digest
from ..phase import PhaseOutcome, PhaseRunner
from ..report import Reporter
from ..run import open_run
from ..state import StateDir, write_private
from .etcd_client import member_health, save_snapshot
from .phases.backup_schedule import BackupSchedule
from .phases.connect import Connect
from .phases.lock import Lock, Unlock
from .pki import ClusterPki
from .s3 import S3Target
from .schedule import Schedule


def operator_pki(cluster: Cluster) -> ClusterPki:
    """The state directory's PKI, which must already hold this machine's etcd client certificate."""
    pki = ClusterPki(cluster, StateDir.of(cluster))
    if not pki.has_operator_client:
        raise OpenIError(f"no etcd client certificate in {pki.etcd_dir}: etcd was not deployed from this state directory")
    return pki


def backup(cluster: Cluster, out: Path | None = None, label: str = "") -> Path:
    """Take a snapshot; return its path in the state directory (copied to `out` too when given)."""
    pki = operator_pki(cluster)
    health = member_health(cluster, pki)
    answering = sorted((h for h in health if h.healthy), key=lambda h: not h.leader)
    if not answering:
        raise OpenIError("no etcd member answers: " + "; ".join(f"{h.name}: {h.error}" for h in health))
    target = StateDir.of(cluster).snapshot(cluster.id, label)
    save_snapshot(pki, answering[0].url, target)
    write_private(Path(f"{target}.sha256"), f"{file_digest(target)}  {target.name}\n")
    if out is not None:
        destination = out / target.name if out.is_dir() else out
        shutil.copyfile(target, destination)
        Path(f"{destination}.sha256").write_text(f"{file_digest(target)}  {destination.name}\n")
    return target


def schedule_backups(cluster: Cluster, reporter: Reporter, schedule: Schedule | None, keep: int, to_dir: str,
                     s3: S3Target | None = None, dry_run: bool = False) -> list[PhaseOutcome]:
    """Install (or, with no schedule, remove) the snapshot timer on every master."""
    with open_run(cluster, reporter, "backup-schedule", dry_run=dry_run, machines=cluster.masters) as run:
        return PhaseRunner([Connect(), Lock(), BackupSchedule(schedule, keep, to_dir, s3), Unlock()]).run(run)


def verify(snapshot: Path) -> str:
    """Check the snapshot against its .sha256 file; the digest (raises when they differ)."""
    if not snapshot.is_file():
        raise OpenIError(f"{snapshot} does not exist")
    digest = file_digest(snapshot)
    sidecar = Path(f"{snapshot}.sha256")
    if not sidecar.is_file():
        raise OpenIError(f"{sidecar} is missing: openi-tasks restores only snapshots whose checksum it can check")
    expected = sidecar.read_text().split()[0]
    if expected != digest:
        raise OpenIError(f"{snapshot} does not match its checksum ({digest} is not {expected}); nothing was changed")
    return digest
