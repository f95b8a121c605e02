"""What the service engine needs of a cluster: one small interface, and its implementation over
the `kubernetes` client. Tests use an in-memory fake of the same interface (tests/fakekube.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import OpenIError
from ..kube import KubeApi

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


@dataclass(frozen=True)
class WorkloadStatus:
    kind: str
    name: str
    desired: int
    ready: int
    done: bool
    failed: str = ""  # why it cannot become ready (a Job that gave up)
    nodes: tuple[str, ...] = ()


class ClusterApi(Protocol):
    def apply(self, obj: dict[str, Any]) -> bool:
        """Server-side apply; whether the live object changed."""

    def delete(self, obj: dict[str, Any]) -> bool:
        """Delete; whether it existed."""

    def status(self, obj: dict[str, Any]) -> WorkloadStatus:
        """A workload's desired and ready counts, whether it is done, and where its pods run."""

    def diagnose(self, obj: dict[str, Any]) -> list[str]:
        """Lines about a workload's pods (state, reason) and their last events."""

    def label_node(self, node: str, labels: dict[str, str]) -> bool:
        """Make the node carry these labels; whether it changed."""


class KubernetesApi:
    """`ClusterApi` over the real API server (admin kubeconfig)."""

    def __init__(self, kubeconfig: Path) -> None:
        from kubernetes import client  # imported on use: slow to import

        self.kube = KubeApi(kubeconfig)
        self.core = client.CoreV1Api(self.kube.api_client)

    def apply(self, obj: dict[str, Any]) -> bool:
        if not self.kube.would_change(obj):
            return False
        self.kube.apply(obj)
        return True

    def delete(self, obj: dict[str, Any]) -> bool:
        from kubernetes.client.exceptions import ApiException

        meta = obj["metadata"]
        resource = self.kube._resource(obj)

        def delete() -> bool:
            try:
                resource.delete(name=meta["name"], namespace=meta.get("namespace"),
                                body={"propagationPolicy": "Background"})
                return True
            except ApiException as exc:
                if exc.status == 404:  # gone already (perhaps by an attempt whose answer was lost)
                    return False
                raise

        return self.kube.call(f"deleting {obj['kind']} {meta['name']}", delete)

    def status(self, obj: dict[str, Any]) -> WorkloadStatus:
        live = self.kube.get(obj) or {}
        spec, status, meta = live.get("spec") or {}, live.get("status") or {}, live.get("metadata") or {}
        kind, name = obj["kind"], obj["metadata"]["name"]
        current = (status.get("observedGeneration") or 0) >= (meta.get("generation") or 0) and bool(live)
        if kind == "DaemonSet":
            desired, ready = status.get("desiredNumberScheduled") or 0, status.get("numberReady") or 0
            # Nothing to schedule (e.g. drivers on a cluster without GPUs) is done once observed.
            done = current and ready == desired and (status.get("updatedNumberScheduled") or 0) == desired
        elif kind == "Job":
            desired, ready = spec.get("completions") or 1, status.get("succeeded") or 0
            failed = (status.get("failed") or 0) > (spec.get("backoffLimit") if spec.get("backoffLimit") is not None else 6)
            return WorkloadStatus(kind, name, desired, ready, ready >= desired, "the Job gave up" if failed else "",
                                  self._nodes(live))
        else:  # Deployment, StatefulSet
            desired = spec.get("replicas", 1) if spec else 1
            ready, updated = status.get("readyReplicas") or 0, status.get("updatedReplicas") or 0
            done = current and ready == desired and updated == desired
        return WorkloadStatus(kind, name, desired, ready, done, "", self._nodes(live))

    def _pods(self, live: dict[str, Any]) -> list:
        selector = ((live.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not selector:
            return []
        labels = ",".join(f"{k}={v}" for k, v in selector.items())
        namespace = live["metadata"].get("namespace", "default")
        return self.kube.call(f"listing the pods of {live['metadata'].get('name')}",
                              lambda: self.core.list_namespaced_pod(namespace, label_selector=labels).items)

    def _nodes(self, live: dict[str, Any]) -> tuple[str, ...]:
        return tuple(sorted({p.spec.node_name for p in self._pods(live) if p.spec.node_name}))

    def diagnose(self, obj: dict[str, Any]) -> list[str]:
        live = self.kube.get(obj) or {}
        lines = []
        for pod in self._pods(live):
            reasons = []
            for container in pod.status.container_statuses or []:
                state = container.state
                if state.waiting:
                    reasons.append(f"{container.name}: {state.waiting.reason} {state.waiting.message or ''}".strip())
                elif state.terminated and state.terminated.exit_code:
                    reasons.append(f"{container.name}: exited {state.terminated.exit_code} ({state.terminated.reason})")
            lines.append(f"pod {pod.metadata.name} on {pod.spec.node_name or '(not scheduled)'}: {pod.status.phase}"
                         + (f"; {'; '.join(reasons)}" if reasons else ""))
            events = self.core.list_namespaced_event(pod.metadata.namespace,
                                                     field_selector=f"involvedObject.name={pod.metadata.name}").items
            for event in sorted(events, key=lambda e: e.last_timestamp or e.event_time or "")[-3:]:
                lines.append(f"  event {event.reason}: {event.message}")
        return lines or [f"{obj['kind']} {obj['metadata']['name']} has no pods"]

    def label_node(self, node: str, labels: dict[str, str]) -> bool:
        obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "labels": labels}}
        if self.kube.get(obj) is None:  # an apply would create a Node that no kubelet runs
            raise OpenIError(f"node {node} is in the machine list but not in the cluster (inv k8s.add adds it)")
        return self.apply(obj)
