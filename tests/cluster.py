"""The testbed's Kubernetes cluster as the tests see it: through the admin kubeconfig that
openi-tasks wrote and the API endpoint, with the kubernetes client (no kubectl)."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from rich.console import Console

from openi_tasks.errors import RunFailed
from openi_tasks.k8s.deploy import deploy
from openi_tasks.report import Reporter


def run_command(args: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`args` run to completion, output captured. The command gets a process group of its own, and
    the whole group is killed if the test stops it (its timeout, pytest-timeout, Ctrl-C): a task's
    own children (go build, ginkgo, mvn) must not live on and load the machine under later tests."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env=env)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def failure(result: subprocess.CompletedProcess) -> str:
    """What a failed command said, its error lines first, for a test's failure message."""
    said = (result.stdout + "\n" + result.stderr).splitlines()
    errors = [line.strip() for line in said if re.search(r"\berror\b|failed|refus", line, re.I)]
    return "\n".join([f"exit {result.returncode}: {' '.join(map(str, result.args))[:300]}", *errors[-15:],
                      "--- stdout (tail) ---", result.stdout[-4000:], "--- stderr (tail) ---", result.stderr[-3000:]])


def reporter() -> tuple[Reporter, io.StringIO]:
    """A reporter writing into a buffer wide enough that table rows stay on one line."""
    buffer = io.StringIO()
    return Reporter(Console(file=buffer, width=400, highlight=False)), buffer


def deployed(cluster, **options) -> str:
    """Deploy; a failure fails the test with the run's own output (its per-host table)."""
    report, out = reporter()
    try:
        deploy(cluster, report, **options)
    except RunFailed:
        raise AssertionError(out.getvalue()[-6000:]) from None
    return out.getvalue()


class NotYet(str):
    """What a `wait_for` check saw when it is not there yet: false, but shown if time runs out."""

    def __bool__(self) -> bool:
        return False


def wait_for(what: str, check: Callable[[], object], timeout: float = 180, interval: float = 2):
    """Poll `check` until it returns something true; fail the test with the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # the API may be restarting: keep asking until the deadline
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} within {timeout:.0f}s; last: {last!r}")


class Kube:
    def __init__(self, kubeconfig: Path) -> None:
        self.api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)

    def nodes(self) -> dict[str, dict]:
        found = {}
        for node in self.core.list_node(_request_timeout=10).items:
            ready = next((c.status for c in node.status.conditions or [] if c.type == "Ready"), "Unknown")
            found[node.metadata.name] = {"ready": ready == "True", "version": node.status.node_info.kubelet_version,
                                         "labels": node.metadata.labels or {},
                                         "unschedulable": bool(node.spec.unschedulable)}
        return found

    def wait_ready(self, names: list[str], version: str, timeout: float = 240) -> dict[str, dict]:
        def ready():
            nodes = self.nodes()
            return nodes if sorted(nodes) == sorted(names) and all(
                n["ready"] and n["version"] == version for n in nodes.values()) else None
        return wait_for(f"nodes {names} Ready at {version}", ready, timeout)

    def pods(self, namespace: str | None = None) -> list:
        if namespace:
            return self.core.list_namespaced_pod(namespace, _request_timeout=10).items
        return self.core.list_pod_for_all_namespaces(_request_timeout=10).items

    def wait_running(self, namespace: str, timeout: float = 240) -> list:
        def running():
            pods = self.pods(namespace)
            return pods if pods and all(p.status.phase == "Running" and all(
                c.ready for c in p.status.container_statuses or []) for p in pods) else None
        return wait_for(f"every pod of {namespace} Running and ready", running, timeout)

    def run_pod(self, name: str, image: str, node: str, command: list[str] | None = None,
                env: dict[str, str] | None = None, labels: dict[str, str] | None = None, namespace: str = "default"):
        container = client.V1Container(name="main", image=image, command=command,
                                       env=[client.V1EnvVar(name=k, value=v) for k, v in (env or {}).items()])
        pod = client.V1Pod(metadata=client.V1ObjectMeta(name=name, labels=labels or {}),
                           spec=client.V1PodSpec(node_name=node, containers=[container],
                                                 termination_grace_period_seconds=1))
        self.core.create_namespaced_pod(namespace, pod)
        return wait_for(f"pod {name} Running", lambda: self._running(name, namespace), 120)

    def _running(self, name: str, namespace: str):
        pod = self.core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase == "Running" and all(c.ready for c in pod.status.container_statuses or []) \
            else None

    def exec(self, pod: str, command: list[str], namespace: str = "default") -> str:
        return stream(self.core.connect_get_namespaced_pod_exec, pod, namespace, command=command,
                      stderr=True, stdin=False, stdout=True, tty=False)

    def delete_pod(self, name: str, namespace: str = "default") -> None:
        try:
            self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise
