"""What the addons phase applies: the pod network, the dashboard, for GPU nodes the RuntimeClass
`nvidia` and NVIDIA's device plugin, and the machines' flags as node labels."""

from __future__ import annotations

from typing import Any

import yaml

from ..config import Cluster
from ..render import render
from .hostfacts import HostFacts


def addon_objects(cluster: Cluster) -> list[dict[str, Any]]:
    """Every object to apply, in order (namespaces first, as the manifests list them)."""
    objects = pod_network_objects(cluster)
    context = {"cluster": cluster, "k8s": cluster.kubernetes}
    if any(m.labels.get("dashboard") == "true" for m in cluster.machines):
        objects += _documents(render("k8s/addons/dashboard.yaml.j2", **context))
    if any(m.gpu_count for m in cluster.machines):
        objects.append(NVIDIA_RUNTIME_CLASS)
        objects += _documents(render("k8s/addons/nvidia-device-plugin.yaml.j2", **context))
    objects += node_labels(cluster)
    return objects


def pod_network_objects(cluster: Cluster) -> list[dict[str, Any]]:
    """The pod network's objects (flannel's), namespaces first."""
    if cluster.kubernetes.network_plugin != "flannel":
        return []
    return _documents(render("k8s/addons/flannel.yaml.j2", cluster=cluster, k8s=cluster.kubernetes))


# Pods that ask for it run with containerd's runtime `nvidia` (phases/gpu.py), on GPU nodes only.
NVIDIA_RUNTIME_CLASS = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "nvidia"},
                        "handler": "nvidia", "scheduling": {"nodeSelector": {"openi-gpu": "true"}}}


def node_labels(cluster: Cluster) -> list[dict[str, Any]]:
    """Each machine's flags (dashboard, zkid, pai-master, ...) and GPU labels as labels of its Node.

    Every node, the whole set each time (services.deploy applies the same): a flag removed from the
    machine list is removed from the node.
    """
    return [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": m.hostname.lower(), "labels": m.node_labels}}
        for m in cluster.nodes
    ]


# A GPU node whose host has a working NVIDIA driver (nvidia-smi answers) carries its version here;
# the drivers service does not run its driver container there. Applied by a field manager of its
# own, so that the flags' labels (applied whole by k8s.deploy and services.deploy) never remove it.
HOST_DRIVER_LABEL = "openi-nvidia-driver"
FACTS_MANAGER = "openi-tasks-facts"


def host_driver_labels(cluster: Cluster, facts: dict[str, HostFacts]) -> list[dict[str, Any]]:
    """For each GPU machine whose facts were gathered: its Node with the driver's label, or with
    none (which removes one that a driver no longer there left)."""
    objects = []
    for machine in cluster.nodes:
        found = facts.get(machine.hostname)
        if not machine.gpu_count or found is None:
            continue
        working = found.gpus.source == "nvidia-smi" and found.gpus.driver
        objects.append({"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": machine.hostname.lower(), "labels": {HOST_DRIVER_LABEL: found.gpus.driver} if working else {}}})
    return objects


def describe(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']} {where}{meta['name']}"


def _documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]
