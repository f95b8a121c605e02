"""The state directory: what must outlive a run (etcd CA and certificates, kubeconfig, logs).

One directory per cluster, `~/.openi/<clusterid>` unless the configuration's
`operator.state-dir` says otherwise; the environment variable OPENI_STATE_DIR overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import Cluster


def state_dir(cluster: Cluster) -> Path:
    """Where this cluster's state lives (not created here)."""
    configured = os.environ.get("OPENI_STATE_DIR") or cluster.operator.state_dir
    return Path(configured).expanduser() if configured else Path.home() / ".openi" / cluster.id


def write_private(path: Path, data: bytes | str) -> None:
    """Write a file only its owner can read (0600), creating its directory (0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(raw)
