"""kubeadm's configuration (API kubeadm.k8s.io/v1beta4), built from typed data.

The first master runs `kubeadm init` with an InitConfiguration and a ClusterConfiguration
(external etcd, the API endpoint, the networks); the other masters join as control plane and
the workers join, each with a JoinConfiguration. The Kubernetes CA is made by openi-tasks and
placed on the masters before kubeadm runs, so its hash, and with it every join configuration,
is known before the cluster exists.
"""

from __future__ import annotations

import hashlib
import secrets
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..config import Cluster, Machine
from ..config.files import NODE_CIDR_MASK
from ..state import write_private

API_VERSION = "kubeadm.k8s.io/v1beta4"
CRI_SOCKET = "unix:///run/containerd/containerd.sock"
PKI = "/etc/kubernetes/pki"
ETCD_CA = f"{PKI}/etcd/ca.crt"
ETCD_CLIENT_CERT = f"{PKI}/apiserver-etcd-client.crt"
ETCD_CLIENT_KEY = f"{PKI}/apiserver-etcd-client.key"
CONFIG_DIR = "/etc/openi/kubeadm"
STARTED, DONE = f"{CONFIG_DIR}/started", f"{CONFIG_DIR}/done"
LOCAL_CONFIG = f"{CONFIG_DIR}/local.yaml"  # see local_config_file
# With kubernetes.cluster-dns, the resolvers pods (CoreDNS among them) forward to.
KUBELET_RESOLV_CONF = "/etc/openi/kubelet/resolv.conf"
TOKEN_TTL = "24h0m0s"


@dataclass(frozen=True)
class Arg:
    """A structured extra argument (v1beta4 replaced string maps with name/value lists)."""

    name: str
    value: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "value": self.value}


@dataclass(frozen=True)
class Adaptations:
    """What the hosts' facts change in kubeadm's configuration; the defaults suit a usual host.

    - `cgroup_v1`: this host runs cgroup v1. kubeadm's SystemVerification check then fails
      whatever kubelet allows (from Kubernetes 1.35), so it is ignored by name on this host.
    - `any_cgroup_v1`: some host does. kubelet (1.35+) refuses cgroup v1 unless told
      `failCgroupV1: false`; its configuration is the cluster's, so that is said for all.
    - `conntrack_fixed`: some host cannot size conntrack (a host that is itself a container, or
      whose /proc/sys is read-only). kube-proxy would fail trying; it leaves those settings alone.
    """

    cgroup_v1: bool = False
    any_cgroup_v1: bool = False
    conntrack_fixed: bool = False


# kubernetes.gpu-taint: on GPU nodes. Pods that ask for nvidia.com/gpu tolerate it by themselves
# (the API server's ExtendedResourceToleration admission); others must say they tolerate it.
GPU_TAINT = {"key": "nvidia.com/gpu", "effect": "NoSchedule"}
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


@dataclass(frozen=True)
class NodeRegistration:
    """`taints`: None leaves kubeadm's default (a master's control-plane taint, none on a worker)."""

    name: str
    kubelet_args: tuple[Arg, ...] = ()
    cri_socket: str = CRI_SOCKET
    ignore_preflight_errors: tuple[str, ...] = ()
    taints: tuple[dict[str, str], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "criSocket": self.cri_socket}
        if self.taints is not None:
            data["taints"] = [dict(t) for t in self.taints]
        if self.kubelet_args:
            data["kubeletExtraArgs"] = [a.to_dict() for a in self.kubelet_args]
        if self.ignore_preflight_errors:
            data["ignorePreflightErrors"] = list(self.ignore_preflight_errors)
        return data


@dataclass(frozen=True)
class APIEndpoint:
    advertise_address: str
    bind_port: int

    def to_dict(self) -> dict[str, Any]:
        return {"advertiseAddress": self.advertise_address, "bindPort": self.bind_port}


@dataclass(frozen=True)
class BootstrapToken:
    token: str
    ttl: str = TOKEN_TTL
    usages: tuple[str, ...] = ("signing", "authentication")
    groups: tuple[str, ...] = ("system:bootstrappers:kubeadm:default-node-token",)

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token, "ttl": self.ttl, "usages": list(self.usages), "groups": list(self.groups)}


