"""The Kubernetes API, through the `kubernetes` client: server-side apply and a few reads.

One small interface, so that everything that applies objects (add-ons, services) says what it
would change by asking the API server itself: a dry-run apply compared with the live object.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from .retry import retried

T = TypeVar("T")
FIELD_MANAGER = "openi-tasks"
_VOLATILE = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")


class KubeApi:
    """A cluster reached with a kubeconfig file."""

    def __init__(self, kubeconfig: Path, context: str | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        # Imported here: the kubernetes client takes about a second to import, which commands
        # that never talk to the API (cluster.check, render) should not pay.
        from kubernetes import config, dynamic

        self.api_client = config.new_client_from_config(config_file=str(kubeconfig), context=context)
        start = time.monotonic()
        # Retried like every request: right after `kubeadm init` the endpoint's load balancer has
        # not yet seen the first API server healthy and drops the connection (a deploy failed so).
        # The client caches what it discovers; by default in the shared temporary directory under
        # the server's address, where a cluster built again at the same address found the old one's.
        cache = kubeconfig.parent / f".{kubeconfig.name}.discovery.json"
        self.client = self.call("discovering the API",
                                lambda: dynamic.DynamicClient(self.api_client, cache_file=str(cache)))
        self.log = log or (lambda line: None)
        self.log(f"API: discovery in {time.monotonic() - start:.2f}s")

    def call(self, what: str, request: Callable[[], T]) -> T:
        """`request()`, retried through transient failures (a dropped connection, a 503 while an
        API server restarts, etcd timing out behind it); `what` names it in the final error."""
        return retried(f"{what} (API server {self.api_client.configuration.host})", request, transient)

    def _resource(self, obj: dict[str, Any]):
        return self.call(f"discovering {obj['kind']}",
                         lambda: self.client.resources.get(api_version=obj["apiVersion"], kind=obj["kind"]))

    def get(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        meta = obj["metadata"]
        start = time.monotonic()
        resource = self._resource(obj)

        def read() -> dict[str, Any] | None:
            try:
                return resource.get(name=meta["name"], namespace=meta.get("namespace")).to_dict()
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

        try:
            return self.call(f"reading {obj['kind']} {meta['name']}", read)
        finally:
            self.log(f"API: get {obj['kind']} {meta['name']} in {time.monotonic() - start:.2f}s")

    def apply(self, obj: dict[str, Any], dry_run: bool = False, field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
        """Server-side apply as `field_manager`: what it applied before and leaves out now is removed,
        what other managers own stays."""
        meta = obj["metadata"]
        start = time.monotonic()
        resource = self._resource(obj)
        # Server-side apply is idempotent: asking again after a lost answer is safe.
        result = self.call(f"applying {obj['kind']} {meta['name']}", lambda: resource.server_side_apply(
            body=obj, name=meta["name"], namespace=meta.get("namespace"),
            field_manager=field_manager, force_conflicts=True, dry_run="All" if dry_run else None,
        ))
        self.log(f"API: apply{' (dry run)' if dry_run else ''} {obj['kind']} {meta['name']} "
                 f"in {time.monotonic() - start:.2f}s")
        return result.to_dict()

    def would_change(self, obj: dict[str, Any], field_manager: str = FIELD_MANAGER) -> bool:
        """Whether applying `obj` would change the live object (or create it)."""
        live = self.get(obj)
        return live is None or _comparable(live) != _comparable(self.apply(obj, dry_run=True,
                                                                          field_manager=field_manager))


    def wait_ready(self, timeout: float = 180) -> None:
        """Until the API server answers /readyz with ok (through the endpoint the kubeconfig names)."""
        def status() -> int:
            request = self.api_client.param_serialize(method="GET", resource_path="/readyz", auth_settings=["BearerToken"])
            return self.api_client.call_api(*request, _request_timeout=5).status

        wait_ready(status, "the API server", timeout)

    def drain_and_delete(self, node: str, timeout: float = 300) -> None:
        """Drain a node (see `drain`), then delete its Node."""
        from kubernetes import client

        self.drain(node, timeout)
        client.CoreV1Api(self.api_client).delete_node(node)

    def drain(self, node: str, timeout: float = 300, annotations: dict[str, str] | None = None) -> None:
        """Cordon a node (with `annotations`, which say why), evict its pods (not DaemonSets' or
        static ones) and wait until they are gone.

        On a node whose kubelet does not answer (NotReady), evicted pods would wait forever for it
        to stop them: they are deleted at once instead (their controllers start them elsewhere)."""
        from kubernetes import client

        core = client.CoreV1Api(self.api_client)
        self.call(f"cordoning {node}", lambda: core.patch_node(
            node, {"metadata": {"annotations": annotations or {}}, "spec": {"unschedulable": True}}))
        deadline = time.monotonic() + timeout
        while True:
            listed = self.call(f"listing the pods on {node}",
                               lambda: core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}"))
            pods = [p for p in listed.items if not _stays(p) and p.status.phase not in ("Succeeded", "Failed")]
            if not pods:
                return
            if not _ready(self.call(f"reading Node {node}", lambda: core.read_node(node))):
                for pod in pods:
                    try:
                        core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
                    except client.exceptions.ApiException as exc:
                        if exc.status != 404:
                            raise
                time.sleep(1)
                continue
            if time.monotonic() > deadline:
                names = ", ".join(f"{p.metadata.namespace}/{p.metadata.name}" for p in pods[:5])
                raise TimeoutError(f"{node}: pods still running after {timeout:.0f}s: {names}")
            for pod in pods:
                meta = client.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace)
                try:
                    core.create_namespaced_pod_eviction(pod.metadata.name, pod.metadata.namespace,
                                                        client.V1Eviction(metadata=meta))
                except client.exceptions.ApiException as exc:
                    if exc.status not in (404, 429):  # gone already; or a disruption budget: retry
                        raise
            time.sleep(2)

    def uncordon(self, node: str, annotations: tuple[str, ...] = ()) -> None:
        """Let pods be scheduled on a node again, removing the `annotations` its cordon set."""
        from kubernetes import client

        removed: dict[str, None] = {name: None for name in annotations}
        self.call(f"uncordoning {node}", lambda: client.CoreV1Api(self.api_client).patch_node(
            node, {"metadata": {"annotations": removed}, "spec": {"unschedulable": None}}))

    def set_taint(self, node: str, taint: dict[str, str], present: bool) -> None:
        """Add or remove one taint (by key and effect) of a Node, leaving its others alone: the list
        is read and written back with its resourceVersion, so a concurrent change is not lost (a
        conflict is read again and retried)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        core = client.CoreV1Api(self.api_client)
        for _ in range(5):
            live = self.call(f"reading Node {node}", lambda: core.read_node(node))
            taints = [t.to_dict() for t in live.spec.taints or []]
            others = [t for t in taints if (t.get("key"), t.get("effect")) != (taint["key"], taint["effect"])]
            wanted = others + [dict(taint)] if present else others
            body = {"metadata": {"resourceVersion": live.metadata.resource_version},
                    "spec": {"taints": [{k: v for k, v in t.items() if v is not None} for t in wanted]}}
            try:
                core.patch_node(node, body)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
        raise RuntimeError(f"Node {node} kept changing: its taints could not be written")

    def nodes(self) -> dict[str, "NodeState"]:
        """Every Node: Ready or not, its kubelet's version, whether cordoned, its annotations and taints."""
        from kubernetes import client

        items = self.call("listing Nodes", lambda: client.CoreV1Api(self.api_client).list_node().items)
        return {n.metadata.name: NodeState(n.metadata.name, _ready(n), n.status.node_info.kubelet_version,
                                           bool(n.spec.unschedulable), dict(n.metadata.annotations or {}),
                                           frozenset((t.key, t.effect) for t in n.spec.taints or []),
                                           dict(n.metadata.labels or {}), _applied_labels(n), _not_ready_reason(n))
                for n in items}

    def wait_nodes_ready(self, names: list[str], timeout: float = 300,
                         on_ready: Callable[[str], None] = lambda name: None) -> None:
        """Until every Node of `names` exists and is Ready (one list a poll, whatever their number),
        calling `on_ready` once for each as it is first seen Ready; a TimeoutError names each one
        that is not, with the kubelet's reason."""
        deadline = time.monotonic() + timeout
        waiting: dict[str, str] = {name: "no Node" for name in names}
        while True:
            try:
                live = self.nodes()
                now_waiting = {name: "no Node" if name not in live else live[name].not_ready_reason
                               for name in names if name not in live or not live[name].ready}
                for name in waiting.keys() - now_waiting.keys():
                    on_ready(name)
                waiting = now_waiting
            except Exception:  # an API server restarting behind the endpoint: ask again until the deadline
                pass
            if not waiting:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(1)
        raise TimeoutError(f"{len(waiting)} of {len(names)} node(s) not Ready within {timeout:.0f}s: " +
                           "; ".join(f"{name}: {reason}" for name, reason in sorted(waiting.items())))

    def wait_node(self, node: str, kubelet_version: str, timeout: float = 240) -> None:
        """Until the Node is Ready with a kubelet of `kubelet_version`."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            try:
                state = self.nodes().get(node)
            except Exception:  # the endpoint's API servers restarting: ask again until the deadline
                state = None
            if state is not None and state.ready and state.kubelet_version == kubelet_version:
                return
            time.sleep(2)
        now = "no Node" if state is None else f"{'Ready' if state.ready else 'NotReady'}, kubelet {state.kubelet_version}"
        raise TimeoutError(f"{node} was not Ready with kubelet {kubelet_version} within {timeout:.0f}s ({now})")


@dataclass(frozen=True)
class NodeState:
    name: str
    ready: bool
    kubelet_version: str
    cordoned: bool
    annotations: dict[str, str]
    taints: frozenset[tuple[str, str]] = frozenset()  # (key, effect)
    labels: dict[str, str] = field(default_factory=dict)
    applied_labels: frozenset[str] = frozenset()  # the label keys openi-tasks' applies own
    not_ready_reason: str = ""  # the kubelet's words, when not Ready

    def labels_differ(self, wanted: dict[str, str]) -> bool:
        """Whether applying exactly `wanted` as openi-tasks' labels would change the node: a value
        differs, or a label openi-tasks applied before is left out (the apply removes it)."""
        return any(self.labels.get(k) != v for k, v in wanted.items()) or bool(self.applied_labels - wanted.keys())


def wait_ready(status: Callable[[], int], what: str, timeout: float = 180) -> None:
    """Until `status()` (an HTTP GET of /readyz) is 200."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            code = status()
            if code == 200:
                return
            last = f"HTTP {code}"
        except Exception as exc:  # not answering yet is what we are waiting out
            last = str(exc).splitlines()[0][:160]
        time.sleep(2)
    raise TimeoutError(f"{what} was not ready within {timeout:.0f}s ({last})")


