"""Tasks of the `hadoop` namespace."""

from __future__ import annotations

from pathlib import Path

from invoke import Context

from ..cli import PATH_HELP, load, task
from ..report import Reporter


@task(help={"path": PATH_HELP, "out": "where to write the configuration (default <state>/hadoop/configuration)"})
def prepare(c: Context, reporter: Reporter, path=None, out=None):
    """Generate Hadoop's per-role configuration and YARN queues from the cluster model."""
    from .prepare import prepare as run_prepare
    cluster = load(c, path, reporter)
    tarball, written = run_prepare(cluster, Path(out).expanduser() if out else None)
    reporter.table(f"Hadoop {cluster.services.hadoop.hadoop_version} ({tarball})", ("role", "configuration"),
                   [(role, str(directory)) for role, directory in written.items()])


@task(help={"path": PATH_HELP})
def reconfigure(c: Context, reporter: Reporter, path=None):
    """Stop Hadoop's services, replace their configuration maps, start them again."""
    from ..services.tasks import engine as service_engine
    from .reconfigure import reconfigure as run_reconfigure
    run_reconfigure(service_engine(load(c, path, reporter), reporter))
