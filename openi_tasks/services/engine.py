"""The service engine: deploy in dependency order and wait until ready; clean in reverse; status.

Every service is rendered before anything is applied (a template error stops the run with nothing
changed). Applying is server-side apply, so a second deploy changes nothing. A service that does
not become ready in its timeout stops the run, showing its pods' state and last events.

    services.clean with no service named follows the original toolkit:
      1. every deployed service but cluster-configuration goes, in reverse dependency order;
      2. the one-shot cleaning DaemonSet wipes the platform's data on every node, and is waited for;
      3. it is deleted; 4. cluster-configuration (which holds the registry secret) goes last.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import Cluster
from ..errors import OpenIError
from ..report import Reporter
from .api import WORKLOADS, ClusterApi, WorkloadStatus
from .catalog import ServiceSpec, deploy_order
from .drivers import host_drivers
from .render import RenderedService, render_service, service_context

CLUSTER_CONFIGURATION = "cluster-configuration"
CLEANING = "cleaning"


class ServiceNotReady(OpenIError):
    """A service did not become ready in its timeout; the message shows why, per pod."""


class HookFailed(OpenIError):
    """A service's start or stop hook exited non-zero."""


class _Waiting:
    """A service applied and not yet ready: since when, what it changed, what was last shown."""

    def __init__(self, service: RenderedService, started: float, changed: int) -> None:
        self.service = service
        self.started = started
        self.changed = changed
        self.workloads = [o for o in service.objects if o["kind"] in WORKLOADS]
        self.said = ""


@dataclass(frozen=True)
class ServiceOutcome:
    name: str
    changed: int  # objects created or changed
    seconds: float


