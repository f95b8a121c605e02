"""The state directory: what must outlive a run, one directory per cluster.

`~/.openi/<clusterid>` unless the configuration's `operator.state-dir` says otherwise; the
environment variable OPENI_STATE_DIR overrides both. `StateDir` owns every path in it, so no
path is spelled twice. It and every directory it creates are 0700; files with secrets are 0600.

    <state>/pki/...                      CAs and certificates (see k8s/pki.py)
    <state>/admin.conf                   the cluster's admin kubeconfig
    <state>/kubeadm/bootstrap-token      the join token
    <state>/snapshots/                   etcd snapshots, each with its .sha256
    <state>/hadoop/                      Hadoop's tarball and every role's configuration
    <state>/etcd/etcdctl.env             etcdctl's settings for this machine
    <state>/logs/                        one log per run, secrets scrubbed
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .config import Cluster


class StateDir:
    """Every path a run reads or writes on the operator's machine for one cluster."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def of(cls, cluster: Cluster) -> "StateDir":
        configured = os.environ.get("OPENI_STATE_DIR") or cluster.operator.state_dir
        return cls(Path(configured).expanduser() if configured else Path.home() / ".openi" / cluster.id)

    def __repr__(self) -> str:
        return f"StateDir({str(self.root)!r})"

    def create(self) -> Path:
        make_private_dirs(self.root)
        return self.root

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def admin_conf(self) -> Path:
        return self.root / "admin.conf"

    @property
    def bootstrap_token(self) -> Path:
        return self.root / "kubeadm" / "bootstrap-token"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    def snapshot(self, cluster_id: str, label: str = "") -> Path:
        """A new snapshot's path, named by the time now (UTC)."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return self.snapshots / f"etcd-{cluster_id}-{stamp}{f'-{label}' if label else ''}.db"

    @property
    def hadoop(self) -> Path:
        return self.root / "hadoop"

    def hadoop_tarball(self, version: str) -> Path:
        return self.hadoop / f"hadoop-{version}.tar.gz"

    @property
    def hadoop_configuration(self) -> Path:
        return self.hadoop / "configuration"

    @property
    def etcdctl_env(self) -> Path:
        return self.root / "etcd" / "etcdctl.env"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def run_log(self, task: str) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return self.logs / f"{stamp}-{task}-{os.getpid()}.log"


def make_private_dirs(path: Path) -> None:
    """Create `path` and every missing parent as 0700 (mkdir's `parents=True` would use 0777 & ~umask)."""
    missing = []
    current = Path(path)
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)


def write_private(path: Path, data: bytes | str) -> None:
    """Write a file only its owner can read (0600), creating missing directories (0700)."""
    make_private_dirs(path.parent)
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(raw)
