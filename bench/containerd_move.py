#!/usr/bin/env python3
"""A cluster on Docker's containerd (Debian's 1.6) moved to openi-tasks' containerd 2 from the
bundle, node by node, as docs/operations.md "Moving to containerd 2" says, while a client writes
through the API endpoint.

On a fresh testbed (3 masters behind the proxy node's endpoint, the proxy node, 2 workers):

1. `containerd-source: host`, `k8s.deploy`: every node's runtime is Docker's containerd 1.6.
2. `containerd-source: bundle`: `k8s.deploy` refuses, naming the way, and changes nothing.
3. `k8s.upgrade --to <the version it runs>`: the masters one at a time, then the workers (and the
   proxy node) in batches of one, each drained and moved in place.
4. Every node Ready on containerd 2; a second `k8s.upgrade` and `k8s.deploy` change nothing; every
   acknowledged write is there; the failed writes are counted.

    python bench/containerd_move.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

# bench/ is the script's directory, first on sys.path; upgrade_k8s puts the checkout there too.
from upgrade_k8s import ApiWriter, inv


def must(what: str, result: tuple[float, subprocess.CompletedProcess]) -> float:
    seconds, done = result
    assert done.returncode == 0, f"{what}:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    print(f"{what}: {seconds:.0f} s")
    return seconds


def runtimes(kubeconfig: Path) -> dict[str, tuple[bool, str]]:
    """Each Node: Ready, and the runtime its kubelet reports (containerd://2.4.2)."""
    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    found = {}
    for node in core.list_node().items:
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        found[node.metadata.name] = (ready, node.status.node_info.container_runtime_version)
    return found


def set_runtime(config: Path, source: str) -> None:
    path = config / "kubernetes-configuration.yaml"
    document = yaml.safe_load(path.read_text())
    document["kubernetes"]["containerd-source"] = source
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", help="testbed directory to use and leave up")
    args = parser.parse_args()
    from openi_tasks.config import load_cluster
    from openi_tasks.state import StateDir
    from openi_tasks.testbed.testbed import Testbed

    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="openi-containerd-move-"))
    bed = Testbed(workdir, say=print)
    try:
        config = Path(bed.up(masters=3, workers=2, proxy=True))
        set_runtime(config, "host")
        must("k8s.deploy on Docker's containerd", inv("k8s.deploy", "-p", str(config)))
        cluster = load_cluster(config)
        admin = StateDir.of(cluster).admin_conf
        print("before:", runtimes(admin))
        set_runtime(config, "bundle")
        seconds, refused = inv("k8s.deploy", "-p", str(config))
        reason = [line for line in (refused.stdout + refused.stderr).splitlines() if "k8s.upgrade" in line][:1]
        print(f"k8s.deploy with containerd-source: bundle: exit {refused.returncode} in {seconds:.0f} s, {reason}")
        assert refused.returncode != 0 and reason

        writer = ApiWriter(admin, prefix="move-load")
        writer.start()
        started = time.perf_counter()
        version = cluster.kubernetes.kubernetes_version
        must(f"k8s.upgrade --to {version} (the runtime only)", inv("k8s.upgrade", "-p", str(config), "--to", version,
                                                                   "--batch", "1"))
        moved = time.perf_counter() - started
        time.sleep(3)
        writer.done.set()
        writer.join(15)
        after = runtimes(admin)
        print("after:", after)
        missing = writer.missing()
        print(f"moved every node in {moved:.0f} s; API through the endpoint: {len(writer.acknowledged)} ConfigMaps "
              f"created, {len(writer.failed)} failed {writer.failed[:5]}; acknowledged and missing afterwards: "
              f"{len(missing)}")
        seconds, upgrade = inv("k8s.upgrade", "-p", str(config), "--to", version)
        print(f"second k8s.upgrade: exit {upgrade.returncode}, {seconds:.0f} s, "
              f"{'nothing to upgrade' if 'nothing to upgrade' in upgrade.stdout else 'CHANGES'}")
        seconds, again = inv("k8s.deploy", "-p", str(config))
        print(f"k8s.deploy afterwards: exit {again.returncode}, {seconds:.0f} s, "
              f"{'no changes' if 'no changes' in again.stdout else 'CHANGES'}")
        assert all(ready and runtime.startswith("containerd://2.") for ready, runtime in after.values()), after
        assert "nothing to upgrade" in upgrade.stdout, upgrade.stdout[-3000:]
        assert not missing and again.returncode == 0 and "no changes" in again.stdout, again.stdout[-3000:]
    finally:
        if not args.keep:
            bed.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
