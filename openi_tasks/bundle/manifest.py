"""A bundle's manifest: every artifact with its sha256, so that what is carried in can be checked.

    <bundle>/manifest.json
    <bundle>/kubeadm, kubelet, kubectl        (the directory is kubernetes.binaries-dir)
    <bundle>/cni/bridge, host-local, ...      (installed into /opt/cni/bin on every node)
    <bundle>/images/<name>.tar                (with --save-images: `docker load`able archives)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import OpenIError
from ..localfiles import file_digest

MANIFEST = "manifest.json"


@dataclass
class BinaryEntry:
    path: str  # relative to the bundle
    sha256: str
    size: int
    source: str


@dataclass
class ImageEntry:
    ref: str
    id: str  # the image's ID: the sha256 of its configuration
    source: str
    archive: str = ""
    archive_sha256: str = ""


@dataclass
class Manifest:
    kubernetes_version: str
    origin: str  # "source" (built from Go modules) or "upstream" (release downloads and registries)
    arch: str
    binaries: list[BinaryEntry] = field(default_factory=list)
    images: list[ImageEntry] = field(default_factory=list)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def write(self, directory: Path) -> Path:
        path = directory / MANIFEST
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, directory: Path) -> "Manifest":
        data = json.loads((directory / MANIFEST).read_text())
        data["binaries"] = [BinaryEntry(**b) for b in data.get("binaries", [])]
        data["images"] = [ImageEntry(**i) for i in data.get("images", [])]
        return cls(**data)

    def binary(self, path: str) -> BinaryEntry | None:
        return next((b for b in self.binaries if b.path == path), None)


def verify_file(directory: Path, entry: BinaryEntry) -> None:
    """Raise when a bundle file is missing or differs from its manifest entry."""
    path = directory / entry.path
    if not path.is_file():
        raise OpenIError(f"{path} is missing from the bundle (its manifest lists it)")
    digest = file_digest(path)
    if digest != entry.sha256:
        raise OpenIError(f"{path} does not match the bundle's manifest (sha256 {digest}, manifest {entry.sha256})")
