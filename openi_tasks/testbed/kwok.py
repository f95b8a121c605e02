"""Simulated nodes for a testbed's real control plane: KWOK, built from its Go module.

KWOK keeps Node objects Ready (their leases renewed) and plays the kubelet for every pod scheduled
onto them: a pod is Running and Ready at once, a Job's pod Succeeds, a deleted pod is gone. Nothing
runs on a simulated node and its address is never contacted. The API server, scheduler and
controllers are the testbed's own, so everything up to the kubelet is real: admission and
defaulting, server-side apply, the scheduler's placement by labels and taints, DaemonSet and Job
controllers. Used to run the services engine at hundreds of nodes (bench/services_scale.py) and the
whole catalog in CI (tests/test_services_cluster.py).
"""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..bundle.cache import cache_dir
from ..bundle.gobuild import Go, GoBuild

VERSION = "v0.8.0"
MODULE = "sigs.k8s.io/kwok"
ANNOTATION = ("kwok.x-k8s.io/node", "fake")
LABEL = ("type", "kwok")
# The stages KWOK ships as "fast": a node Ready at once with its lease renewed; a pod Ready at once,
# a Job's pod Succeeded, a deleted pod gone.
STAGES = ("node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
          "pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml")


def build() -> tuple[Path, str]:
    """KWOK's binary (built once, cached beside the bundle's builds) and its stages, as one YAML text."""
    go = Go()
    spec = GoBuild(name=f"kwok-{VERSION}", requires={MODULE: VERSION},
                   binaries={"kwok": f"{MODULE}/cmd/kwok"}, ldflags=("-s", "-w"))
    binary = go.build(spec, cache_dir() / "build" / f"kwok-{VERSION}")["kwok"]
    stages = go.module_dir(MODULE, VERSION) / "kustomize" / "stage"
    return binary, "\n---\n".join((stages / name).read_text() for name in STAGES)


def node(name: str, cpu: int, memory_gib: int, gpus: int = 0) -> dict[str, Any]:
    """A Node for KWOK to keep: its resources as a machine type gives them, no taint."""
    resources = {"cpu": str(cpu), "memory": f"{memory_gib}Gi", "pods": "110"}
    if gpus:
        resources["nvidia.com/gpu"] = str(gpus)
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {ANNOTATION[0]: ANNOTATION[1], "node.alpha.kubernetes.io/ttl": "0"},
                         "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64", LABEL[0]: LABEL[1]}},
            "status": {"allocatable": resources, "capacity": resources}}


class Simulator:
    """KWOK running against the cluster of `kubeconfig`, keeping the nodes it is given Ready.

    Use as a context manager: KWOK stops on leaving; `remove()` deletes the simulated nodes."""

    def __init__(self, kubeconfig: Path, workdir: Path) -> None:
        from kubernetes import client, config

        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        self.process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "kwok.log"

    def __enter__(self) -> "Simulator":
        binary, stages = build()
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "kwok.yaml").write_text(stages)
        with self.log.open("w") as log:
            # --node-ip and --cidr are what KWOK reports for its nodes and pods; nothing is sent there.
            self.process = subprocess.Popen(
                [str(binary), f"--kubeconfig={self.kubeconfig}", f"--config={self.workdir / 'kwok.yaml'}",
                 "--manage-all-nodes=false", f"--manage-nodes-with-annotation-selector={'='.join(ANNOTATION)}",
                 "--manage-nodes-with-label-selector=", "--manage-single-node=", "--cidr=10.252.0.0/16",
                 "--node-ip=10.251.255.254", "--node-lease-duration-seconds=40"],
                stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)

    def names(self) -> set[str]:
        return {n.metadata.name for n in self.core.list_node(label_selector="=".join(LABEL)).items}

    def add(self, nodes: list[dict[str, Any]], timeout: float = 300) -> None:
        """Create the nodes not there yet (16 at a time), then wait until KWOK has made every
        simulated node Ready."""
        there = self.names()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(self.core.create_node, [n for n in nodes if n["metadata"]["name"] not in there]))
        wanted = len(there | {n["metadata"]["name"] for n in nodes})
        deadline = time.monotonic() + timeout
        while True:
            ready = sum(any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
                        for n in self.core.list_node(label_selector="=".join(LABEL)).items)
            if ready >= wanted:
                return
            if time.monotonic() > deadline or (self.process is not None and self.process.poll() is not None):
                raise RuntimeError(f"KWOK made {ready} of {wanted} simulated nodes Ready (its log: {self.log})")
            time.sleep(2)

    def remove(self) -> None:
        """Delete every simulated node (KWOK deletes their pods' objects as they go)."""
        for name in self.names():
            self.core.delete_node(name)


# The machine flags the platform's services are placed by.
PLACEMENT_FLAGS = ("pai-master", "pai-worker", "openi-master", "openi-worker", "zkid", "node-exporter")


def with_simulated_machines(base: Path, out: Path, machines: list[dict[str, Any]], skus: dict[str, Any],
                            hadoop_tarball: Path | None = None) -> Path:
    """A copy of the testbed's configuration in `base` with `machines` (machine-list entries of
    simulated nodes) and their `skus` added, and the testbed's own hosts stripped of the flags that
    place the platform's services, so that those run on simulated nodes only. `hadoop_tarball`:
    the tarball hadoop.prepare reads Hadoop's etc/hadoop from."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    for source in base.iterdir():
        (out / source.name).write_text(source.read_text())
    clusterfile = out / "cluster-configuration.yaml"
    data = yaml.safe_load(clusterfile.read_text())
    data["machine-sku"].update(skus)
    for machine in data["machine-list"]:
        for flag in PLACEMENT_FLAGS:
            machine.pop(flag, None)
    data["machine-list"] += machines
    clusterfile.write_text(yaml.safe_dump(data, sort_keys=False))
    if hadoop_tarball is not None:
        services = out / "services-configuration.yaml"
        settings = yaml.safe_load(services.read_text())
        settings.setdefault("hadoop", {})["custom-hadoop-binary-path"] = str(hadoop_tarball)
        services.write_text(yaml.safe_dump(settings, sort_keys=False))
    return out
