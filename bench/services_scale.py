#!/usr/bin/env python3
"""`services.deploy` and `services.clean` at hundreds of nodes: a real control plane with KWOK's
simulated GPU nodes.

The control plane is real: a single-master testbed deployed by `inv k8s.deploy` (kube-apiserver,
kube-controller-manager, kube-scheduler and etcd from the testbed's bundle, built from their Go
modules). The nodes are simulated: KWOK (built from its Go module, `sigs.k8s.io/kwok`) keeps N Node
objects Ready and plays the kubelet for every pod scheduled onto them (Running, Ready, a Job's pod
Succeeded, a deleted pod gone). Their machine list is that of a GPU cluster: one platform master
(pai-master, zkid), the rest GPU workers of four machine types (pai-worker, node-exporter), added
to the testbed's configuration. Their addresses are never contacted: services.* talks only to the
API server.

For each N it runs, each as the operator runs it (a new process), counting the requests each sends
to the API server (bench/api_counted.py): services.deploy of the whole catalog, the same again
(nothing changes), services.clean. The testbed's own master carries no flags, so that only the
cleaning DaemonSet (which runs everywhere) runs a real pod: its image is built from Debian's
packages and pushed to the testbed's registry first.

    python bench/services_scale.py                      # 100, then 500 nodes
    python bench/services_scale.py --nodes 100 --keep /tmp/kb
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openi_tasks.testbed import kwok  # noqa: E402

INV = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
COUNTED = [sys.executable, str(ROOT / "bench" / "api_counted.py")]
# A realistic mix of GPU machine types.
SKUS = {
    "dgx-a100": {"mem": 1024, "cpu": {"vcore": 128}, "gpu": {"type": "a100", "count": 8}},
    "v100x8": {"mem": 512, "cpu": {"vcore": 64}, "gpu": {"type": "v100", "count": 8}},
    "v100x4": {"mem": 256, "cpu": {"vcore": 32}, "gpu": {"type": "v100", "count": 4}},
    "t4x2": {"mem": 128, "cpu": {"vcore": 32}, "gpu": {"type": "t4", "count": 2}},
}


def fake_name(i: int) -> str:
    return f"gpu{i:04d}"


def fake_sku(i: int) -> str:
    return list(SKUS)[i % len(SKUS)]


def fake_machine(i: int) -> dict:
    entry = {"hostname": fake_name(i), "hostip": f"10.251.{i // 250}.{i % 250 + 1}", "machine-type": fake_sku(i),
             "k8s-role": "worker", "node-exporter": "true"}
    entry.update({"pai-master": "true", "zkid": "1"} if i == 0 else {"pai-worker": "true"})
    return entry


def fake_node(i: int) -> dict:
    sku = SKUS[fake_sku(i)]
    return kwok.node(fake_name(i), sku["cpu"]["vcore"], sku["mem"], sku["gpu"]["count"])


def configuration(base: Path, out: Path, count: int) -> Path:
    """The testbed's configuration with `count` simulated GPU nodes; its own hosts without flags."""
    from openi_tasks.config import load_cluster
    from tests.test_hadoop import hadoop_tarball

    # Hadoop's tarball cannot be downloaded here, and only its etc/hadoop matters to hadoop.prepare:
    # the tests' tarball of that layout (hadoop-service's pods run on simulated nodes only).
    version = load_cluster(base).services.hadoop.hadoop_version
    tarball = hadoop_tarball(out.parent / f"hadoop-{version}.tar.gz", version)
    return kwok.with_simulated_machines(base, out, [fake_machine(i) for i in range(count)], copy.deepcopy(SKUS),
                                        tarball)


def run(args: list[str]) -> tuple[float, str, dict]:
    """(wall seconds, stdout, API requests by method) of one command in a new process."""
    start = time.perf_counter()
    done = subprocess.run(COUNTED + args, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{args[0]} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    counts = json.loads(done.stderr.strip().splitlines()[-1])["api-requests"]
    return seconds, done.stdout, counts


def labelling(stdout: str) -> str:
    found = re.search(r"node labels: (\d+) of (\d+) node\(s\) changed in ([\d.]+)s", stdout)
    return f"{found[3]} s ({found[1]} changed)" if found else "-"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, nargs="*", default=[100, 500])
    parser.add_argument("--keep", help="workdir to use and keep (default: a temporary one, removed)")
    options = parser.parse_args()

    from openi_tasks.config import load_cluster
    from openi_tasks.state import StateDir
    from openi_tasks.testbed.testbed import Testbed

    workdir = Path(options.keep or tempfile.mkdtemp())
    workdir.mkdir(parents=True, exist_ok=True)
    bed = Testbed(workdir / "testbed", say=print)
    rows = []
    try:
        # A kept testbed is used again (k8s.deploy then changes nothing).
        kept = workdir / "testbed" / "cluster-configuration"
        base = kept if kept.is_dir() else bed.up(masters=1, workers=0, proxy=False)
        subprocess.run(INV + ["k8s.deploy", "-p", str(base)], check=True, stdout=subprocess.DEVNULL)
        for image in ("cleaning-image",):
            subprocess.run(INV + ["images.build", "-p", str(base), "--name", image], check=True, stdout=subprocess.DEVNULL)
            subprocess.run(INV + ["images.push", "-p", str(base), "--name", image], check=True, stdout=subprocess.DEVNULL)
        admin = StateDir.of(load_cluster(base)).admin_conf
        with kwok.Simulator(admin, workdir) as simulator:
            for count in sorted(options.nodes):
                simulator.add([fake_node(i) for i in range(count)])
                directory = configuration(base, workdir / f"config-{count}", count)
                # Hadoop's per-role configuration, for this machine list (hadoop-service's ConfigMaps).
                subprocess.run(INV + ["hadoop.prepare", "-p", str(directory)], check=True, stdout=subprocess.DEVNULL)
                deploy = run(["services.deploy", "-p", str(directory)])
                again = run(["services.deploy", "-p", str(directory)])
                if "no changes" not in again[1]:
                    raise SystemExit(f"the second services.deploy changed something:\n{again[1][-3000:]}")
                clean = run(["services.clean", "-p", str(directory), "--yes"])
                rows.append((count, deploy, again, clean))
    finally:
        if not options.keep:
            bed.down()
    print("\n| nodes | command | seconds | API requests | by method | node labelling |")
    print("|---:|---|---:|---:|---|---|")
    for count, *runs in rows:
        for name, (seconds, stdout, counts) in zip(("services.deploy", "services.deploy (again)", "services.clean"), runs):
            methods = ", ".join(f"{m} {n}" for m, n in sorted(counts.items()))
            print(f"| {count} | {name} | {seconds:.1f} | {sum(counts.values())} | {methods} | "
                  f"{labelling(stdout) if name.startswith('services.deploy') else '-'} |")


if __name__ == "__main__":
    main()
