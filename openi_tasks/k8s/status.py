"""`inv k8s.status`: hosts, etcd members, the endpoint's backends, Kubernetes nodes and GPU nodes
(expected, found, allocatable), as tables.

Returns whether everything is healthy, so the task can exit non-zero when it is not.
"""

from __future__ import annotations

import csv
import io
import socket
from dataclasses import dataclass, field

from ..config import Cluster
from ..pki import now
from ..report import Reporter
from ..run import Run, open_run
from ..ssh import Host, Inventory, describe_error
from . import gpufacts
from .certs import COLLECT, WARN_WITHIN_DAYS, CertificateInfo, parse_collected
from .etcd_client import member_health
from .gpufacts import GpuFacts
from .hostfacts import key_values
from .phases.backup_schedule import FACTS as BACKUP_FACTS, ScheduledSnapshots, duration
from .pki import ClusterPki

GPU_RESOURCE = "nvidia.com/gpu"
STATS = "curl -fsS 'http://127.0.0.1:8404/stats;csv'"


@dataclass
class HostState:
    """What one round trip to a host tells: its row, its GPUs, its certificates."""

    row: tuple
    gpus: GpuFacts | None = None
    certificates: list[CertificateInfo] = field(default_factory=list)
    snapshots: ScheduledSnapshots | None = None


def host_states(inventory: Inventory) -> list[HostState]:
    """One session per host (a host that does not answer is a row saying why)."""
    def one(host: Host) -> HostState:
        docker, containers, gpus, certificates, snapshots = host.sh_all([
            "docker version --format '{{.Server.Version}}' 2>/dev/null",
            "docker ps -a --filter label=openi.managed=true --format '{{.Names}}: {{.Status}}' 2>/dev/null",
            gpufacts.SCRIPT, COLLECT, BACKUP_FACTS])
        row = (host.name, host.machine.role, "yes", docker.stdout.strip() if docker.exited == 0 else "missing",
               "; ".join(containers.stdout.strip().splitlines()) or "-")
        return HostState(row, gpufacts.parse(key_values(gpus.stdout)), parse_collected(host.name, certificates.stdout)[0],
                         ScheduledSnapshots.parse(key_values(snapshots.stdout)))

    hosts = inventory.hosts()
    done = inventory.map(hosts, one)
    return [done[h] if not isinstance(done[h], Exception) else
            HostState((h.name, h.machine.role, describe_error(done[h]), "-", "-")) for h in hosts]


def gpu_rows(cluster: Cluster, found: dict[str, GpuFacts], allocatable: dict[str, str]) -> list[tuple]:
    """Per host that should have GPUs or has them: expected (its machine type), found, and what
    Kubernetes can allocate (nvidia.com/gpu, advertised by the device plugin); the last column says
    what is wrong."""
    rows = []
    for machine in cluster.machines:
        gpus = found.get(machine.hostname)
        if not machine.gpu_count and not (gpus and gpus.count):
            continue
        problem = gpufacts.mismatch(machine, gpus) if gpus else "not reachable"
        k8s = allocatable.get(machine.hostname.lower(), "0")
        if not problem and k8s != str(machine.gpu_count):
            problem = f"Kubernetes can allocate {k8s} of {machine.gpu_count} (is the drivers service deployed?)"
        rows.append((machine.hostname, f"{machine.gpu_count} {machine.sku.gpu.type if machine.sku.gpu else ''}".strip(),
                     f"{gpus.count} ({gpus.source}{', driver ' + gpus.driver if gpus.driver else ''})" if gpus else "?",
                     k8s, problem or "ok"))
    return rows


def endpoint_rows(cluster: Cluster, inventory: Inventory) -> list[tuple]:
    """(backend, status) of the API endpoint: haproxy's view in proxy mode, else a TCP probe."""
    endpoint = cluster.endpoint
    if endpoint.mode != "proxy":
        try:
            socket.create_connection((endpoint.address, endpoint.port), timeout=3).close()
            return [(endpoint.url, "answers")]
        except OSError as exc:
            return [(endpoint.url, f"does not answer ({exc})")]
    result = inventory.host(endpoint.host).sh(STATS)
    if result.exited != 0:
        return [(f"haproxy on {endpoint.host}", "not answering (is the endpoint phase deployed?)")]
    rows = []
    for record in csv.DictReader(io.StringIO(result.stdout.lstrip("# "))):
        if record["pxname"] == "kube-apiserver" and record["svname"] not in ("FRONTEND", "BACKEND"):
            rows.append((record["svname"], record["status"]))
    return rows


