"""Tasks of the `services` namespace."""

from __future__ import annotations

from invoke import Context

from ..cli import PATH_HELP, not_implemented, task

SERVICE_HELP = "only this service (a name from service.yaml's servicelist)"


@task(
    help={
        "path": PATH_HELP,
        "service": SERVICE_HELP,
        "with-prerequisites": "with --service: deploy its prerequisites first",
    }
)
def deploy(c: Context, path=None, service=None, with_prerequisites=False):
    """Deploy the platform's services in dependency order and wait until each is ready."""
    not_implemented("services.deploy")


@task(help={"path": PATH_HELP, "service": SERVICE_HELP, "yes": "do not ask for confirmation"})
def clean(c: Context, path=None, service=None, yes=False):
    """Stop services in reverse order and wipe their data on every node."""
    not_implemented("services.clean")


@task(help={"path": PATH_HELP})
def status(c: Context, path=None):
    """Show each service's desired and ready replicas, and where they run."""
    not_implemented("services.status")


@task(help={"path": PATH_HELP, "service": SERVICE_HELP, "out": "directory to write rendered files to"})
def render(c: Context, path=None, service=None, out=None):
    """Write every rendered service file to a directory, offline."""
    not_implemented("services.render")
