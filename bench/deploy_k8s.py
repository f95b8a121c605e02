#!/usr/bin/env python3
"""`inv k8s.deploy` of real Kubernetes on a fresh testbed: each phase, against the kubeadm floor
measured in the same run; the no-change re-run; and the testbed's memory while the cluster runs.

The kubeadm floor is what no tool built on kubeadm can go below: `kubeadm init`, plus each
control-plane join (they must be serial), plus the slowest worker join (they can be parallel). The
durations come from the deploy's own run log, which records every command with its duration.

The machine's CPU is sampled during the first deploy (/proc/stat, every 0.2 s): for each step of
the run log (phases that run together are one step), how many of the machine's cores were busy.
On this testbed every node shares the same cores, so a step near all of them is bound by CPU, not
by waiting.

    python bench/deploy_k8s.py                       # 3 masters, the proxy, 2 workers
    python bench/deploy_k8s.py --masters 3 --workers 2 --keep /tmp/tb
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INV = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]


def timed(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(args, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


def busy_jiffies() -> int:
    """The machine's busy time so far (every core, user to softirq), in clock ticks."""
    fields = [int(f) for f in open("/proc/stat").readline().split()[1:8]]
    return sum(fields) - fields[3] - fields[4]  # all but idle and iowait


class CpuSampler(threading.Thread):
    """(wall time, busy ticks) every 0.2 s until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append((time.time(), busy_jiffies()))
            self.stopped.wait(0.2)

    def cores_busy(self, start: float, end: float) -> float:
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return float("nan")
        (t0, j0), (t1, j1) = inside[0], inside[-1]
        return (j1 - j0) / os.sysconf("SC_CLK_TCK") / (t1 - t0)


def steps(log: Path) -> list[tuple[str, float, float]]:
    """(phases, start, end) of each step of the run log: phases starting within 50 ms of each other
    are one step (they run together); a step ends where the next begins."""
    starts: list[tuple[str, float]] = []
    end = 0.0
    for line in log.read_text().splitlines():
        at = stamp(line)
        if at is None:
            continue
        end = at
        match = re.match(r"\S+ phase ([a-z-]+): ", line)
        if match:
            if starts and at - starts[-1][1] < 0.05:
                starts[-1] = (f"{starts[-1][0]} + {match[1]}", at)
            else:
                starts.append((match[1], at))
    return [(name, at, starts[i + 1][1] if i + 1 < len(starts) else end) for i, (name, at) in enumerate(starts)]


def phases(summary: str) -> list[tuple[str, float]]:
    rows = re.findall(r"│ ([a-z-]+)\s+│ \d+\s+│ \d+\s+│ \d+\s+│ \d+\s+│ ([\d.]+)", summary)
    return [(name, float(seconds)) for name, seconds in rows]


def stamp(line: str) -> float | None:
    try:
        return datetime.datetime.strptime(line[:24], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None


def node_times(log: Path) -> list[tuple[str, float, float]]:
    """(node, its kubeadm init or join done, seen Ready), in seconds from the run's first line."""
    lines = log.read_text().splitlines()
    start = next(t for t in map(stamp, lines) if t is not None)
    joined: dict[str, float] = {}
    ready: dict[str, float] = {}
    for line in lines:
        at = stamp(line)
        if at is None:
            continue
        if match := re.search(r" (\S+): exit 0 in [\d.]+s: .*kubeadm (init|join) --config", line):
            joined[match[1]] = at - start
        elif match := re.match(r"\S+ (\S+): Ready$", line):
            ready[match[1]] = at - start
    return [(name, joined.get(name, float("nan")), ready.get(name, float("nan"))) for name in sorted(ready)]


def kubeadm_floor(log: Path) -> tuple[float, float, list[float], float]:
    """(init, [control-plane joins], [worker joins] max, floor) from the run log's command lines."""
    init, joins, workers = 0.0, [], []
    for line in log.read_text().splitlines():
        match = re.search(r" (\S+): exit 0 in ([\d.]+)s: .*kubeadm (init|join) --config '?/etc/openi/kubeadm/(init|join)", line)
        if not match:
            continue
        host, seconds, verb = match[1], float(match[2]), match[3]
        if verb == "init":
            init = seconds
        elif host.startswith("master"):
            joins.append(seconds)
        else:
            workers.append(seconds)
    slowest_worker = max(workers, default=0.0)
    return init, joins, slowest_worker, init + sum(joins) + slowest_worker


