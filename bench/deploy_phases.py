#!/usr/bin/env python3
"""The etcd + endpoint part of `inv k8s.deploy` on the testbed: first run and no-change re-run.

For 3 and 5 masters (plus a proxy and a worker), on a fresh testbed each time:

    inv k8s.deploy --only connect,facts,lock,prepare,docker,etcd,endpoint,unlock

is timed as an operator runs it (a fresh process), then run again with nothing to change.

    python bench/deploy_phases.py                 # 3 and 5 masters
    python bench/deploy_phases.py --masters 3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = "connect,facts,lock,prepare,docker,etcd,endpoint,unlock"


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--masters", type=int, nargs="*", default=[3, 5])
    options = parser.parse_args()
    inv = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
    print("| masters | first run s | no-change re-run s | re-run / first |\n|---:|---:|---:|---:|")
    for masters in options.masters:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp) / "tb"
            subprocess.run(inv + ["testbed.up", "--workdir", str(workdir), "--masters", str(masters)],
                           check=True, stdout=subprocess.DEVNULL)
            try:
                deploy = inv + ["k8s.deploy", "-p", str(workdir / "cluster-configuration"), "--only", PHASES]
                first = timed(deploy)
                again = timed(deploy)
            finally:
                subprocess.run(inv + ["testbed.down", "--workdir", str(workdir)], check=True, stdout=subprocess.DEVNULL)
        print(f"| {masters} | {first:.1f} | {again:.1f} | {again / first:.0%} |", flush=True)


if __name__ == "__main__":
    main()
