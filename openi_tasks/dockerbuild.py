"""Image builds through the Docker SDK, shared by the platform's images and the Kubernetes bundle.

An image's inputs (its build context and the image it starts from) are hashed into the label
`openi.inputs`; an image with that label is not built again. Builds stream their steps to a
progress callback; a failing step raises with the image, the step and its last lines.
"""

from __future__ import annotations

import hashlib
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .errors import OpenIError

if TYPE_CHECKING:
    import docker

LABEL = "openi.inputs"


def is_stand_in(name: str) -> bool:
    """Whether an image (a catalog name or a repository) is a stand-in: it ends in -stand-in. A
    stand-in only answers the probes of software that cannot be built here; the name says so."""
    return name.endswith("-stand-in")


class ImageBuildFailed(OpenIError):
    """A build step failed: names the image, the step, and its last lines."""


def inputs_hash(context_dir: Path, parent_id: str, extra: str = "") -> str:
    digest = hashlib.sha256(parent_id.encode() + b"\0" + extra.encode() + b"\0")
    for path in sorted(p for p in context_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context_dir)).encode() + b"\0")
        digest.update(oct(path.stat().st_mode & 0o777).encode() + b"\0")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def built_image(client: "docker.DockerClient", inputs: str):
    """An image already built from these inputs, or None."""
    existing = client.images.list(filters={"label": f"{LABEL}={inputs}"})
    return existing[0] if existing else None


def _bookkeeping(line: str) -> bool:
    """Docker's own progress lines, which say nothing about what a step printed."""
    text = line.strip()
    return text.startswith(("--->", "Removing intermediate container", "Successfully built", "Successfully tagged"))


def stream_build(client: "docker.DockerClient", name: str, context_dir: Path, tag: str, inputs: str,
                 progress: Callable[[str], None], *, dockerfile: str = "Dockerfile", nocache: bool = False,
                 buildargs: dict[str, str] | None = None) -> str:
    """Build `context_dir` as `tag` labelled with `inputs`; the new image's ID."""
    from docker.errors import APIError, ImageNotFound

    tail: deque[str] = deque(maxlen=12)
    step = "(before the first step)"
    try:
        stream = client.api.build(
            path=str(context_dir), dockerfile=dockerfile, tag=tag, labels={LABEL: inputs}, buildargs=buildargs,
            rm=True, forcerm=True, pull=False, nocache=nocache, decode=True,
        )
        for chunk in stream:
            if "stream" in chunk:
                for line in chunk["stream"].splitlines():
                    if line.startswith("Step "):
                        step = line.strip()
                        progress(f"{name}: {step}")
                    elif line.strip() and not _bookkeeping(line):
                        tail.append(line.rstrip())
            if "error" in chunk:
                tail.append(chunk["error"].rstrip())
                detail = "\n    ".join(tail)
                raise ImageBuildFailed(f"image {name} failed at {step}:\n    {detail}")
    except APIError as exc:
        raise ImageBuildFailed(f"image {name} failed at {step}: {exc.explanation or exc}") from None
    try:
        return client.images.get(tag).id
    except ImageNotFound:
        raise ImageBuildFailed(f"image {name}: the build ended without an image") from None
