"""FAKE Kubernetes API for the service engine's tests (no API server can run on these machines).

`FakeClusterApi` implements the engine's `ClusterApi` in memory and enforces what the real API
server would: an unknown kind is rejected, apply merges the given fields into the live object
(server-side apply), nodes must exist to be labelled and lose the labels that a later apply by
the same manager leaves out, and a workload becomes ready only after some (fake) time. A
DaemonSet's pods go exactly to the nodes whose labels match its nodeSelector and required node
affinity, as the scheduler would place them (other workloads' on matching nodes, or Pending when
none match). Every call is recorded in `log` so tests can check the order.
"""

from __future__ import annotations

import copy
from typing import Any

from openi_tasks.services.api import WorkloadStatus

KINDS = {
    ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"), ("v1", "Namespace"), ("v1", "ServiceAccount"),
    ("v1", "Node"), ("apps/v1", "Deployment"), ("apps/v1", "DaemonSet"), ("apps/v1", "StatefulSet"),
    ("batch/v1", "Job"), ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"), ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
}


class FakeApiError(Exception):
    """What the FAKE API server answers to a request the real one would refuse."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _merge(live: Any, given: Any) -> Any:
    if isinstance(live, dict) and isinstance(given, dict):
        merged = dict(live)
        for key, value in given.items():
            merged[key] = _merge(live.get(key), value) if key in live else copy.deepcopy(value)
        return merged
    return copy.deepcopy(given)


def _key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return obj.get("apiVersion", ""), obj.get("kind", ""), meta.get("namespace", ""), meta.get("name", "")


class FakeClusterApi:
    """FAKE: the engine's `ClusterApi`, in memory."""

    def __init__(self, clock: FakeClock, nodes: dict[str, dict[str, str]], ready_after: float = 6.0) -> None:
        self.clock = clock
        # Every node carries its name as a label, as kubelet registers it.
        self.nodes = {name: {"kubernetes.io/hostname": name, **labels} for name, labels in nodes.items()}
        self.ready_after = ready_after
        self.objects: dict[tuple, dict[str, Any]] = {}
        self.ready_at: dict[tuple, float] = {}
        self.never_ready: set[str] = set()  # workload names that never become ready
        self.log: list[tuple[str, str, str]] = []
        self.owned_labels: dict[str, set[str]] = {}  # node -> the labels openi-tasks applied

    def apply(self, obj: dict[str, Any]) -> bool:
        if (obj.get("apiVersion"), obj.get("kind")) not in KINDS:
            raise FakeApiError(f'no matches for kind "{obj.get("kind")}" in version "{obj.get("apiVersion")}"')
        if not (obj.get("metadata") or {}).get("name"):
            raise FakeApiError("metadata.name is required")
        key = _key(obj)
        live = self.objects.get(key)
        merged = _merge(live or {}, obj)
        self.log.append(("apply", obj["kind"], obj["metadata"]["name"]))
        if merged == live:
            return False
        self.objects[key] = merged
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            self.ready_at[key] = self.clock() + self.ready_after
        return True

    def delete(self, obj: dict[str, Any]) -> bool:
        self.log.append(("delete", obj["kind"], obj["metadata"]["name"]))
        return self.objects.pop(_key(obj), None) is not None

    def _placed_on(self, live: dict[str, Any]) -> tuple[str, ...]:
        pod = live["spec"]["template"]["spec"]
        selector = pod.get("nodeSelector") or {}
        terms = (((pod.get("affinity") or {}).get("nodeAffinity") or {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
        return tuple(sorted(
            n for n, labels in self.nodes.items()
            if all(labels.get(k) == v for k, v in selector.items())
            and (not terms or any(_term_matches(t, labels) for t in terms))))

    def status(self, obj: dict[str, Any]) -> WorkloadStatus:
        key = _key(obj)
        live = self.objects.get(key)
        kind, name = obj["kind"], obj["metadata"]["name"]
        if live is None:
            return WorkloadStatus(kind, name, 1, 0, False)
        placeable = self._placed_on(live)
        if kind == "DaemonSet":
            desired, nodes = len(placeable), placeable
        else:
            desired = (live.get("spec") or {}).get("completions" if kind == "Job" else "replicas", 1)
            nodes = placeable[:desired]
        if kind != "DaemonSet" and not placeable:  # pods with nowhere to go stay Pending
            return WorkloadStatus(kind, name, desired, 0, False, nodes=())
        ready = desired if name not in self.never_ready and self.clock() >= self.ready_at[key] else 0
        return WorkloadStatus(kind, name, desired, ready, ready == desired, nodes=nodes)

    def diagnose(self, obj: dict[str, Any]) -> list[str]:
        return [f"pod {obj['metadata']['name']}-fake0 on {next(iter(sorted(self.nodes)), '?')}: Pending; "
                f"{obj['metadata']['name']}: ImagePullBackOff (FAKE)", "  event Failed: (FAKE) cannot pull image"]

    def label_nodes(self, wanted: dict[str, dict[str, str]]) -> int:
        missing = sorted(set(wanted) - set(self.nodes))
        if missing:
            raise FakeApiError(f"nodes not found: {', '.join(missing)}")
        return sum(self._label_node(node, labels) for node, labels in wanted.items())

    def _label_node(self, node: str, labels: dict[str, str]) -> bool:
        before = dict(self.nodes[node])
        # Server-side apply by one field manager: labels it applied before and leaves out now go.
        for key in self.owned_labels.get(node, set()) - set(labels):
            del self.nodes[node][key]
        self.nodes[node].update(labels)
        self.owned_labels[node] = set(labels)
        if before != self.nodes[node]:
            self.log.append(("label", "Node", node))
            return True
        return False

    def nodes_labels(self) -> dict[str, dict[str, str]]:
        return {name: dict(labels) for name, labels in self.nodes.items()}


def _term_matches(term: dict[str, Any], labels: dict[str, str]) -> bool:
    """A node selector term: all of its expressions hold for the node's labels."""
    tests = {
        "In": lambda key, values: labels.get(key) in values,
        "NotIn": lambda key, values: labels.get(key) not in values,
        "Exists": lambda key, values: key in labels,
        "DoesNotExist": lambda key, values: key not in labels,
    }
    return all(tests[e["operator"]](e["key"], e.get("values") or []) for e in term.get("matchExpressions") or [])
