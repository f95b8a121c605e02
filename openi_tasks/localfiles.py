"""Small helpers for files and services on the operator's own machine."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import OpenIError

if TYPE_CHECKING:
    import docker


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file, read in chunks (snapshots and tarballs can be large)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def local_docker(timeout: int = 600) -> "docker.DockerClient":
    """This machine's Docker engine, or a clear error saying it cannot be reached."""
    import docker  # imported on use: commands that never build images should not pay for it

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except Exception as exc:  # every way of not reaching Docker is the same error for the operator
        raise OpenIError(f"Docker is not reachable on this machine ({exc}); start dockerd first") from None
