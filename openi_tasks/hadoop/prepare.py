"""`inv hadoop.prepare`: Hadoop's tarball fetched, and every role's configuration written."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..config import Cluster
from ..state import StateDir
from .configure import write_configuration
from .fetch import extract_defaults, fetch


def prepare(cluster: Cluster, out: Path | None = None) -> tuple[Path, dict[str, Path]]:
    """(tarball, role -> configuration directory)."""
    tarball = fetch(cluster)
    with tempfile.TemporaryDirectory(prefix="openi-hadoop-") as tmp:
        defaults = extract_defaults(tarball, Path(tmp), cluster.services.hadoop.hadoop_version)
        written = write_configuration(cluster, defaults, out or StateDir.of(cluster).hadoop_configuration)
    return tarball, written
