"""Tasks of the `testbed` namespace."""

from __future__ import annotations

from pathlib import Path

from invoke import Context

from ..cli import task
from ..report import Reporter

WORKDIR_HELP = "the testbed's working directory (default ./.testbed)"


@task(
    help={
        "nodes": "number of worker nodes (default 1)",
        "masters": "number of master nodes (default 3)",
        "proxy": "add a proxy node as the API endpoint (default on; --no-proxy for none)",
        "bare": "how many of the worker nodes start without Docker (default 0)",
        "workdir": WORKDIR_HELP,
        "kubernetes-version": "the Kubernetes version of its configuration and bundle (default: the project's)",
        "load-balancer": "with --no-proxy: make the API endpoint an address the testbed reserves for a load "
                         "balancer that you run (external mode)",
    }
)
def up(c: Context, reporter: Reporter, nodes=1, masters=3, proxy=True, bare=0, workdir=".testbed",
       kubernetes_version=None, load_balancer=False):
    """Start a testbed: nodes with sshd and dockerd, a registry, a bundle, and a configuration for it."""
    from .testbed import Testbed
    testbed = Testbed(Path(workdir), say=reporter.info)
    config_dir = testbed.up(masters=int(masters), workers=int(nodes), proxy=proxy, bare=int(bare),
                            kubernetes_version=kubernetes_version, reporter=reporter, load_balancer=load_balancer)
    reporter.table("testbed", ("node", "address", "role", "container", "sshd", "dockerd"),
                   [list(row.values()) for row in testbed.status()])
    print(config_dir)


@task(help={"workdir": WORKDIR_HELP})
def status(c: Context, reporter: Reporter, workdir=".testbed"):
    """List the testbed's nodes and whether sshd and dockerd answer."""
    from .testbed import Testbed
    testbed = Testbed(Path(workdir))
    rows = testbed.status()
    reporter.table(f"testbed {testbed.id} ({testbed.workdir})", ("node", "address", "role", "container", "sshd", "dockerd"),
                     [list(row.values()) for row in rows])


@task(help={"workdir": WORKDIR_HELP})
def down(c: Context, reporter: Reporter, workdir=".testbed"):
    """Remove every container, network, volume and file the testbed made."""
    from .testbed import Testbed
    removed = Testbed(Path(workdir)).down()
    reporter.info(f"removed {len(removed)} things" + "".join(f"\n  {r}" for r in removed))