class ServiceEngine:
    def __init__(self, cluster: Cluster, services: dict[str, ServiceSpec], api: ClusterApi, reporter: Reporter,
                 kubeconfig: Path | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, poll: float = 2.0) -> None:
        self.cluster = cluster
        self.services = services
        self.api = api
        self.reporter = reporter
        self.kubeconfig = kubeconfig
        self.clock = clock
        self.sleep = sleep
        self.poll = poll

    def render(self, specs: list[ServiceSpec], data: bool = True) -> list[RenderedService]:
        """Every service's files and objects; any error here comes before anything is applied."""
        context = service_context(self.cluster)
        return [render_service(spec, self.cluster, context, data) for spec in specs]

    # --- deploy -----------------------------------------------------------------------------

    def deploy(self, names: list[str] | None = None, with_prerequisites: bool = False) -> list[ServiceOutcome]:
        """Each service is applied as soon as its prerequisites are ready, and every service applied
        is waited for at once: services that do not depend on each other come up together."""
        rendered = self.render(deploy_order(self.services, names, with_prerequisites))
        selected = {s.spec.name for s in rendered}
        pending = list(rendered)  # in dependency order
        waiting: dict[str, _Waiting] = {}
        ready: set[str] = set()
        outcomes = []
        labelled = False
        with self.reporter.activity("services: waiting until ready") as activity:
            while pending or waiting:
                for service in [s for s in pending if all(p in ready or p not in selected
                                                            for p in s.spec.prerequisites)]:
                    pending.remove(service)
                    start = self.clock()
                    changed = 0
                    if service.spec.labels and not labelled:  # once, before the first service placed by labels
                        changed, labelled = self._label_nodes(), True
                    changed += self._apply(service)
                    self._hook(service.spec, service.spec.start)
                    waiting[service.spec.name] = _Waiting(service, start, changed)
                done = self._poll(list(waiting.values()), activity)
                for one in done:
                    del waiting[one.service.spec.name]
                    ready.add(one.service.spec.name)
                    outcomes.append(self._ready(one))
                if waiting and not done:
                    self.sleep(self.poll)
        if outcomes and not any(o.changed for o in outcomes):
            self.reporter.info("every service is already as configured: no changes")
        return outcomes

    def _ready(self, one: "_Waiting") -> ServiceOutcome:
        name = one.service.spec.name
        if name == "drivers":  # it leaves a host's own working driver alone
            labels = self.api.nodes_labels()
            for line, differs in host_drivers(self.cluster, lambda node: labels.get(node, {})):
                (self.reporter.warn if differs else self.reporter.info)(line)
        self.reporter.info(f"{name}: ready ({one.changed} object(s) changed)")
        return ServiceOutcome(name, one.changed, self.clock() - one.started)

    def _label_nodes(self) -> int:
        """Every node gets exactly its machine's labels (flags and GPU labels).

        Always the whole set, as k8s.deploy applies it: under server-side apply a label left out of
        an apply is removed, so a subset would strip the others, and a flag taken off a machine in
        the configuration leaves its node.
        """
        start = self.clock()
        changed = self.api.label_nodes({m.hostname.lower(): m.node_labels for m in self.cluster.nodes})
        self.reporter.info(f"node labels: {changed} of {len(self.cluster.nodes)} node(s) changed "
                           f"in {self.clock() - start:.1f}s")
        return changed

    def _apply(self, service: RenderedService) -> int:
        return sum(self.api.apply(obj) for obj in service.objects)

    def wait_ready(self, service: RenderedService) -> None:
        """Until every workload of the service is ready (see `_poll`)."""
        waiting = [_Waiting(service, self.clock(), 0)]
        with self.reporter.activity(f"{service.spec.name}: waiting until ready") as activity:
            while not self._poll(waiting, activity):
                self.sleep(self.poll)

    def _poll(self, waiting: list["_Waiting"], activity) -> list["_Waiting"]:
        """One look at every waiting service's workloads: those now ready. A failed workload, or a
        service past its timeout (counted from when it was applied), stops the run with its pods'
        states. What is still waited for is shown when it changes (live on a terminal)."""
        done = []
        for one in waiting:
            statuses = [self.api.status(o) for o in one.workloads]
            failed = [s for s in statuses if s.failed]
            if not failed and all(s.done for s in statuses):
                done.append(one)
                continue
            if failed or self.clock() >= one.started + one.service.spec.timeout:
                raise ServiceNotReady(self._diagnosis(one.service, one.workloads, statuses, failed))
            text = ", ".join(f"{s.kind} {s.name} {s.ready}/{s.desired}" for s in statuses if not s.done)
            if text != one.said:
                activity.step(f"{one.service.spec.name}: waiting for {text}")
                one.said = text
        return done

    def _diagnosis(self, service: RenderedService, workloads: list[dict], statuses: list[WorkloadStatus],
                   failed: list[WorkloadStatus]) -> str:
        why = "failed" if failed else f"did not become ready within {service.spec.timeout}s"
        lines = [f"service {service.spec.name} {why}:"]
        for obj, status in zip(workloads, statuses):
            if status.done:
                continue
            lines.append(f"  {status.kind} {status.name}: {status.ready}/{status.desired} ready"
                         + (f" ({status.failed})" if status.failed else ""))
            lines += [f"    {line}" for line in self.api.diagnose(obj)]
        return "\n".join(lines)

    def _hook(self, spec: ServiceSpec, hook: str | None) -> None:
        if not hook:
            return
        env = {**os.environ, "OPENI_SERVICE": spec.name, "OPENI_CONFIG": str(self.cluster.path)}
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        result = subprocess.run([str(spec.directory / hook)], cwd=spec.directory, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n    ".join((result.stdout + result.stderr).strip().splitlines()[-10:])
            raise HookFailed(f"service {spec.name}: {hook} exited {result.returncode}:\n    {tail}")

    # --- clean ------------------------------------------------------------------------------

    def clean(self, names: list[str] | None = None) -> list[str]:
        """Remove services in reverse dependency order; with no names, the original's whole sequence."""
        if names:
            rendered = self.render(deploy_order(self.services, names), data=False)
            return [self._remove(service) for service in reversed(rendered)]
        everything = self.render(deploy_order(self.services), data=False)
        removed = [self._remove(s) for s in reversed(everything) if s.spec.name != CLUSTER_CONFIGURATION]
        if CLEANING in self.services:
            (cleaning,) = self.render([self.services[CLEANING]])
            self._apply(cleaning)
            self.reporter.info("cleaning: wiping the platform's data on every node")
            self.wait_ready(cleaning)
            removed.append(self._remove(cleaning))
        removed += [self._remove(s) for s in everything if s.spec.name == CLUSTER_CONFIGURATION]
        return removed

    def _remove(self, service: RenderedService) -> str:
        self._hook(service.spec, service.spec.stop)
        deleted = sum(self.api.delete(obj) for obj in reversed(service.objects))
        self.reporter.info(f"{service.spec.name}: removed ({deleted} object(s))")
        return service.spec.name

    # --- status -----------------------------------------------------------------------------

    def status(self) -> list[tuple[str, str, str, str]]:
        """(service, workload, ready/desired, nodes) for every workload of every deployed service."""
        rows = []
        for service in self.render(deploy_order(self.services), data=False):
            for obj in (o for o in service.objects if o["kind"] in WORKLOADS):
                state = self.api.status(obj)
                rows.append((service.spec.name, f"{state.kind} {state.name}", f"{state.ready}/{state.desired}"
                             + ("" if state.done else " (not ready)"), ", ".join(state.nodes) or "-"))
        return rows
