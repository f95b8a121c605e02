"""Tasks of the `k8s` namespace: bring Kubernetes up on the hosts and keep it healthy."""

from __future__ import annotations

from pathlib import Path

from invoke import Context, Exit

from ..cli import PATH_HELP, confirm, load, not_implemented, split_list, task
from ..report import Reporter
from .clean import clean as run_clean
from .deploy import deploy as run_deploy
from .kubectl import install_kubectl as run_install_kubectl
from .status import show_status

NODES_HELP = "nodes file: machine-list entries of the hosts to act on (same format as machine-list)"


@task(
    help={
        "path": PATH_HELP,
        "dry-run": "connect and gather facts, then print what would change on each host; change nothing",
        "only": "run only these phases (comma-separated)",
        "skip": "skip these phases (comma-separated)",
        "break-lock": "remove a stale cluster lock left by an interrupted run",
    }
)
def deploy(c: Context, path=None, dry_run=False, only=None, skip=None, break_lock=False):
    """Deploy Kubernetes: Docker, etcd (TLS), API endpoint, control plane, workers, add-ons."""
    reporter = Reporter()
    cluster = load(c, path, reporter)
    run_deploy(cluster, reporter, dry_run=dry_run, only=split_list(only), skip=split_list(skip), break_lock=break_lock)


@task(
    help={
        "path": PATH_HELP,
        "yes": "do not ask for confirmation",
        "dry-run": "show what would be removed from each host; remove nothing",
        "break-lock": "remove a stale cluster lock left by an interrupted run",
    }
)
def clean(c: Context, path=None, yes=False, dry_run=False, break_lock=False):
    """Remove everything deploy put on the hosts (containers, files, data, kubeadm state)."""
    reporter = Reporter()
    cluster = load(c, path, reporter)
    if not (yes or dry_run):
        confirm(f"This removes Kubernetes and etcd's data from {len(cluster.machines)} hosts of {cluster.id}.",
                cluster.id)
    run_clean(cluster, reporter, dry_run=dry_run, break_lock=break_lock)


@task(
    name="install-kubectl",
    help={
        "path": PATH_HELP,
        "bin-dir": "where to put kubectl (default ~/.local/bin)",
        "kubeconfig": "the kubeconfig file to merge the cluster's context into (default ~/.kube/config)",
    },
)
def install_kubectl(c: Context, path=None, bin_dir="~/.local/bin", kubeconfig="~/.kube/config"):
    """Install kubectl here and merge the cluster's admin kubeconfig into ~/.kube/config."""
    reporter = Reporter()
    cluster = load(c, path, reporter)
    for line in run_install_kubectl(cluster, Path(bin_dir).expanduser(), Path(kubeconfig).expanduser()):
        reporter.info(line)


@task(help={"path": PATH_HELP})
def status(c: Context, path=None):
    """Show hosts, etcd members, the API endpoint's backends and Kubernetes nodes (exit 1 if unhealthy)."""
    reporter = Reporter()
    if not show_status(load(c, path, reporter), reporter):
        raise Exit(code=1)


@task(help={"path": PATH_HELP, "nodes": NODES_HELP, "force": "act even on a member that looks healthy"})
def etcdfix(c: Context, nodes=None, path=None, force=False):
    """Repair one broken etcd member: snapshot, remove, wipe, re-add, rejoin."""
    not_implemented("k8s.etcdfix")


@task(help={"path": PATH_HELP, "nodes": NODES_HELP})
def add(c: Context, nodes=None, path=None):
    """Add the hosts of a nodes file to the cluster (workers, or masters one at a time)."""
    not_implemented("k8s.add")


@task(help={"path": PATH_HELP, "nodes": NODES_HELP, "yes": "do not ask for confirmation"})
def remove(c: Context, nodes=None, path=None, yes=False):
    """Drain and remove the hosts of a nodes file (a master's etcd member too)."""
    not_implemented("k8s.remove")


@task(help={"path": PATH_HELP, "nodes": NODES_HELP})
def repair(c: Context, nodes=None, path=None):
    """Reset and rejoin broken workers (refused on etcd hosts)."""
    not_implemented("k8s.repair")


@task(help={"path": PATH_HELP, "out": "also copy the snapshot to this path"})
def backup(c: Context, path=None, out=None):
    """Write a timestamped, checksummed etcd snapshot to the state directory."""
    not_implemented("k8s.backup")


@task(help={"path": PATH_HELP, "snapshot": "the snapshot file to restore", "yes": "do not ask for confirmation"})
def restore(c: Context, snapshot=None, path=None, yes=False):
    """Rebuild the whole etcd cluster from a snapshot."""
    not_implemented("k8s.restore")
