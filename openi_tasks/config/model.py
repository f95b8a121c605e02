"""The validated cluster: what every phase, template and table works from.

Built by `load_cluster`; immutable. Secrets stay `SecretStr` so that printing a model
never shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Optional

from pydantic import SecretStr

from .files import KubernetesSettings, MachineDefaults, MachineSku, OperatorSettings, RoleDefinitionFile, ServicesFile
from ..errors import OpenIError, UsageError
from .problems import Problem

ROLES = ("master", "worker", "proxy")


@dataclass(frozen=True)
class Machine:
    """One host with every inherited property resolved."""

    hostname: str
    address: str
    role: str
    sku_name: str
    sku: MachineSku
    etcdid: Optional[str]
    user: str
    port: int
    password: Optional[SecretStr] = field(default=None, repr=False)
    ssh_key: Optional[str] = None
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def is_master(self) -> bool:
        return self.role == "master"

    @property
    def gpu_count(self) -> int:
        return self.sku.gpu.count if self.sku.gpu else 0

    @property
    def node_labels(self) -> dict[str, str]:
        """The node's labels: its flags, and what its machine type says about GPUs.

        OpenI's spellings of the platform flags (openi-master, openi-worker) also set the original's
        (pai-master, pai-worker), which the services place by.
        """
        labels = dict(self.labels)
        for openi, pai in (("openi-master", "pai-master"), ("openi-worker", "pai-worker")):
            if labels.get(openi) == "true":
                labels[pai] = "true"
        if self.gpu_count:
            labels.update({"openi-gpu": "true", "openi-gpu-type": self.sku.gpu.type, "openi-gpu-count": str(self.gpu_count)})
        return labels


@dataclass(frozen=True)
class Endpoint:
    """Where the Kubernetes API is reached. `mode` is external, proxy or single."""

    mode: str
    address: str
    port: int
    host: Optional[str] = None  # the proxy node's or single master's hostname

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"https://{host}:{self.port}"


@dataclass(frozen=True)
class EtcdMember:
    """An etcd member: its name (the machine's etcdid) and where it listens."""

    name: str
    machine: Machine
    client_port: int
    peer_port: int

    @property
    def client_url(self) -> str:
        return f"https://{_url_host(self.machine.address)}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{_url_host(self.machine.address)}:{self.peer_port}"


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


class UnsupportedConfiguration(UsageError):
    """The configuration loads but names something this version of openi-tasks cannot deploy."""


@dataclass(frozen=True)
class Cluster:
    """A whole, valid configuration directory."""

    path: Path
    id: str
    machines: tuple[Machine, ...]
    skus: Mapping[str, MachineSku]
    kubernetes: KubernetesSettings
    services: ServicesFile
    roles: RoleDefinitionFile
    operator: OperatorSettings
    endpoint: Endpoint
    defaults: MachineDefaults = MachineDefaults()
    warnings: tuple[Problem, ...] = ()

    @cached_property
    def by_name(self) -> Mapping[str, Machine]:
        return MappingProxyType({m.hostname: m for m in self.machines})

    def with_role(self, role: str) -> tuple[Machine, ...]:
        return tuple(m for m in self.machines if m.role == role)

    def flagged(self, flag: str) -> tuple[Machine, ...]:
        """The machines whose node labels set `flag` to "true" (pai-master also by openi-master, ...)."""
        return tuple(m for m in self.machines if m.node_labels.get(flag) == "true")

    def platform_master(self) -> Machine:
        """The host of the platform's single-instance services (name node, resource manager,
        rest-server, ...): the first flagged pai-master (or openi-master)."""
        masters = self.flagged("pai-master")
        if not masters:
            raise UsageError('no host is flagged pai-master: "true" (or openi-master): the platform\'s master '
                             'services (name node, resource manager, rest-server, ...) run there')
        return masters[0]

    @cached_property
    def masters(self) -> tuple[Machine, ...]:
        return self.with_role("master")

    @cached_property
    def workers(self) -> tuple[Machine, ...]:
        return self.with_role("worker")

    @cached_property
    def proxies(self) -> tuple[Machine, ...]:
        return self.with_role("proxy")

    @cached_property
    def nodes(self) -> tuple[Machine, ...]:
        """The machines that are Kubernetes nodes: all of them (the proxy host runs kubelet too, as
        the role definition says)."""
        return self.machines

    @cached_property
    def etcd_members(self) -> tuple[EtcdMember, ...]:
        k = self.kubernetes
        return tuple(EtcdMember(m.etcdid, m, k.etcd_client_port, k.etcd_peer_port) for m in self.masters)

    @property
    def etcd_initial_cluster(self) -> str:
        """etcd's `--initial-cluster`: `id1=https://ip1:2380,...` from every master."""
        return ",".join(f"{m.name}={m.peer_url}" for m in self.etcd_members)

    @property
    def etcd_client_urls(self) -> str:
        return ",".join(m.client_url for m in self.etcd_members)

    def image_ref(self, image: str) -> str:
        """A platform image's reference: `<domain>/<namespace>/<image>:<tag>`, or
        `<namespace>/<image>:<tag>` when the domain is the word `public` (Docker Hub)."""
        info = self.services.cluster.docker_registry_info
        if info is None:
            raise OpenIError("cluster.docker-registry-info is not set in services-configuration.yaml")
        prefix = info.docker_namespace if info.docker_registry_domain == "public" else (
            f"{info.docker_registry_domain}/{info.docker_namespace}")
        return f"{prefix}/{image}:{info.docker_tag}"

    @property
    def dashboard_image(self) -> str:
        k = self.kubernetes
        if k.dashboard_image:
            return k.dashboard_image
        if k.dashboard_version.lstrip("v").split(".")[0] in ("0", "1"):
            # Dashboard 1.x, as the original deployed it: from kubernetes.docker-registry.
            return f"{k.docker_registry}/kubernetes-dashboard-amd64:{k.dashboard_version}"
        return f"docker.io/kubernetesui/dashboard:{k.dashboard_version}"

    def require_supported_versions(self) -> None:
        """Refuse, before any host is touched, versions that cannot make a working cluster."""
        reason = self.kubernetes.etcd_too_old()
        if reason:
            raise UnsupportedConfiguration(f"kubernetes.etcd-version: {reason}")

    @property
    def etcd_image(self) -> str:
        k = self.kubernetes
        return k.etcd_image or f"{k.docker_registry}/etcd:{k.etcd_version}"
