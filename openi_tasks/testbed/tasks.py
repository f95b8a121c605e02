"""Tasks of the `testbed` namespace."""

from __future__ import annotations

from pathlib import Path

from invoke import Context

from ..cli import task, whole_number
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
        "gpu-workers": "how many workers look like GPU nodes with 2 GPUs, through STAND-INS of nvidia-smi and "
                       "nvidia-container-runtime (default 0)",
    }
)
def up(c: Context, reporter: Reporter, nodes=None, masters=None, proxy=True, bare=None, workdir=".testbed",
       kubernetes_version=None, load_balancer=False, gpu_workers=None):
    """Start a testbed: nodes with sshd and dockerd, a registry, a bundle, and a configuration for it."""
    from .testbed import Testbed
    testbed = Testbed(Path(workdir), say=reporter.info)
    config_dir = testbed.up(masters=whole_number(masters, "--masters", 3), workers=whole_number(nodes, "--nodes", 1),
                            proxy=proxy, bare=whole_number(bare, "--bare", 0), kubernetes_version=kubernetes_version,
                            reporter=reporter, load_balancer=load_balancer,
                            gpu_workers=whole_number(gpu_workers, "--gpu-workers", 0))
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


@task(help={"workdir": WORKDIR_HELP,
            "nodes": "number of worker nodes (default 2)",
            "gpu-workers": "how many of them are GPU nodes of STAND-INS (default 1)"})
def demo(c: Context, reporter: Reporter, workdir=".testbed", nodes=None, gpu_workers=None):
    """The whole platform on this machine: testbed.up, k8s.deploy, hadoop.prepare, images.build,
    images.push, services.deploy; then the nodes and where the services answer. Safe to run again."""
    from .demo import demo as run_demo
    run_demo(Path(workdir), reporter, workers=whole_number(nodes, "--nodes", 2),
             gpu_workers=whole_number(gpu_workers, "--gpu-workers", 1))
