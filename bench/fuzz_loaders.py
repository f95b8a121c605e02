"""Fuzz the three loaders (configuration directory, nodes file, service.yaml) with hostile inputs.

    python bench/fuzz_loaders.py [--inputs 10000] [--seed 1] [--cli 150] [--json results.json]

Each input is a valid file broken at the level of text or of the file itself (tests/textfuzz.py:
alias bombs, self-referencing aliases, tags, merge keys, bytes that are not UTF-8 or are terminal
escapes, huge numbers and values, deep nesting, tabs, truncation, FIFOs, devices, symlink loops,
directories, 64 MiB files). Each is loaded in this process as the tasks load it, with a 10 s limit;
the outcome is counted: accepted, refused with exit code N, traceback, hang, or a message that
prints a control character or does not name the file. Then `--cli` of the configuration
directories are run through the real command (`inv cluster.check -p DIR`, which contacts no host)
to count exit codes and tracebacks as an operator would see them.

A run is good when tracebacks, hangs and bad messages are all 0.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import textfuzz  # noqa: E402  (the generators the property-based tests use)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cli", type=int, default=150, help="configuration directories also run through inv")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from openi_tasks.config import load_cluster

    cluster = load_cluster(textfuzz.EXAMPLE)
    rng = random.Random(args.seed)
    counts: dict[str, collections.Counter] = {loader: collections.Counter() for loader in textfuzz.LOADERS}
    examples: dict[str, list[str]] = collections.defaultdict(list)
    slowest = (0.0, "")
    started = time.monotonic()
    cli_inputs: list[int] = []
    for number in range(args.inputs):
        loader = textfuzz.LOADERS[number % len(textfuzz.LOADERS)]
        seed = rng.getrandbits(32)
        with tempfile.TemporaryDirectory(prefix="openi-fuzz-") as tmp:
            target, how = textfuzz.hostile_input(random.Random(seed), loader, Path(tmp))
            begun = time.monotonic()
            result, detail = textfuzz.outcome(loader, target, cluster)
            took = time.monotonic() - begun
        counts[loader][result] += 1
        if took > slowest[0]:
            slowest = (took, f"{loader} seed {seed}: {how}")
        if result not in ("accepted", "exit 2") and len(examples[result]) < 10:
            examples[result].append(f"{loader} seed {seed}: {how}: {detail}")
        if loader == "config" and len(cli_inputs) < args.cli and number % 7 == 0:
            cli_inputs.append(seed)
    in_process = time.monotonic() - started

    cli = collections.Counter()
    for seed in cli_inputs:
        with tempfile.TemporaryDirectory(prefix="openi-fuzz-cli-") as tmp:
            target, how = textfuzz.hostile_input(random.Random(seed), "config", Path(tmp))
            try:
                done = subprocess.run([sys.executable, "-m", "invoke", "cluster.check", "-p", str(target)],
                                      cwd=ROOT, capture_output=True, text=True, errors="replace", timeout=60)
            except subprocess.TimeoutExpired:
                cli["hang"] += 1
                continue
            cli[f"exit {done.returncode}"] += 1
            if "Traceback" in done.stdout + done.stderr:
                cli["traceback"] += 1
                examples["cli traceback"].append(f"seed {seed}: {how}: {done.stderr[-300:]}")

    results = {
        "inputs": args.inputs,
        "seed": args.seed,
        "per_loader": {loader: dict(counter) for loader, counter in counts.items()},
        "bad": {kind: sum(c[kind] for c in counts.values()) for kind in ("traceback", "hang", "bad message")},
        "cli": dict(cli),
        "seconds_in_process": round(in_process, 1),
        "slowest_input": {"seconds": round(slowest[0], 2), "input": slowest[1]},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "examples": examples,
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any(results["bad"].values()) or cli["traceback"] or cli["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
