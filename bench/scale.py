#!/usr/bin/env python3
"""Operator-side scale: `inv cluster.check` and `inv cluster.render` on generated configurations.

For N hosts (3 masters, a proxy, the rest workers) it runs each command in a fresh process,
as an operator would, and reports the median wall time of several runs and the peak resident
memory of the process. Nothing is contacted: both commands work offline.

    python bench/scale.py                 # N = 10, 100, 1000, 5000; 3 runs each
    python bench/scale.py --hosts 1000 --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openi_tasks.config.generate import write_configuration  # noqa: E402


def machines(count: int) -> list[dict]:
    entries = []
    for i in range(count):
        entry = {
            "hostname": f"host-{i:05d}",
            "hostip": f"10.{20 + i // 65000}.{(i // 250) % 260}.{i % 250 + 1}",
            "machine-type": "gpu" if i >= 4 else "standard",
        }
        if i < 3:
            entry.update({"k8s-role": "master", "etcdid": f"etcd{i + 1}"})
        elif i == 3:
            entry["k8s-role"] = "proxy"
        else:
            entry.update({"k8s-role": "worker", "pai-worker": "true", "node-exporter": "true"})
        entries.append(entry)
    return entries


def run(args: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one command in a child process."""
    start = time.perf_counter()
    child = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, usage_status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(usage_status) != 0:
        raise SystemExit(f"{' '.join(args)} failed: {child.stderr.read().decode()}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="*", default=[10, 100, 1000, 5000])
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    inv = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
    print("| hosts | command | median s | peak MiB |")
    print("|---:|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OPENI_STATE_DIR": f"{tmp}/state"}
        for count in options.hosts:
            directory = write_configuration(
                Path(tmp) / f"c{count}",
                machines(count),
                skus={"standard": {"mem": 16, "cpu": {"vcore": 8}}, "gpu": {"mem": 224, "gpu": {"type": "a100", "count": 8}}},
            )
            commands = {
                "cluster.check": inv + ["cluster.check", "-p", str(directory)],
                "cluster.render": inv + ["cluster.render", "-p", str(directory), "--out", f"{tmp}/out{count}"],
            }
            for name, args in commands.items():
                samples = [run(args, env) for _ in range(options.runs)]
                seconds = statistics.median(s for s, _ in samples)
                memory = max(m for _, m in samples)
                print(f"| {count} | {name} | {seconds:.2f} | {memory:.0f} |", flush=True)
    print(f"\n(python {sys.version.split()[0]}, {os.cpu_count()} cores; median of {options.runs} runs)")


if __name__ == "__main__":
    main()