def wait_apiserver_ready(address: str, port: int, ca_file: Path, timeout: float = 180) -> None:
    """Until one API server answers /readyz with ok, asked directly (not through the endpoint),
    anonymously: it must not depend on a client certificate that may be the one being renewed."""
    import urllib3

    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(ca_file), retries=False,
                               timeout=urllib3.Timeout(total=5))
    host = f"[{address}]" if ":" in address else address
    wait_ready(lambda: pool.request("GET", f"https://{host}:{port}/readyz").status,
               f"the API server at {address}:{port}", timeout)


def transient(exc: BaseException) -> bool:
    """Whether an API call may succeed if asked again."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as TransportError

    if isinstance(exc, ApiException):
        if exc.status in (429, 502, 503, 504):
            return True
        body = str(exc.body or "").lower()
        return exc.status == 500 and any(word in body for word in ("timed out", "timeout", "leader changed",
                                                                     "unavailable"))
    return isinstance(exc, (TransportError, ConnectionError, TimeoutError))


def _applied_labels(node, manager: str = FIELD_MANAGER) -> frozenset[str]:
    """The label keys that `manager` owns through server-side apply, from the Node's managedFields
    (`{"f:metadata": {"f:labels": {"f:<key>": {}}}}`)."""
    keys: set[str] = set()
    for entry in node.metadata.managed_fields or []:
        if entry.manager == manager and entry.operation == "Apply":
            labels = ((entry.fields_v1 or {}).get("f:metadata") or {}).get("f:labels") or {}
            keys.update(key[2:] for key in labels if key.startswith("f:"))
    return frozenset(keys)


def _ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))


def _not_ready_reason(node) -> str:
    ready = next((c for c in node.status.conditions or [] if c.type == "Ready"), None)
    if ready is None:
        return "no Ready condition yet"
    return "" if ready.status == "True" else (ready.message or ready.reason or f"Ready is {ready.status}")[:300]


def _stays(pod) -> bool:
    """Pods a drain leaves alone: DaemonSets' (they tolerate cordons) and static (mirror) pods."""
    owners = pod.metadata.owner_references or []
    annotations = pod.metadata.annotations or {}
    return any(o.kind == "DaemonSet" for o in owners) or "kubernetes.io/config.mirror" in annotations


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(obj)
    data.pop("status", None)
    for key in _VOLATILE:
        data.get("metadata", {}).pop(key, None)
    return data
