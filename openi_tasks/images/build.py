"""`inv images.build`: the platform's images, parents first, rebuilt only when their inputs change.

An image's inputs are its rendered build context (Dockerfile, files, copied sources) and the
image it is built from. Their hash is stored on the image as the label `openi.inputs`; an image
whose inputs hash is already there is not built again (only tagged, if its tag changed).
Builds go through the Docker SDK and stream each step; a failing step ends the run naming the
image, the step and its last lines of output.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Cluster
from ..dockerbuild import built_image, inputs_hash, stream_build
from ..localfiles import local_docker
from ..render import TEMPLATES, environment, render
from ..report import Reporter
from ..state import StateDir
from .catalog import CatalogError, ImageSpec, build_order, used_by

if TYPE_CHECKING:
    import docker

REPOSITORY_ROOT = TEMPLATES.parent  # relative copy sources: the checkout, or the installed package


@dataclass(frozen=True)
class BuildResult:
    name: str
    ref: str
    status: str  # built | unchanged
    seconds: float
    image_id: str


def template_context(cluster: Cluster, images: dict[str, ImageSpec]) -> dict[str, Any]:
    """What an image's templates (and copy entries) may use."""
    return {
        "cluster": cluster,
        "images": {name: cluster.image_ref(name) for name in images},
        "base_os_image": cluster.services.images.base_os_image,
        "hadoop_version": cluster.services.hadoop.hadoop_version,
        "hadoop_dist": str(StateDir.of(cluster).hadoop_tarball(cluster.services.hadoop.hadoop_version)),
    }


def prepare_context(spec: ImageSpec, target: Path, context: dict[str, Any]) -> Path:
    """The build context of `spec`, rendered into `target`; a missing copy source is an error."""
    shutil.copytree(spec.context, target, ignore=shutil.ignore_patterns("*.template"))
    for template in spec.templates:
        relative = (spec.context / f"{template}.template").relative_to(spec.context.parent)
        (target / template).write_text(render(str(relative), root=spec.context.parent, **context))
    for entry in spec.copy:
        source = Path(environment().from_string(entry).render(**context)).expanduser()
        if not source.is_absolute():
            source = REPOSITORY_ROOT / source
        if not source.exists():
            raise CatalogError(f"image {spec.name}: copy source {source} does not exist")
        destination = target / "copied_file" / source.name
        destination.parent.mkdir(exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination)
        else:
            shutil.copy2(source, destination)
    return target


class ImageBuilder:
    def __init__(self, cluster: Cluster, images: dict[str, ImageSpec], reporter: Reporter,
                 client: "docker.DockerClient | None" = None) -> None:
        self.cluster = cluster
        self.images = images
        self.reporter = reporter
        self.client = client or local_docker()

    def build(self, names: list[str] | None = None, force: bool = False) -> list[BuildResult]:
        """Build the named images (default: all) after what they are built from."""
        order = build_order(self.images, names, used_by(self.cluster, self.images))
        context = template_context(self.cluster, self.images)
        results: dict[str, BuildResult] = {}
        with tempfile.TemporaryDirectory(prefix="openi-images-") as tmp:
            # Every context first: a template error or missing source stops the run before any build.
            prepared = {spec.name: prepare_context(spec, Path(tmp) / spec.name, context) for spec in order}
            for spec in order:
                parent = results[spec.prerequisite].image_id if spec.prerequisite else ""
                results[spec.name] = self._one(spec, prepared[spec.name], parent, force)
        rows = [(r.name, r.ref, r.status, f"{r.seconds:.1f}") for r in results.values()]
        self.reporter.table("images", ("image", "reference", "result", "seconds"), rows)
        return list(results.values())

    def _one(self, spec: ImageSpec, context_dir: Path, parent_id: str, force: bool) -> BuildResult:
        ref = self.cluster.image_ref(spec.name)
        inputs = inputs_hash(context_dir, parent_id)
        start = time.monotonic()
        if not force:
            image = built_image(self.client, inputs)
            if image is not None:
                if ref not in image.tags:
                    image.tag(ref)
                return BuildResult(spec.name, ref, "unchanged", time.monotonic() - start, image.id)
        dockerfile = "dockerfile" if (context_dir / "dockerfile").is_file() else "Dockerfile"
        with self.reporter.activity(f"building {spec.name} as {ref}") as activity:
            image_id = stream_build(self.client, spec.name, context_dir, ref, inputs, activity.step,
                                    dockerfile=dockerfile, nocache=force)
        return BuildResult(spec.name, ref, "built", time.monotonic() - start, image_id)
