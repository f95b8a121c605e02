"""What the service engine needs of a cluster: one small interface, and its implementation over
the `kubernetes` client. The engine's unit tests use an in-memory fake of the same interface
(tests/fakekube.py); the testbed's tests use the real one."""

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

    def label_nodes(self, wanted: dict[str, dict[str, str]]) -> int:
        """Make each node carry exactly these labels of openi-tasks (others' labels stay); how many
        nodes changed. Nodes missing from the cluster are an error naming all of them."""

    def nodes_labels(self) -> dict[str, dict[str, str]]:
        """Every node's labels, all of them."""


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
        pods = self._pods(live) if live else []
        nodes = tuple(sorted({p.spec.node_name for p in pods if p.spec.node_name}))
        if kind == "DaemonSet":
            desired, ready = status.get("desiredNumberScheduled") or 0, status.get("numberReady") or 0
            # Nothing to schedule (e.g. drivers on a cluster without GPUs) is done once observed.
            done = current and ready == desired and (status.get("updatedNumberScheduled") or 0) == desired
        elif kind == "Job":
            desired, ready = spec.get("completions") or 1, status.get("succeeded") or 0
            failed = (status.get("failed") or 0) > (spec.get("backoffLimit") if spec.get("backoffLimit") is not None else 6)
            return WorkloadStatus(kind, name, desired, ready, ready >= desired, "the Job gave up" if failed else "",
                                  nodes)
        else:  # Deployment, StatefulSet
            desired = spec.get("replicas", 1) if spec else 1
            ready, updated = status.get("readyReplicas") or 0, status.get("updatedReplicas") or 0
            done = current and ready == desired and updated == desired
        return WorkloadStatus(kind, name, desired, ready, done, "" if done else _unpullable(pods), nodes)

    def _pods(self, live: dict[str, Any]) -> list:
        selector = ((live.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not selector:
            return []
        labels = ",".join(f"{k}={v}" for k, v in selector.items())
        namespace = live["metadata"].get("namespace", "default")
        return self.kube.call(f"listing the pods of {live['metadata'].get('name')}",
                              lambda: self.core.list_namespaced_pod(namespace, label_selector=labels).items)

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

    def label_nodes(self, wanted: dict[str, dict[str, str]]) -> int:
        """One list of the Nodes, compared here; an apply only for each node that differs, several at
        once (at hundreds of nodes, asking the API server about each one serially took most of a deploy)."""
        from ..phase import CONCURRENT_CALLS
        from ..ssh.fanout import fan_out

        live = self.kube.nodes()
        missing = sorted(set(wanted) - set(live))
        if missing:  # an apply would create a Node that no kubelet runs
            raise OpenIError(f"in the machine list but not in the cluster (inv k8s.add adds them): {', '.join(missing)}")
        stale = [name for name, labels in wanted.items() if live[name].labels_differ(labels)]
        results = fan_out(stale, lambda name: self.kube.apply(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": wanted[name]}}), CONCURRENT_CALLS)
        if results.failed:
            raise OpenIError("labelling nodes failed:\n" + "\n".join(
                f"  {name}: {error}" for name, error in sorted(results.failed.items())))
        return len(stale)

    def nodes_labels(self) -> dict[str, dict[str, str]]:
        return {name: state.labels for name, state in self.kube.nodes().items()}


# How long a pod may fail to pull its image before the service is failed: the kubelet retries with
# backoff, and a registry that is restarting comes back. A registry that answered that the image
# is not there (the runtime's gRPC NotFound) has said what a retry would say: that fails at once.
PULL_PATIENCE = 90.0
NEVER_PULLABLE = ("InvalidImageName", "ErrImageNeverPull")
PULL_ERRORS = ("ErrImagePull", "ImagePullBackOff") + NEVER_PULLABLE
NOT_IN_REGISTRY = "code = NotFound"


def _unpullable(pods: list, now: float | None = None) -> str:
    """Why a workload cannot become ready because an image cannot be pulled, or ""."""
    import datetime

    now = now if now is not None else datetime.datetime.now(datetime.timezone.utc).timestamp()
    for pod in pods:
        statuses = (pod.status.init_container_statuses or []) + (pod.status.container_statuses or [])
        for container in statuses:
            waiting = container.state.waiting if container.state else None
            if waiting is None or waiting.reason not in PULL_ERRORS:
                continue
            age = now - pod.metadata.creation_timestamp.timestamp() if pod.metadata.creation_timestamp else 0
            if waiting.reason in NEVER_PULLABLE or NOT_IN_REGISTRY in (waiting.message or "") or age > PULL_PATIENCE:
                return (f"pod {pod.metadata.name} on {pod.spec.node_name}: {waiting.reason} for {container.image} "
                        f"({(waiting.message or '').strip()[:300]})")
    return ""