@dataclass(frozen=True)
class InitConfiguration:
    node_registration: NodeRegistration
    local_api_endpoint: APIEndpoint
    bootstrap_tokens: tuple[BootstrapToken, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": "InitConfiguration",
            "bootstrapTokens": [t.to_dict() for t in self.bootstrap_tokens],
            "nodeRegistration": self.node_registration.to_dict(),
            "localAPIEndpoint": self.local_api_endpoint.to_dict(),
        }


@dataclass(frozen=True)
class ExternalEtcd:
    endpoints: tuple[str, ...]
    ca_file: str = ETCD_CA
    cert_file: str = ETCD_CLIENT_CERT
    key_file: str = ETCD_CLIENT_KEY

    def to_dict(self) -> dict[str, Any]:
        return {"external": {"endpoints": list(self.endpoints), "caFile": self.ca_file,
                             "certFile": self.cert_file, "keyFile": self.key_file}}


@dataclass(frozen=True)
class ClusterConfiguration:
    cluster_name: str
    kubernetes_version: str
    control_plane_endpoint: str
    image_repository: str
    pod_subnet: str
    service_subnet: str
    etcd: ExternalEtcd
    cert_sans: tuple[str, ...]
    api_server_args: tuple[Arg, ...] = ()
    controller_manager_args: tuple[Arg, ...] = ()
    encryption_algorithm: str = "ECDSA-P256"
    certificate_days: int | None = None  # kubeadm's default: 365

    def to_dict(self) -> dict[str, Any]:
        api_server: dict[str, Any] = {"certSANs": list(self.cert_sans)}
        if self.api_server_args:
            api_server["extraArgs"] = [a.to_dict() for a in self.api_server_args]
        return {
            "apiVersion": API_VERSION,
            "kind": "ClusterConfiguration",
            "clusterName": self.cluster_name,
            "kubernetesVersion": self.kubernetes_version,
            "controlPlaneEndpoint": self.control_plane_endpoint,
            "imageRepository": self.image_repository,
            "encryptionAlgorithm": self.encryption_algorithm,
            "networking": {"podSubnet": self.pod_subnet, "serviceSubnet": self.service_subnet},
            "etcd": self.etcd.to_dict(),
            "apiServer": api_server,
            **({"controllerManager": {"extraArgs": [a.to_dict() for a in self.controller_manager_args]}}
               if self.controller_manager_args else {}),
            **({"certificateValidityPeriod": f"{self.certificate_days * 24}h0m0s"} if self.certificate_days else {}),
        }


@dataclass(frozen=True)
class JoinConfiguration:
    node_registration: NodeRegistration
    api_server_endpoint: str
    token: str
    ca_cert_hashes: tuple[str, ...]
    control_plane: APIEndpoint | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": "JoinConfiguration",
            "discovery": {"bootstrapToken": {"apiServerEndpoint": self.api_server_endpoint, "token": self.token,
                                             "caCertHashes": list(self.ca_cert_hashes)}},
            "nodeRegistration": self.node_registration.to_dict(),
        }
        if self.control_plane is not None:
            data["controlPlane"] = {"localAPIEndpoint": self.control_plane.to_dict()}
        return data


@dataclass(frozen=True)
class KubeletConfiguration:
    cgroup_driver: str = "systemd"
    fail_swap_on: bool = True
    fail_cgroup_v1: bool = True
    resolv_conf: str = ""  # pods' upstream resolvers (kubernetes.cluster-dns), else the host's own
    eviction_hard: tuple[tuple[str, str], ...] = ()  # kubernetes.kubelet-eviction-hard, else kubelet's defaults
    parallel_image_pulls: int = 1  # kubernetes.kubelet-max-parallel-image-pulls

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
                                "cgroupDriver": self.cgroup_driver, "failSwapOn": self.fail_swap_on}
        if self.parallel_image_pulls > 1:
            data.update(serializeImagePulls=False, maxParallelImagePulls=self.parallel_image_pulls)
        if self.resolv_conf:
            data["resolvConf"] = self.resolv_conf
        if self.eviction_hard:
            data["evictionHard"] = dict(self.eviction_hard)
        if not self.fail_cgroup_v1:
            data["failCgroupV1"] = False
        return data