def node_rows(run: Run) -> tuple[list[tuple] | str, dict[str, str]]:
    """Kubernetes' nodes, or why they cannot be listed; and each node's allocatable GPUs."""
    kubeconfig = run.state.admin_conf
    if not kubeconfig.is_file():
        return f"no admin kubeconfig at {kubeconfig} (the control plane has not been deployed)", {}
    try:
        from kubernetes import client, config  # imported on use: slow to import

        api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        nodes = api.list_node(_request_timeout=5).items
    except Exception as exc:  # the API being down is a status to show, not a crash
        return f"the API server does not answer: {str(exc).splitlines()[0][:200]}", {}
    rows, gpus = [], {}
    for node in nodes:
        ready = next((c.status for c in node.status.conditions or [] if c.type == "Ready"), "Unknown")
        roles = ",".join(k.split("/", 1)[1] for k in node.metadata.labels or {} if k.startswith("node-role.kubernetes.io/"))
        rows.append((node.metadata.name, "Ready" if ready == "True" else "NotReady", roles or "-", node.status.node_info.kubelet_version))
        gpus[node.metadata.name] = (node.status.allocatable or {}).get(GPU_RESOURCE, "0")
    return rows, gpus


def show_earliest_certificate(certificates: list[CertificateInfo], reporter: Reporter) -> None:
    """The certificate on the hosts that expires first; a warning when that is within 30 days."""
    if not certificates:
        return
    first = min(certificates, key=lambda c: c.not_after)
    days = first.days_left(now())
    line = f"{first.host}: {first.path} ({first.subject}), on {first.not_after:%Y-%m-%d} ({days:.0f} days)"
    if days < WARN_WITHIN_DAYS:
        reporter.warn(f"a certificate expires within {WARN_WITHIN_DAYS} days: {line}; see inv k8s.certs")
    else:
        reporter.info(f"certificates: the first to expire is {line}")


def show_scheduled_snapshots(states: list[HostState], reporter: Reporter) -> bool:
    """The masters' scheduled etcd snapshots (k8s.backup --schedule), if any; False when one is
    late, missing or failed, each said in a warning."""
    rows = []
    for state in states:
        found = state.snapshots
        if found is None:
            continue
        rows.append((state.row[0], found.schedule, found.name or "-", duration(found.age) if found.name else "-",
                     found.size if found.name else "-", found.sha256[:16] or "-", found.problem or "ok"))
        if found.problem:
            reporter.warn(f"{state.row[0]}: scheduled etcd snapshots: {found.problem}")
    if rows:
        reporter.table("scheduled etcd snapshots", ("master", "schedule", "last snapshot", "age", "bytes", "sha256",
                                                    "problem"), rows)
    return all(row[-1] == "ok" for row in rows)


def show_status(cluster: Cluster, reporter: Reporter) -> bool:
    healthy = True
    with open_run(cluster, reporter, "status", record=False) as run:
        inventory = run.inventory
        states = host_states(inventory)
        reporter.table("hosts", ("host", "role", "reachable", "docker", "containers"), [s.row for s in states])
        healthy &= all(s.row[2] == "yes" for s in states)
        pki = ClusterPki(cluster, run.state, persist=False)
        if pki.has_operator_client:
            members = member_health(cluster, pki)
            reporter.table("etcd members", ("member", "client URL", "healthy", "leader", "version", "raft index", "error"),
                           [(m.name, m.url, "yes" if m.healthy else "no", "leader" if m.leader else "",
                             m.version, m.raft_index or "", m.error) for m in members])
            healthy &= all(m.healthy for m in members)
        else:
            reporter.info(f"etcd: no client certificate in {pki.etcd_dir} (etcd has not been deployed from here)")
        show_earliest_certificate([c for s in states for c in s.certificates], reporter)
        healthy &= show_scheduled_snapshots(states, reporter)
        endpoint = endpoint_rows(cluster, inventory)
        reporter.info(f"API endpoint: {cluster.endpoint.mode}, {cluster.endpoint.url}")
        reporter.table("API endpoint backends", ("backend", "status"), endpoint)
        healthy &= any(status in ("UP", "answers") for _, status in endpoint)
        nodes, allocatable = node_rows(run)
    if isinstance(nodes, str):
        reporter.info(f"Kubernetes nodes: {nodes}")
    else:
        reporter.table("Kubernetes nodes", ("node", "ready", "roles", "kubelet"), nodes)
        healthy &= all(row[1] == "Ready" for row in nodes)
    gpus = gpu_rows(cluster, {s.row[0]: s.gpus for s in states if s.gpus is not None}, allocatable)
    if gpus:
        reporter.table("GPU nodes", ("host", "expected", "found", "allocatable", "problem"), gpus)
        healthy &= all(row[-1] == "ok" for row in gpus)
    return healthy
