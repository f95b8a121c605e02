"""Kubernetes' binaries from a directory on the operator's machine (`kubernetes.binaries-dir`),
for clusters that install nothing from the internet: each file hashed once per run, then
uploaded to the hosts whose copy differs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Cluster
from ..errors import OpenIError
from ..localfiles import file_digest

NAMES = ("kubeadm", "kubelet", "kubectl")
TARGET_DIR = "/usr/local/bin"


@dataclass(frozen=True)
class Binary:
    name: str
    local: Path
    digest: str

    @property
    def remote(self) -> str:
        return f"{TARGET_DIR}/{self.name}"


@dataclass(frozen=True)
class Binaries:
    files: tuple[Binary, ...]

    @classmethod
    def from_cluster(cls, cluster: Cluster) -> "Binaries":
        directory = Path(cluster.kubernetes.binaries_dir or "").expanduser()
        files = []
        for name in NAMES:
            local = directory / name
            if not local.is_file():
                raise OpenIError(f"{local} does not exist (kubernetes.binaries-dir must hold {', '.join(NAMES)})")
            files.append(Binary(name, local, file_digest(local)))
        return cls(tuple(files))
