"""Tasks of the `testbed` namespace."""

from __future__ import annotations

from invoke import Context

from ..cli import not_implemented, task

WORKDIR_HELP = "the testbed's working directory (default ./.testbed)"


@task(
    help={
        "nodes": "number of worker nodes (default 1)",
        "masters": "number of master nodes (default 3)",
        "proxy": "add a proxy node (default on; --no-proxy for none)",
        "bare": "how many of the workers start without Docker",
        "workdir": WORKDIR_HELP,
    }
)
def up(c: Context, nodes=1, masters=3, proxy=True, bare=0, workdir=".testbed"):
    """Start a testbed: nodes with sshd and dockerd, a registry, and a configuration for it."""
    not_implemented("testbed.up")


@task(help={"workdir": WORKDIR_HELP})
def status(c: Context, workdir=".testbed"):
    """List the testbed's nodes and whether sshd and dockerd answer."""
    not_implemented("testbed.status")


@task(help={"workdir": WORKDIR_HELP})
def down(c: Context, workdir=".testbed"):
    """Remove every container, network, volume and file the testbed made."""
    not_implemented("testbed.down")
