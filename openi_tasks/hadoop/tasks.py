"""Tasks of the `hadoop` namespace."""

from __future__ import annotations

from invoke import Context

from ..cli import PATH_HELP, not_implemented, task


@task(help={"path": PATH_HELP, "out": "where to write the generated configuration"})
def prepare(c: Context, path=None, out=None):
    """Generate Hadoop's per-role configuration and YARN queues from the cluster model."""
    not_implemented("hadoop.prepare")


@task(help={"path": PATH_HELP})
def reconfigure(c: Context, path=None):
    """Stop Hadoop's services, replace their configuration maps, start them again."""
    not_implemented("hadoop.reconfigure")
