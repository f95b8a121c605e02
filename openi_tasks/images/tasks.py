"""Tasks of the `images` namespace."""

from __future__ import annotations

from pathlib import Path

from invoke import Context

from ..cli import PATH_HELP, load, task
from ..report import Reporter

NAME_HELP = "only this image (and the images it is built from)"
CATALOG_HELP = "a directory with its own service.yaml and images/<image>/ build contexts (default: openi-tasks' own)"


def load_catalog(directory: str | None):
    from .catalog import load_images
    if directory is None:
        return load_images()
    root = Path(directory).expanduser()
    return load_images(root / "service.yaml", root / "images")


@task(help={"path": PATH_HELP, "name": NAME_HELP, "force": "rebuild even when nothing changed", "catalog": CATALOG_HELP})
def build(c: Context, reporter: Reporter, path=None, name=None, force=False, catalog=None):
    """Build the platform's images in dependency order (unchanged images are not rebuilt)."""
    from .build import ImageBuilder
    cluster = load(c, path, reporter)
    ImageBuilder(cluster, load_catalog(catalog), reporter).build([name] if name else None, force=force)


@task(help={"path": PATH_HELP, "name": NAME_HELP, "catalog": CATALOG_HELP})
def push(c: Context, reporter: Reporter, path=None, name=None, catalog=None):
    """Push the platform's images to the configured registry, logging in when configured."""
    from .push import push as push_images
    cluster = load(c, path, reporter)
    push_images(cluster, load_catalog(catalog), reporter, [name] if name else None)
