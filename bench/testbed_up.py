#!/usr/bin/env python3
"""`inv testbed.up` with 5 nodes (3 masters, a proxy, a worker): time, and idle memory per node.

    python bench/testbed_up.py            # node images cached (built by an earlier run)
    python bench/testbed_up.py --cold     # remove the testbed's images first: build from nothing

Memory is read from each node container's cgroup (v1 or v2) after 30 s idle: the resident
memory (rss) and the total including page cache.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parent.parent


def cgroup_memory(container) -> tuple[float, float]:
    """(rss MiB, usage MiB) of a container, from its cgroup."""
    v1 = Path(f"/sys/fs/cgroup/memory/docker/{container.id}")
    if v1.is_dir():
        stat = dict(line.split() for line in (v1 / "memory.stat").read_text().splitlines())
        usage = int((v1 / "memory.usage_in_bytes").read_text())
        return int(stat["total_rss"]) / 2**20, usage / 2**20
    v2 = next(Path("/sys/fs/cgroup").glob(f"**/docker-{container.id}.scope"), None) or Path(
        f"/sys/fs/cgroup/docker/{container.id}"
    )
    stat = dict(line.split() for line in (v2 / "memory.stat").read_text().splitlines())
    return int(stat["anon"]) / 2**20, int((v2 / "memory.current").read_text()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold", action="store_true", help="remove the testbed images first")
    options = parser.parse_args()
    client = docker.from_env()
    if options.cold:
        for image in client.images.list(name="openi-testbed/*"):
            for tag in image.tags:
                client.images.remove(tag, force=True)
    inv = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "tb"
        start = time.perf_counter()
        subprocess.run(inv + ["testbed.up", "--workdir", str(workdir)], check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        try:
            time.sleep(30)
            rows = []
            for container in client.containers.list(filters={"label": "openi.testbed.role"}):
                if str(workdir) in container.labels.get("openi.testbed.workdir", ""):
                    rss, usage = cgroup_memory(container)
                    rows.append((container.labels.get("openi.testbed.node") or container.name.rsplit("-", 1)[1], rss, usage))
        finally:
            subprocess.run(inv + ["testbed.down", "--workdir", str(workdir)], check=True, stdout=subprocess.DEVNULL)
    print(f"testbed.up, 5 nodes, {'from nothing' if options.cold else 'images cached'}: {seconds:.1f} s\n")
    print("| container | rss MiB | with page cache MiB |\n|---|---:|---:|")
    for name, rss, usage in sorted(rows):
        print(f"| {name} | {rss:.0f} | {usage:.0f} |")


if __name__ == "__main__":
    main()
