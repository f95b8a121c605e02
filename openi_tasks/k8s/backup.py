"""`inv k8s.backup`: etcd snapshots, checksummed.

A backup streams a snapshot from a healthy member (the leader when it answers) through the v3
API into `<state>/snapshots/etcd-<clusterid>-<UTC time>.db` (0600), with its sha256 beside it.
`k8s.restore` (restore.py) checks that checksum with `verify`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..config import Cluster
from ..errors import OpenIError
from ..localfiles import file_digest
from ..state import StateDir, write_private
from .etcd_client import member_health, save_snapshot
from .pki import ClusterPki


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
