"""Which rendered files a deploy puts on each host, and which stay on the operator's machine.

The deploy phases and `inv cluster.render` both use this table, so what render shows is
exactly what a deploy writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Cluster, Machine
from ..render import RenderedFile, render

ETCD_PKI = "/etc/openi/etcd/pki"
ETCD_CONTAINER = "/etc/openi/containers/etcd.yaml"
HAPROXY_CONFIG = "/etc/openi/haproxy/haproxy.cfg"
HAPROXY_CONTAINER = "/etc/openi/containers/haproxy.yaml"
OPERATOR = "_operator"


@dataclass(frozen=True)
class HostTemplate:
    template: str
    target: str
    roles: tuple[str, ...]
    mode: int = 0o644


HOST_TEMPLATES = (
    HostTemplate("k8s/etcd/etcd-container.yaml.j2", ETCD_CONTAINER, ("master",)),
    HostTemplate("k8s/haproxy/haproxy.cfg.j2", HAPROXY_CONFIG, ("proxy",)),
    HostTemplate("k8s/haproxy/haproxy-container.yaml.j2", HAPROXY_CONTAINER, ("proxy",)),
)


def host_files(cluster: Cluster, machine: Machine, initial_cluster_state: str = "new") -> list[RenderedFile]:
    """Every templated file that `machine` gets, by its role."""
    context = {
        "cluster": cluster,
        "machine": machine,
        "k8s": cluster.kubernetes,
        "pki": ETCD_PKI,
        "member": next((m for m in cluster.etcd_members if m.machine is machine), None),
        "initial_cluster": cluster.etcd_initial_cluster,
        "initial_cluster_state": initial_cluster_state,
    }
    return [
        RenderedFile(t.target, render(t.template, **context), t.mode)
        for t in HOST_TEMPLATES
        if machine.role in t.roles
    ]


def operator_files(cluster: Cluster, state_dir: Path) -> list[RenderedFile]:
    """Files for the operator's machine (paths relative to the state directory)."""
    return [
        RenderedFile(
            "etcd/etcdctl.env",
            render("k8s/operator/etcdctl.env.j2", cluster=cluster, state_dir=str(state_dir)),
        )
    ]


def render_cluster(cluster: Cluster, state_dir: Path) -> dict[str, list[RenderedFile]]:
    """Everything a deploy would write, by hostname, plus `_operator`."""
    files = {m.hostname: host_files(cluster, m) for m in cluster.machines}
    files[OPERATOR] = operator_files(cluster, state_dir)
    return files
