"""Which files a deploy puts on each host, and which stay on the operator's machine.

The deploy phases and `inv cluster.render` both use this table, so what render shows is
exactly what a deploy writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Cluster, EtcdMember, Machine
from ..render import RenderedFile, render
from ..state import StateDir
from .hostfacts import SYSCTLS
from .pki import ClusterPki

ETCD_PKI = "/etc/openi/etcd/pki"
ETCD_CONTAINER = "/etc/openi/containers/etcd.yaml"
ETCD_BOOTSTRAP = "/etc/openi/etcd/bootstrap.env"
HAPROXY_DIR = "/etc/openi/haproxy"
HAPROXY_CONFIG = f"{HAPROXY_DIR}/haproxy.cfg"
HAPROXY_CONTAINER = "/etc/openi/containers/haproxy.yaml"
MODULES_LOAD = "/etc/modules-load.d/openi-kubernetes.conf"
SYSCTL_CONF = "/etc/sysctl.d/99-openi-kubernetes.conf"
OPERATOR = "_operator"
ALL_ROLES = ("master", "worker", "proxy")


@dataclass(frozen=True)
class HostTemplate:
    template: str
    target: str
    roles: tuple[str, ...]
    mode: int = 0o644


HOST_TEMPLATES = (
    HostTemplate("k8s/host/modules-load.conf.j2", MODULES_LOAD, ALL_ROLES),
    HostTemplate("k8s/host/sysctl.conf.j2", SYSCTL_CONF, ALL_ROLES),
    HostTemplate("k8s/etcd/etcd-container.yaml.j2", ETCD_CONTAINER, ("master",)),
    HostTemplate("k8s/etcd/bootstrap.env.j2", ETCD_BOOTSTRAP, ("master",)),
    HostTemplate("k8s/haproxy/haproxy.cfg.j2", HAPROXY_CONFIG, ("proxy",)),
    HostTemplate("k8s/haproxy/haproxy-container.yaml.j2", HAPROXY_CONTAINER, ("proxy",)),
)


def member_of(cluster: Cluster, machine: Machine) -> EtcdMember | None:
    return next((m for m in cluster.etcd_members if m.machine is machine), None)


def host_files(cluster: Cluster, machine: Machine) -> list[RenderedFile]:
    """Every templated file that `machine` gets, by its role.

    A master's bootstrap.env is the one for a new cluster (every member from the start);
    `bootstrap_env` makes the one for a member joining a running cluster.
    """
    context = {
        "cluster": cluster,
        "machine": machine,
        "k8s": cluster.kubernetes,
        "pki": ETCD_PKI,
        "bootstrap_env": ETCD_BOOTSTRAP,
        "member": member_of(cluster, machine),
        "initial_cluster": cluster.etcd_initial_cluster,
        "initial_cluster_state": "new",
        "sysctls": SYSCTLS,
    }
    return [
        RenderedFile(t.target, render(t.template, **context), t.mode)
        for t in HOST_TEMPLATES
        if machine.role in t.roles
    ]


def bootstrap_env(cluster: Cluster, initial_cluster: str, state: str) -> RenderedFile:
    """How a member starts on an empty data directory: the cluster it joins, new or existing."""
    text = render("k8s/etcd/bootstrap.env.j2", cluster=cluster, initial_cluster=initial_cluster,
                  initial_cluster_state=state)
    return RenderedFile(ETCD_BOOTSTRAP, text)


def etcd_pki_files(pki: ClusterPki, member: EtcdMember) -> list[RenderedFile]:
    """A member's certificates and keys as they go to /etc/openi/etcd/pki (keys 0600)."""
    return [
        RenderedFile(f"{ETCD_PKI}/{name}", content.decode(), 0o600 if name.endswith(".key") else 0o644)
        for name, content in sorted(pki.member_files(member).items())
    ]


def file_at(files: list[RenderedFile], path: str) -> RenderedFile:
    return next(f for f in files if f.path == path)


def operator_files(cluster: Cluster, state: StateDir) -> list[RenderedFile]:
    """Files for the operator's machine (paths relative to the state directory)."""
    return [
        RenderedFile(
            str(state.etcdctl_env.relative_to(state.root)),
            render("k8s/operator/etcdctl.env.j2", cluster=cluster, state_dir=str(state.root)),
        )
    ]


def render_cluster(cluster: Cluster, state: StateDir) -> dict[str, list[RenderedFile]]:
    """Everything a deploy would write, by hostname, plus `_operator`. Writes no state."""
    pki = ClusterPki(cluster, state, persist=False)
    files = {}
    for machine in cluster.machines:
        files[machine.hostname] = host_files(cluster, machine)
        member = member_of(cluster, machine)
        if member is not None:
            files[machine.hostname] += etcd_pki_files(pki, member)
    files[OPERATOR] = operator_files(cluster, state)
    return files
