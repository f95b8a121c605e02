#!/usr/bin/env python3
"""`images.build` of the shipped images on this machine: a full build and a no-change build.

The platform's base starts from the testbed's Debian base image (no public registry is reachable
here), so the testbed's images must have been built once (`inv testbed.up`). hadoop-run and
end-to-end-test need the Hadoop tarball that `inv hadoop.prepare` fetches; without it they are
left out, and the script says so.

    python bench/images_build.py
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

import docker
from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openi_tasks.config import load_cluster  # noqa: E402
from openi_tasks.config.generate import write_configuration  # noqa: E402
from openi_tasks.images.build import ImageBuilder  # noqa: E402
from openi_tasks.images.catalog import load_images  # noqa: E402
from openi_tasks.report import Reporter  # noqa: E402


def main() -> None:
    client = docker.from_env()
    bases = client.images.list(name="openi-testbed/base")
    if not bases:
        raise SystemExit("no openi-testbed/base image: run `inv testbed.up` once first")
    machines = [{"hostname": "m1", "hostip": "10.1.0.1", "machine-type": "standard", "k8s-role": "master", "etcdid": "e1"}]
    with tempfile.TemporaryDirectory() as tmp:
        directory = write_configuration(Path(tmp) / "c", machines, services={
            "cluster": {"docker-registry-info": {"docker-namespace": "openi-bench", "docker-registry-domain": "bench.invalid",
                                                 "docker-tag": "bench", "secret-name": "regsecret"}},
            "images": {"base-os-image": bases[0].tags[0]},
        })
        cluster = load_cluster(directory)
        images = load_images()
        buildable = ["base-image", "zookeeper", "cleaning-image"]
        quiet = Reporter(Console(file=io.StringIO()))
        timings = {}
        for label, force in (("full build (no cache)", True), ("no-change build", False)):
            start = time.perf_counter()
            ImageBuilder(cluster, images, quiet).build(buildable, force=force)
            timings[label] = time.perf_counter() - start
    print(f"images: {', '.join(buildable)} (hadoop-run and end-to-end-test need the Hadoop tarball from hadoop.prepare)")
    print("| build | seconds |\n|---|---:|")
    for label, seconds in timings.items():
        print(f"| {label} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
