"""Kubernetes' binaries from a directory on the operator's machine (`kubernetes.binaries-dir`, a
bundle made by `inv k8s.bundle`), for clusters that install nothing from the internet: each file
hashed once per run (and checked against the bundle's manifest when it has one), then uploaded
to the hosts whose copy differs."""

from __future__ import annotations

import gzip
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from ..bundle.cache import cache_dir
from ..bundle.manifest import MANIFEST, Manifest
from ..bundle.needs import CNI_BINARIES, CONTAINERD_BINARIES, NODE_BINARIES
from ..config import Cluster
from ..errors import OpenIError
from ..localfiles import file_digest
from ..ssh import FileWrite

NAMES = NODE_BINARIES
TARGET_DIR = "/usr/local/bin"


_COMPRESSING = threading.Lock()


@dataclass(frozen=True)
class Binary:
    name: str
    local: Path
    digest: str

    @property
    def remote(self) -> str:
        return f"{TARGET_DIR}/{self.name}"

    def gzipped(self) -> Path:
        """A gzip copy to send (made once per content, kept in the cache): hosts decompress it."""
        target = cache_dir() / "uploads" / f"{self.digest}.gz"
        with _COMPRESSING:
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_suffix(".partial")
                with open(self.local, "rb") as source, gzip.open(partial, "wb", compresslevel=1) as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                partial.replace(target)
        return target

    def write(self, path: str | None = None) -> FileWrite:
        return FileWrite(path or self.remote, self.gzipped(), 0o755, gzipped=True)


@dataclass(frozen=True)
class Binaries:
    files: tuple[Binary, ...]
    cni: tuple[Binary, ...]
    containerd: tuple[Binary, ...] = ()  # with kubernetes.containerd-source: bundle

    @classmethod
    def from_cluster(cls, cluster: Cluster) -> "Binaries":
        directory = Path(cluster.kubernetes.binaries_dir or "").expanduser()
        manifest = Manifest.read(directory) if (directory / MANIFEST).is_file() else None

        def one(relative: str) -> Binary:
            local = directory / relative
            if not local.is_file():
                raise OpenIError(f"{local} does not exist (kubernetes.binaries-dir must hold {', '.join(NAMES)} "
                                 f"and cni/{{{','.join(CNI_BINARIES)}}}: make it with inv k8s.bundle)")
            digest = file_digest(local)
            entry = manifest.binary(relative) if manifest is not None else None
            if manifest is not None and (entry is None or entry.sha256 != digest):
                raise OpenIError(f"{local} does not match {directory / MANIFEST} "
                                 f"({'not listed' if entry is None else 'sha256 differs'}): the bundle was changed "
                                 f"after it was made")
            return Binary(relative.rsplit("/", 1)[-1], local, digest)

        containerd = tuple(one(f"containerd/{name}") for name in CONTAINERD_BINARIES) \
            if cluster.kubernetes.containerd_from_bundle else ()
        return cls(tuple(one(name) for name in NAMES), tuple(one(f"cni/{name}") for name in CNI_BINARIES), containerd)
