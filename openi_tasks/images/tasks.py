"""Tasks of the `images` namespace."""

from __future__ import annotations

from invoke import Context

from ..cli import PATH_HELP, not_implemented, task

NAME_HELP = "only this image (and the images it is built from)"


@task(help={"path": PATH_HELP, "name": NAME_HELP, "force": "rebuild even when nothing changed"})
def build(c: Context, path=None, name=None, force=False):
    """Build the platform's images in dependency order (unchanged images are not rebuilt)."""
    not_implemented("images.build")


@task(help={"path": PATH_HELP, "name": NAME_HELP})
def push(c: Context, path=None, name=None):
    """Push the platform's images to the configured registry, logging in when configured."""
    not_implemented("images.push")