def memory(prefix: str) -> list[tuple[str, float, float]]:
    """(container, RSS MiB, usage with page cache MiB) from each container's cgroup (docker stats
    reads 0 for containers with a cgroup namespace of their own on cgroup v1)."""
    names = subprocess.run(["docker", "ps", "--format", "{{.Names}} {{.ID}}", "--no-trunc"], capture_output=True,
                           text=True, check=True).stdout.split("\n")
    rows = []
    for line in names:
        if not line.startswith(prefix):
            continue
        name, container = line.split()
        v1 = Path(f"/sys/fs/cgroup/memory/docker/{container}")
        if v1.is_dir():
            stat = dict(l.split() for l in (v1 / "memory.stat").read_text().splitlines())
            rss, usage = int(stat["total_rss"]), int((v1 / "memory.usage_in_bytes").read_text())
        else:
            v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{container}.scope")
            stat = dict(l.split() for l in (v2 / "memory.stat").read_text().splitlines())
            rss, usage = int(stat["anon"]), int((v2 / "memory.current").read_text())
        rows.append((name[len(prefix):], rss / 2**20, usage / 2**20))
    return sorted(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--masters", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", help="testbed workdir to use and keep (default: a temporary one, removed)")
    options = parser.parse_args()
    workdir = Path(options.keep or tempfile.mkdtemp()) / "tb"
    subprocess.run(INV + ["testbed.up", "--workdir", str(workdir), "--masters", str(options.masters),
                          "--nodes", str(options.workers)], check=True, stdout=subprocess.DEVNULL)
    config = str(workdir / "cluster-configuration")
    try:
        sampler = CpuSampler()
        sampler.start()
        first, output = timed(INV + ["k8s.deploy", "-p", config])
        sampler.stopped.set()
        log = max((workdir / "state" / "logs").glob("*-deploy-*.log"), key=lambda p: p.stat().st_mtime)
        init, joins, worker, floor = kubeadm_floor(log)
        log_steps, log_nodes = steps(log), node_times(log)  # read now: the testbed goes with its state
        time.sleep(60)  # the cluster settles (CoreDNS, flannel, the dashboard) before memory is read
        state = (workdir / "testbed.json").read_text()
        testbed_id = re.search(r'"id": "(\w+)"', state)[1]
        used = memory(f"openi-tb-{testbed_id}-")
        again, _ = timed(INV + ["k8s.deploy", "-p", config])
    finally:
        if not options.keep:
            subprocess.run(INV + ["testbed.down", "--workdir", str(workdir)], check=True, stdout=subprocess.DEVNULL)
    print(f"deploy of {options.masters} masters, the proxy and {options.workers} workers "
          f"(Kubernetes from the testbed's bundle):\n")
    print("| phase | seconds |\n|---|---:|")
    for name, seconds in phases(output):
        print(f"| {name} | {seconds:.1f} |")
    print(f"| **total (the command, as an operator runs it)** | **{first:.1f}** |\n")
    print(f"kubeadm floor: init {init:.1f} s + control-plane joins {' + '.join(f'{j:.1f}' for j in joins)} s "
          f"+ slowest worker join {worker:.1f} s = **{floor:.1f} s**; openi-tasks / floor = **{first / floor:.2f}**\n")
    print(f"cores busy during each step (of {os.cpu_count()}; every node shares them):\n")
    print("| step | seconds | cores busy |\n|---|---:|---:|")
    for name, start, end in log_steps:
        print(f"| {name} | {end - start:.1f} | {sampler.cores_busy(start, end):.2f} |")
    print("\n| node | kubeadm done at s | Ready at s |\n|---|---:|---:|")
    for name, joined, ready in log_nodes:
        print(f"| {name} | {joined:.1f} | {ready:.1f} |")
    print()
    print(f"no-change re-run: {again:.1f} s ({again / first:.0%} of the first)\n")
    print("| container | RSS MiB | with page cache MiB |\n|---|---:|---:|")
    for name, rss, usage in used:
        print(f"| {name} | {rss:.0f} | {usage:.0f} |")
    print(f"| **all** | **{sum(r for _, r, _ in used):.0f}** | **{sum(u for _, _, u in used):.0f}** |")


if __name__ == "__main__":
    main()