@dataclass(frozen=True)
class KubeProxyConfiguration:
    """Written only when kube-proxy must not touch the hosts' conntrack settings."""

    conntrack_fixed: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration"}
        if self.conntrack_fixed:
            # 0 means: leave the host's value alone (it cannot be changed from here).
            data["conntrack"] = {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"}
        return data


@dataclass(frozen=True)
class JoinSecrets:
    """The bootstrap token and the Kubernetes CA's hash that every join needs."""

    token: str
    ca_cert_hash: str = field(repr=False)


def ca_cert_hash(ca_pem: bytes) -> str:
    """kubeadm's discovery hash: sha256 of the CA's DER-encoded SubjectPublicKeyInfo."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def bootstrap_token(path: Path, persist: bool) -> str:
    """The cluster's join token `[a-z0-9]{6}.[a-z0-9]{16}`, kept (0600) at `path` in the state directory."""
    if path.is_file():
        return path.read_text().strip()
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    token = "".join(secrets.choice(alphabet) for _ in range(6)) + "." + "".join(secrets.choice(alphabet) for _ in range(16))
    if persist:
        write_private(path, token + "\n")
    return token


def _registration(cluster: Cluster, machine: Machine, adapt: Adaptations) -> NodeRegistration:
    """A GPU node joins tainted when the configuration asks, so no pod lands there before the taint.
    kubelet's CRI endpoint is the runtime's the configuration chooses (runtime.py)."""
    from .runtime import runtime_of

    taints = None
    if cluster.kubernetes.gpu_taint and machine.gpu_count:
        taints = ((CONTROL_PLANE_TAINT,) if machine.is_master else ()) + (GPU_TAINT,)
    return NodeRegistration(machine.hostname, (Arg("node-ip", machine.address),), cri_socket=runtime_of(cluster).socket,
                            ignore_preflight_errors=("SystemVerification",) if adapt.cgroup_v1 else (), taints=taints)


def endpoint_address(cluster: Cluster) -> str:
    host = cluster.endpoint.address
    return f"[{host}]:{cluster.endpoint.port}" if ":" in host else f"{host}:{cluster.endpoint.port}"


def cluster_configuration(cluster: Cluster) -> ClusterConfiguration:
    k = cluster.kubernetes
    sans = [cluster.endpoint.address] + [m.address for m in cluster.masters] + [m.hostname for m in cluster.masters]
    return ClusterConfiguration(
        cluster_name=cluster.id,
        kubernetes_version=k.kubernetes_version,
        control_plane_endpoint=endpoint_address(cluster),
        image_repository=k.docker_registry,
        pod_subnet=str(k.pod_network_cidr),
        service_subnet=str(k.service_cluster_ip_range),
        etcd=ExternalEtcd(tuple(m.client_url for m in cluster.etcd_members)),
        cert_sans=tuple(dict.fromkeys(sans)),
        # Watches are closed at shutdown: without it, an API server's restart (renewal, upgrade)
        # waits out the whole request timeout (60 s) for its open watches to end by themselves.
        api_server_args=(Arg("profiling", "false"), Arg("shutdown-watch-termination-grace-period", "10s"),
                         # kubeadm's default, and pods asking for GPUs tolerate kubernetes.gpu-taint.
                         Arg("enable-admission-plugins", "NodeRestriction,ExtendedResourceToleration")),
        # Only when it is not kubeadm's own default: a cluster deployed before the key existed keeps
        # the configuration it has.
        controller_manager_args=(() if k.node_cidr_mask_size == NODE_CIDR_MASK else
                                 (Arg("node-cidr-mask-size", str(k.node_cidr_mask_size)),)),
        certificate_days=k.certificate_days,
    )


def init_configuration(cluster: Cluster, machine: Machine, join: JoinSecrets,
                       adapt: Adaptations = Adaptations()) -> InitConfiguration:
    return InitConfiguration(
        node_registration=_registration(cluster, machine, adapt),
        local_api_endpoint=APIEndpoint(machine.address, cluster.kubernetes.api_port),
        bootstrap_tokens=(BootstrapToken(join.token),),
    )


def join_configuration(cluster: Cluster, machine: Machine, join: JoinSecrets,
                       adapt: Adaptations = Adaptations()) -> JoinConfiguration:
    control_plane = APIEndpoint(machine.address, cluster.kubernetes.api_port) if machine.is_master else None
    return JoinConfiguration(
        node_registration=_registration(cluster, machine, adapt),
        api_server_endpoint=endpoint_address(cluster),
        token=join.token,
        ca_cert_hashes=(join.ca_cert_hash,),
        control_plane=control_plane,
    )


def config_file(cluster: Cluster, machine: Machine, join: JoinSecrets,
                adapt: Adaptations = Adaptations()) -> tuple[str, str]:
    """(path, YAML) of the kubeadm configuration this host runs with. Holds the token: 0600.

    The first master's also carries the cluster's kubelet and kube-proxy settings (kubeadm
    uploads them at init; joining nodes read them from the cluster)."""
    kubelet = KubeletConfiguration(fail_cgroup_v1=not adapt.any_cgroup_v1,
                                   resolv_conf=KUBELET_RESOLV_CONF if cluster.kubernetes.cluster_dns else "",
                                   eviction_hard=tuple(sorted((cluster.kubernetes.kubelet_eviction_hard or {}).items())),
                                   parallel_image_pulls=cluster.kubernetes.kubelet_max_parallel_image_pulls)
    if machine is cluster.masters[0]:
        documents = [init_configuration(cluster, machine, join, adapt), cluster_configuration(cluster), kubelet]
        if adapt.conntrack_fixed:
            documents.append(KubeProxyConfiguration(conntrack_fixed=True))
        path = f"{CONFIG_DIR}/init.yaml"
    else:
        documents = [join_configuration(cluster, machine, join, adapt)]
        path = f"{CONFIG_DIR}/join.yaml"
    text = "# kubeadm configuration written by openi-tasks\n" + yaml.safe_dump_all(
        [d.to_dict() for d in documents], sort_keys=False
    )
    return path, text


def local_config_file(cluster: Cluster, machine: Machine) -> str:
    """The configuration a master's kubeadm reads for `certs renew` and `config images pull`: no
    token in it. Given as a file, kubeadm does not read it from the cluster, whose API may no
    longer accept expired certificates; and it names the external etcd, so no etcd image is pulled."""
    documents = [InitConfiguration(_registration(cluster, machine, Adaptations()),
                                   APIEndpoint(machine.address, cluster.kubernetes.api_port), ()),
                 cluster_configuration(cluster)]
    return "# kubeadm configuration for local commands (certs renew, config images pull), written by openi-tasks\n" + yaml.safe_dump_all(
        [d.to_dict() for d in documents], sort_keys=False)


# An init or join that started and never finished (the run was interrupted, the host rebooted)
# cannot be resumed by kubeadm; nothing can have joined a control plane whose init did not finish.
# The host is reset, then its files are written again and kubeadm runs again.
# etcd is external (openi-tasks' own members): kubeadm reset's remove-etcd-member phase would look
# for stacked etcd pods for 60 s, find none, and wipe /var/lib/etcd, which is not ours.
RESET = "kubeadm reset -f --skip-phases=remove-etcd-member"


def reset_command(cluster: Cluster, socket: str | None = None) -> str:
    """kubeadm reset of the pods on `socket` (default: the configured runtime's): kubeadm finds only
    the default socket by itself, and with two containerds on a host it would reset the other one's."""
    from .runtime import runtime_of

    return f"{RESET} --cri-socket {socket or runtime_of(cluster).socket}"


def reset_unfinished(cluster: Cluster) -> str:
    return f"{reset_command(cluster)} && rm -rf /etc/cni/net.d/10-flannel.conflist {STARTED} {DONE}"


def run_command(verb: str, path: str) -> str:
    """`kubeadm init` or `kubeadm join` with its configuration, recorded as started before and done after."""
    return f"touch {STARTED} && rm -f {DONE} && kubeadm {verb} --config {shlex.quote(path)} && touch {DONE}"
