"""The testbed's images, built from Debian packages and reused while their inputs are unchanged.

The base image is a `debootstrap` root file system brought in with `docker import`; the others
are built from it with the build contexts under `templates/testbed/`. Each image is tagged
with a hash of its inputs (context files, build arguments, parent image), so an image whose
inputs did not change is found by its tag and not built again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import docker
from docker.errors import APIError, BuildError, ImageNotFound

from ..errors import OpenIError
from ..render import TEMPLATES

CONTEXTS = TEMPLATES / "testbed"
REPOSITORY = "openi-testbed"
SUITE = "bookworm"
MIRROR = os.environ.get("OPENI_TESTBED_MIRROR", "http://deb.debian.org/debian")

NODE_PACKAGES = (
    "systemd systemd-sysv dbus openssh-server sudo iproute2 python3 ca-certificates "
    "iptables procps kmod curl less"
)
# What a node may install during a deploy, served by the testbed's own mirror.
MIRROR_PACKAGES = "docker.io conntrack socat ethtool ebtables"


SLIM = ("rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* usr/share/doc/* usr/share/man/* "
        "usr/share/info/* usr/share/locale/* usr/share/i18n/locales/*")


class ImageBuildError(OpenIError):
    """Building a testbed image failed."""


@dataclass(frozen=True)
class TestbedImages:
    base: str
    node: str
    bare: str
    registry: str
    mirror: str


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _context_digest(context: Path) -> bytes:
    h = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(context)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.digest()


def _exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False


class ImageBuilder:
    """Builds (or finds) every testbed image through the Docker SDK."""

    def __init__(self, client: docker.DockerClient, say: Callable[[str], None]) -> None:
        self.client = client
        self.say = say

    def build_all(self) -> TestbedImages:
        base = self.base()
        node = self.from_context("node", {"BASE": base, "PACKAGES": f"{NODE_PACKAGES} docker.io"})
        bare = self.from_context("node", {"BASE": base, "PACKAGES": NODE_PACKAGES}, name="node-bare")
        return TestbedImages(
            base=base,
            node=node,
            bare=bare,
            registry=self.from_context("registry", {"BASE": base}),
            mirror=self.from_context("mirror", {"NODE": bare, "PACKAGES": MIRROR_PACKAGES}),
        )

    def base(self) -> str:
        """A minimal Debian from debootstrap, imported as an image."""
        tag = f"{REPOSITORY}/base:{_digest('debootstrap', SUITE, MIRROR, 'minbase', 'ca-certificates', SLIM)}"
        if _exists(self.client, tag):
            return tag
        if shutil.which("debootstrap") is None:
            raise ImageBuildError("debootstrap is not installed (apt-get install debootstrap)")
        self.say(f"building {tag} with debootstrap from {MIRROR} (once; about half a minute)")
        with tempfile.TemporaryDirectory(prefix="openi-testbed-") as tmp:
            rootfs, archive = Path(tmp) / "rootfs", Path(tmp) / "rootfs.tar"
            command = ["debootstrap", "--variant=minbase", "--include=ca-certificates", SUITE, str(rootfs), MIRROR]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                tail = "\n    ".join((result.stdout + result.stderr).strip().splitlines()[-8:])
                raise ImageBuildError(f"debootstrap failed:\n    {tail}")
            # As Debian's slim images: no downloaded packages, package lists, manuals or translations.
            # Every testbed and bundle image starts here; each is pulled on every node.
            subprocess.run(["sh", "-c", SLIM], cwd=rootfs, check=True)
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
            repository, _, version = tag.rpartition(":")
            self.client.api.import_image_from_file(
                str(archive), repository=repository, tag=version, changes=['CMD ["/bin/bash"]']
            )
        return tag

    def from_context(self, context: str, buildargs: dict[str, str], name: str | None = None) -> str:
        """Build `templates/testbed/<context>` unless an image with the same inputs exists."""
        path = CONTEXTS / context
        parents = [self.client.images.get(v).id for k, v in sorted(buildargs.items()) if k in ("BASE", "NODE")]
        inputs = _digest(_context_digest(path), repr(sorted(buildargs.items())), *parents)
        tag = f"{REPOSITORY}/{name or context}:{inputs}"
        if _exists(self.client, tag):
            return tag
        self.say(f"building {tag}")
        try:
            self.client.images.build(path=str(path), tag=tag, buildargs=buildargs, rm=True, forcerm=True, pull=False)
        except BuildError as exc:
            lines = [str(entry.get("stream") or entry.get("error") or "").rstrip() for entry in exc.build_log]
            tail = "\n    ".join([line for line in lines if line][-10:])
            raise ImageBuildError(f"building {tag} failed: {exc.msg}\n    {tail}") from None
        except APIError as exc:
            raise ImageBuildError(f"building {tag} failed: {exc.explanation or exc}") from None
        return tag
