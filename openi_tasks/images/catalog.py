"""The platform's images: `service.yaml`'s `imagelist`, as the original toolkit wrote it.

    imagelist:
      hadoop-run:
        templatelist: [dockerfile]      # templates/images/hadoop-run/dockerfile.template -> dockerfile
        copy: ["{{ hadoop_dist }}"]     # more files for the build context (rendered; relative to the repo)
        prerequisite: base-image        # built first; its tag is available as images['base-image']

The word `None` means none, as in the original. Every problem (unknown or missing prerequisite,
a cycle, a build context or template that does not exist) is reported before anything is built,
naming the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Collection

from ..dockerbuild import is_stand_in
from ..errors import OpenIError
from ..graph import CycleError, dependency_order
from ..render import TEMPLATES
from ..service_yaml import SERVICE_YAML, entries, is_file, report, within

CONTEXTS = TEMPLATES / "images"


class CatalogError(OpenIError):
    """service.yaml's imagelist (or an image's build context) is wrong; nothing was built."""

    exit_code = 2


@dataclass(frozen=True)
class ImageSpec:
    name: str
    templates: tuple[str, ...]
    copy: tuple[str, ...]
    prerequisite: str | None
    context: Path


def load_images(service_yaml: Path = SERVICE_YAML, contexts: Path = CONTEXTS) -> dict[str, ImageSpec]:
    """The imagelist, checked; raises `CatalogError` listing every problem."""
    listed, problems = entries(service_yaml, "imagelist", "image", ("templatelist", "copy", "prerequisite"), CatalogError)
    images = {}
    for name, entry in listed.items():
        spec = ImageSpec(
            name=name,
            templates=entry.words("templatelist"),
            copy=entry.words("copy"),
            prerequisite=entry.word("prerequisite"),
            context=contexts / name,
        )
        if not spec.context.is_dir():
            problems.append(f"image {name}: its build context {spec.context} does not exist")
        for template in spec.templates:
            if not within(spec.context.resolve(), template):
                problems.append(f"image {name}: {template} is not a file in {spec.context}")
            elif not is_file(spec.context / f"{template}.template"):
                problems.append(f"image {name}: template {spec.context / (template + '.template')} does not exist")
        images[name] = spec
    for spec in images.values():
        if spec.prerequisite is not None and spec.prerequisite not in images:
            problems.append(f"image {spec.name}: its prerequisite {spec.prerequisite} is not in the imagelist")
        elif spec.prerequisite and is_stand_in(spec.prerequisite) and not is_stand_in(spec.name):
            problems.append(f"image {spec.name}: is built from the stand-in {spec.prerequisite}")
    if not problems:
        try:
            dependency_order({n: _parent(s) for n, s in images.items()})
        except CycleError as exc:
            problems.append(f"images: {exc}")
    report(service_yaml, problems, CatalogError)
    return images


def _parent(spec: ImageSpec) -> tuple[str, ...]:
    return (spec.prerequisite,) if spec.prerequisite else ()


def build_order(images: dict[str, ImageSpec], names: list[str] | None = None,
                used: Collection[str] = ()) -> list[ImageSpec]:
    """Every image but the stand-ins that the configuration does not use (or those named and what
    they are built from), parents first. Stand-ins are for testing the platform's wiring: built and
    pushed when named, or when the configuration runs one (`used`: the names of the images it
    references), so a registry gets one only where a service is set to run it."""
    unknown = [n for n in names or [] if n not in images]
    if unknown:
        raise CatalogError(f"unknown image {', '.join(unknown)}; the images are: {', '.join(images)}")
    if not names:
        images = {n: s for n, s in images.items() if not is_stand_in(n) or n in used}
    order = dependency_order({n: _parent(s) for n, s in images.items()}, names or None)
    return [images[n] for n in order]


def used_by(cluster, images: dict[str, ImageSpec]) -> set[str]:
    """The images of the catalog that the services configuration names in `images.*` (a stand-in
    in place of a service whose code is not built here: `images.rest-server: <registry>/openi/
    service-stand-in:<tag>`)."""
    refs = {str(value) for value in cluster.services.images.model_dump().values() if value}
    return {name for name in images if cluster.image_ref(name) in refs}
