"""`inv testbed.demo`: the operator's whole sequence, on a testbed of this machine.

    testbed.up --nodes 2 --gpu-workers 1   3 masters, the proxy, 2 workers (one a GPU node of STAND-INS)
    k8s.deploy                             real Kubernetes from the testbed's bundle, every node Ready
    hadoop.prepare                         Hadoop assembled from its Maven artifacts
    images.build, images.push              the platform's images, and the stand-ins the configuration runs
    services.deploy                        the whole catalog, in dependency order

Each step after the first is the command an operator types, run as its own process (so what the
demo does is exactly what those commands do), and printed before it runs. Every step is
idempotent, so a second demo changes nothing and is quick. It ends with the nodes and the
addresses where the services answer. `inv testbed.down` removes it all.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from ..config import Cluster, load_cluster
from ..errors import OpenIError
from ..report import Reporter
from ..state import StateDir
from .testbed import Testbed

STEPS = (
    ("k8s.deploy",),
    ("hadoop.prepare",),
    ("images.build",),
    ("images.push",),
    ("services.deploy",),
)


class DemoFailed(OpenIError):
    """A step of the demo failed; its own output above says why."""


def demo(workdir: Path, reporter: Reporter, workers: int = 2, gpu_workers: int = 1) -> Path:
    """Bring the testbed, Kubernetes and the services up; return the configuration directory."""
    started = time.monotonic()
    reporter.info(f"$ inv testbed.up --workdir {workdir} --nodes {workers} --gpu-workers {gpu_workers}")
    testbed = Testbed(workdir, say=reporter.info)
    config = testbed.up(masters=3, workers=workers, proxy=True, gpu_workers=gpu_workers, reporter=reporter)
    timings = [("testbed.up", time.monotonic() - started)]
    for step in STEPS:
        command = [*step, "-p", str(config)]
        reporter.info(f"$ inv {' '.join(command)}")
        begun = time.monotonic()
        # The installed command's entry point: the same tasks as `inv`, from any directory.
        done = subprocess.run([sys.executable, "-m", "openi_tasks.main", *command])
        timings.append((step[0], time.monotonic() - begun))
        if done.returncode != 0:
            raise DemoFailed(f"`inv {' '.join(command)}` failed (exit {done.returncode}); the testbed stays up: "
                             f"fix and run the demo again, or remove it with inv testbed.down --workdir {workdir}")
    cluster = load_cluster(config)
    reporter.table("steps", ("step", "seconds"), [(name, f"{seconds:.0f}") for name, seconds in timings])
    show(cluster, reporter)
    reporter.info(f"the whole demo took {time.monotonic() - started:.0f} s")
    return config


def show(cluster: Cluster, reporter: Reporter) -> None:
    """The nodes as the API server sees them, and where each service answers."""
    from ..kube import KubeApi

    state = StateDir.of(cluster)
    nodes = KubeApi(state.admin_conf).nodes()
    reporter.table("nodes", ("node", "status", "kubelet"),
                   [(n.name, "Ready" if n.ready else f"NotReady: {n.not_ready_reason}", n.kubelet_version)
                    for n in sorted(nodes.values(), key=lambda n: n.name)])
    master = cluster.platform_master().address
    s = cluster.services
    entry = f"http://{master}:{s.pylon.port}"
    reporter.table("where the services answer", ("service", "address"), [
        ("pylon, the entry point (web portal at /)", f"{entry}/"),
        ("rest-server (a STAND-IN here)", f"{entry}/rest-server/"),
        ("Grafana (a STAND-IN here)", f"{entry}/grafana/"),
        ("Prometheus", f"{entry}/prometheus/"),
        ("HDFS NameNode", f"http://{master}:9870/"),
        ("YARN ResourceManager", f"http://{master}:8088/"),
        ("ZooKeeper", f"{master}:2181"),
    ])
    kubectl = Path(str(cluster.kubernetes.binaries_dir or "")) / "kubectl"
    reporter.info(f"kubectl: KUBECONFIG={state.admin_conf} {kubectl} get nodes")
