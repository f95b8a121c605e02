"""Tasks of the `services` namespace."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Context

from ..cli import PATH_HELP, confirm, load, required, task
from ..errors import OpenIError
from ..report import Reporter

if TYPE_CHECKING:
    from ..config import Cluster
    from .engine import ServiceEngine

SERVICE_HELP = "only this service (a name from service.yaml's servicelist)"


def engine(cluster: Cluster, reporter: Reporter) -> ServiceEngine:
    """The services engine over the cluster's API server (admin kubeconfig from the state directory)."""
    from ..state import StateDir
    from .api import KubernetesApi
    from .catalog import load_services
    from .engine import ServiceEngine
    kubeconfig = StateDir.of(cluster).admin_conf
    if not kubeconfig.is_file():
        raise OpenIError(f"no admin kubeconfig at {kubeconfig}: deploy Kubernetes first (inv k8s.deploy)")
    return ServiceEngine(cluster, load_services(), KubernetesApi(kubeconfig), reporter, kubeconfig=kubeconfig)


@task(
    help={
        "path": PATH_HELP,
        "service": SERVICE_HELP,
        "with-prerequisites": "with --service: deploy its prerequisites first",
    }
)
def deploy(c: Context, reporter: Reporter, path=None, service=None, with_prerequisites=False):
    """Deploy the platform's services in dependency order and wait until each is ready."""
    cluster = load(c, path, reporter)
    outcomes = engine(cluster, reporter).deploy([service] if service else None, with_prerequisites)
    reporter.table("services", ("service", "objects changed", "seconds"),
                   [(o.name, o.changed, f"{o.seconds:.1f}") for o in outcomes])


@task(help={"path": PATH_HELP, "service": SERVICE_HELP, "yes": "do not ask for confirmation"})
def clean(c: Context, reporter: Reporter, path=None, service=None, yes=False):
    """Stop services in reverse order and wipe their data on every node."""
    cluster = load(c, path, reporter)
    if not yes:
        what = service or "every service, and the platform's data on every node"
        confirm(f"This removes {what} from {cluster.id}.", cluster.id)
    engine(cluster, reporter).clean([service] if service else None)


@task(help={"path": PATH_HELP})
def status(c: Context, reporter: Reporter, path=None):
    """Show each service's desired and ready replicas, and where they run."""
    cluster = load(c, path, reporter)
    reporter.table("services", ("service", "workload", "ready", "nodes"), engine(cluster, reporter).status())


@task(help={"path": PATH_HELP, "service": SERVICE_HELP, "out": "directory to write rendered files to (required)"})
def render(c: Context, reporter: Reporter, path=None, service=None, out=None):
    """Write every rendered service file to a directory, offline."""
    import yaml
    from ..run import secrets_of
    from ..state import write_private
    from .catalog import deploy_order, load_services
    from .engine import ServiceEngine
    target = Path(required(out, "--out DIR"))
    cluster = load(c, path, reporter)
    services = load_services()
    offline = ServiceEngine(cluster, services, api=None, reporter=reporter)  # rendering needs no cluster
    count = 0
    secrets = [s for s in secrets_of(cluster) if len(s) >= 4]
    for rendered in offline.render(deploy_order(services, [service] if service else list(services))):
        directory = target / rendered.spec.name
        directory.mkdir(parents=True, exist_ok=True)
        files = dict(rendered.files)
        files["objects.yaml"] = yaml.safe_dump_all(rendered.objects, sort_keys=False)
        for name, text in files.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            # A file that holds a secret of the configuration (or a Secret object) only its owner reads.
            if any(secret in text for secret in secrets) or "kind: Secret" in text:
                write_private(directory / name, text)
            else:
                (directory / name).write_text(text)
            count += 1
    reporter.info(f"wrote {count} files under {target}")
