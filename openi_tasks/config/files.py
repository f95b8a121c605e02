"""Typed models of the four configuration files, key for key.

The original's file names and keys keep their names and meaning, so a directory written for it
loads unchanged. New settings have defaults; every key is documented in the bundled example
`cluster-configuration/`. Models here only check what one file can know on its own; checks that
need several files (machine types, roles, the API endpoint) live in `cluster.py`.
"""

from __future__ import annotations

import posixpath
import re
from ipaddress import IPv4Network, IPv6Network
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyAddress,
    SecretStr,
    StrictBool,
    StringConstraints,
)

from ..errors import UsageError
from .yamlfile import YamlFloat

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_ETCD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_USERNAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_VERSION = re.compile(r"^v?[0-9]+(\.[0-9]+){1,3}([-+][A-Za-z0-9.-]+)?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
# host[:port][/path]: where images are pulled from; never an option (`--env=X`), never spaces.
_REGISTRY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
_NAMESPACE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_URL = re.compile(r"^(https?|file)://[^\s'\"\\]+$")


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters or line breaks")
    return value


def _matches(pattern: re.Pattern, what: str):
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"is not {what}")
        return value

    return check


def _as_text(value: Any) -> Any:
    """Versions are often written unquoted (`hadoop-version: 2.9`); keep the text as written."""
    if isinstance(value, YamlFloat):
        return value.text
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _none_word(value: Any) -> Any:
    """The original wrote `custom-hadoop-binary-path: None`; treat the word as no value."""
    return None if value in ("None", "none", "") else value


# A path that is wiped or mounted into containers (data-path, etcd-data-path, dataFolder) must not
# be one of these (after normalising `.`, `..` and repeated slashes), nor lie in the last three.
SYSTEM_DIRECTORIES = ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/opt", "/proc",
                      "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/local", "/var", "/var/lib")
PSEUDO_FILESYSTEMS = ("/proc/", "/sys/", "/dev/")


def _absolute(value: str) -> str:
    """An absolute path on the hosts, normalised; never a system directory (it may be wiped)."""
    if not value.startswith("/"):
        raise ValueError("must be an absolute path (starting with /)")
    normal = posixpath.normpath(value)
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    if normal in SYSTEM_DIRECTORIES:
        what = "the root directory" if normal == "/" else f"the system directory {normal}"
        raise ValueError(f"must not be {what}" + (f" ({value!r} is {normal})" if normal != value else "")
                         + ": what is kept there is wiped by clean")
    if normal.startswith(PSEUDO_FILESYSTEMS):
        raise ValueError(f"must not be under {normal.split('/')[1] and '/' + normal.split('/')[1]}: not a place for data")
    return normal


def host_directory(value: str, flag: str) -> str:
    """A directory on the hosts given on the command line, held to the configuration's rule."""
    try:
        return _absolute(value)
    except ValueError as exc:
        raise UsageError(f"{flag} {value!r} {exc}") from None


def _operator_path(value: str) -> str:
    if not (value.startswith("/") or value.startswith("~")):
        raise ValueError("must be an absolute path or start with ~")
    return value


def _port_number(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError("must be a port number between 1 and 65535")
    return value


def _version(value: str) -> str:
    if not _VERSION.match(value):
        raise ValueError("is not a version such as 1.2.3")
    return value


def _k8s_version(value: str) -> str:
    if not re.match(r"^v?[0-9]+\.[0-9]+\.[0-9]+$", value):
        raise ValueError("is not a Kubernetes version such as v1.36.0")
    return value if value.startswith("v") else f"v{value}"


def _cidr(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return (IPv4Network if ":" not in value else IPv6Network)(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"is not a network in CIDR form such as 10.96.0.0/12 ({exc})")
    return value


def _address_text(value: Any) -> Any:
    # pydantic reads a number (and so a YAML boolean) as an address: `false` would be 0.0.0.0.
    if not isinstance(value, str):
        raise ValueError("must be an IP address written as text, such as 10.0.0.1")
    return value


def _specified(value: Any) -> Any:
    if value.is_unspecified:
        raise ValueError(f"is {value}, which is no host's address")
    return value


Address = Annotated[IPvAnyAddress, BeforeValidator(_address_text), AfterValidator(_specified)]
Text = Annotated[str, AfterValidator(_no_control)]
Hostname = Annotated[Text, AfterValidator(_matches(_HOSTNAME, "a valid host name (letters, digits, '-' and '.')"))]
DnsLabel = Annotated[Text, AfterValidator(_matches(_DNS_LABEL, "a lower-case DNS label (a-z, 0-9, '-', at most 63)"))]
EtcdId = Annotated[Text, AfterValidator(_matches(_ETCD_ID, "a valid etcd member name (letters, digits, '.', '_', '-')"))]
Username = Annotated[Text, AfterValidator(_matches(_USERNAME, "a valid POSIX user name"))]
Port = Annotated[int, AfterValidator(_port_number)]
Version = Annotated[Text, BeforeValidator(_as_text), AfterValidator(_version)]
KubernetesVersion = Annotated[Text, BeforeValidator(_as_text), AfterValidator(_k8s_version)]
HostPath = Annotated[Text, AfterValidator(_absolute)]
OperatorPath = Annotated[Text, AfterValidator(_operator_path)]
Image = Annotated[Text, AfterValidator(_matches(_IMAGE, "a valid image reference"))]
Url = Annotated[Text, AfterValidator(_matches(_URL, "an http(s):// or file:// URL without spaces or quotes"))]
Registry = Annotated[Text, AfterValidator(_matches(_REGISTRY, "a registry: host[:port][/path], such as "
                                                              "registry.example.com:5000/k8s"))]
Secret = Annotated[SecretStr, BeforeValidator(lambda v: v if isinstance(v, str) else _not_text())]
Network = Annotated[Union[IPv4Network, IPv6Network], BeforeValidator(_cidr)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def _not_text():
    # Raised without the value: this is used for secrets.
    raise ValueError("must be a string (quote it in YAML)")


class FileModel(BaseModel):
    """Base of every model here: immutable, keys written with '-', unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=_kebab)


class OpenSection(FileModel):
    """A section that may hold keys of the user's own (node labels, settings read by templates).

    Unknown keys are kept; one that looks like a misspelt known key is still reported.
    """

    model_config = ConfigDict(extra="allow")


# --- cluster-configuration.yaml -------------------------------------------------------------


class MachineDefaults(FileModel):
    """`default-machine-properties`: the SSH account every machine inherits."""

    username: Username = "root"
    password: Optional[Secret] = None
    sshport: Port = 22
    ssh_key: Optional[OperatorPath] = None


class Gpu(FileModel):
    type: Text
    count: Annotated[int, Field(ge=0)] = 0


class Cpu(FileModel):
    vcore: Annotated[int, Field(ge=1)]


class MachineSku(FileModel):
    """A named machine type of `machine-sku`."""

    mem: Optional[NonNegative] = None
    gpu: Optional[Gpu] = None
    cpu: Optional[Cpu] = None
    os: Optional[Text] = None
    data_folder: Optional[HostPath] = Field(None, alias="dataFolder")


class MachineEntry(OpenSection):
    """One host of `machine-list` (also the entry format of a nodes file).

    Keys other than these are flags such as `dashboard: "true"` that become node labels.
    """

    hostname: Hostname
    hostip: Address
    machine_type: Text
    k8s_role: Literal["master", "worker", "proxy"]
    etcdid: Optional[EtcdId] = None
    sshport: Optional[Port] = None
    username: Optional[Username] = None
    password: Optional[Secret] = None
    ssh_key: Optional[OperatorPath] = None


class OperatorSettings(FileModel):
    """`operator`: how openi-tasks on the operator's machine reaches the cluster (new)."""

    known_hosts: OperatorPath = "~/.ssh/known_hosts"
    host_key_policy: Literal["strict", "accept-new"] = "strict"
    connect_timeout: Annotated[int, Field(ge=1, le=600)] = 10
    command_timeout: Annotated[int, Field(ge=1)] = 1800
    keepalive: Annotated[int, Field(ge=0, le=300)] = 5
    concurrency: Annotated[int, Field(ge=1, le=1024)] = 32
    state_dir: Optional[OperatorPath] = None
    keep_snapshots: Annotated[int, Field(ge=1, le=10000)] = 10


class ClusterFile(FileModel):
    """cluster-configuration.yaml"""

    default_machine_properties: MachineDefaults = MachineDefaults()
    machine_sku: dict[Text, MachineSku]
    machine_list: Annotated[list[MachineEntry], Field(min_length=1)]
    operator: OperatorSettings = OperatorSettings()


# --- kubernetes-configuration.yaml ----------------------------------------------------------


ETCD_VERSION = "3.7.3-0"
NODE_CIDR_MASK = 24  # kubeadm's (the controller manager's) default for IPv4


EvictionSignal = Literal["memory.available", "nodefs.available", "nodefs.inodesFree", "imagefs.available",
                         "imagefs.inodesFree", "containerfs.available", "containerfs.inodesFree", "pid.available"]
# A percentage of the resource, or a quantity (100Mi, 2Gi), as kubelet reads them.
EvictionThreshold = Annotated[str, StringConstraints(pattern=r"^(\d{1,2}(\.\d+)?%|\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?)$")]


class KubernetesSettings(FileModel):
    """The `kubernetes` block. Keys marked legacy are read and ignored (see README)."""

    cluster_dns: Optional[Address] = None
    load_balance_ip: Optional[Address] = None
    service_cluster_ip_range: Network = IPv4Network("10.96.0.0/12")
    pod_network_cidr: Network = IPv4Network("10.244.0.0/16")
    # Each node's share of pod-network-cidr (the controller manager's --node-cidr-mask-size):
    # /24 is 254 pod addresses a node, 256 nodes in a /16.
    node_cidr_mask_size: Annotated[int, Field(ge=8, le=30)] = NODE_CIDR_MASK
    # kubelet's hard eviction thresholds (its evictionHard); none given: kubelet's defaults.
    kubelet_eviction_hard: Optional[dict[EvictionSignal, EvictionThreshold]] = None
    # Image pulls a kubelet runs at once (its maxParallelImagePulls; 1: one after another, kubelet's
    # default). One pull that hangs (an unreachable registry, a huge image) then holds up the rest.
    kubelet_max_parallel_image_pulls: Annotated[int, Field(ge=1, le=50)] = 4
    storage_backend: Literal["etcd3"] = "etcd3"
    docker_registry: Registry = "registry.k8s.io"
    kubernetes_version: KubernetesVersion = "v1.37.2"
    etcd_version: Version = ETCD_VERSION
    etcd_image: Optional[Image] = None
    etcd_data_path: HostPath = "/var/lib/openi/etcd"
    etcd_client_port: Port = 2379
    etcd_peer_port: Port = 2380
    # Scheduled etcd snapshots copied to S3 (k8s.backup --to-s3): the keys, the region they sign
    # for, and a CA (a file on this machine) for an endpoint whose certificate a private CA signed.
    etcd_backup_s3_access_key: Optional[Text] = None
    etcd_backup_s3_secret_key: Optional[Secret] = None
    etcd_backup_s3_region: Annotated[Text, StringConstraints(pattern=r"^[a-z0-9-]{1,40}$")] = "us-east-1"
    etcd_backup_s3_ca_file: Optional[OperatorPath] = None
    api_port: Port = 6443
    haproxy_image: Image = "docker.io/library/haproxy:2.8"
    network_plugin: Literal["flannel", "none"] = "flannel"
    flannel_image: Image = "ghcr.io/flannel-io/flannel:v0.28.10"
    flannel_cni_plugin_image: Image = "ghcr.io/flannel-io/flannel-cni-plugin:v1.7.1-flannel1"
    dashboard_version: Version = "v2.7.0"
    dashboard_image: Optional[Image] = None
    dashboard_metrics_scraper_image: Image = "docker.io/kubernetesui/metrics-scraper:v1.0.8"
    cni_plugins_version: Version = "v1.10.0"
    bundle_base_image: Image = "docker.io/library/debian:bookworm-slim"
    package_source: Literal["repository", "binaries"] = "repository"
    package_repository: Optional[Url] = None
    binaries_dir: Optional[OperatorPath] = None
    kubectl_download_url: Url = "https://dl.k8s.io/release"
    docker_install_source: Literal["docker-repository", "os-package"] = "docker-repository"
    docker_repository: Url = "https://download.docker.com/linux"
    certificate_days: Optional[Annotated[int, Field(ge=1, le=3650)]] = None
    gpu_mismatch: Literal["error", "warn"] = "error"
    nvidia_toolkit_source: Literal["repository", "preinstalled"] = "repository"
    nvidia_toolkit_repository: Url = "https://nvidia.github.io/libnvidia-container/stable/deb"
    gpu_default_runtime: StrictBool = False
    gpu_taint: StrictBool = False
    nvidia_device_plugin_image: Image = "nvcr.io/nvidia/k8s-device-plugin:v0.17.4"
    # kubelet's container runtime: `bundle` (containerd and runc of these versions from binaries-dir,
    # openi-tasks' own instance beside Docker's) or `host` (the containerd Docker runs on). Default:
    # bundle with package-source binaries, host with the package repository.
    containerd_source: Optional[Literal["bundle", "host"]] = None
    containerd_version: Version = "v2.4.2"
    runc_version: Version = "v1.5.3"
    # Legacy (hyperkube era): read, ignored, reported as a warning.
    hyperkube_version: Optional[Version] = None
    apiserver_version: Optional[Version] = None
    kube_scheduler_version: Optional[Version] = None
    kube_controller_manager_version: Optional[Version] = None

    @property
    def containerd_from_bundle(self) -> bool:
        return (self.containerd_source or ("bundle" if self.package_source == "binaries" else "host")) == "bundle"

    def etcd_too_old(self) -> Optional[str]:
        """Why etcd-version cannot hold this Kubernetes's data, or None (unknown with etcd-image)."""
        found = re.match(r"v?(\d+)\.(\d+)", self.etcd_version)
        if self.etcd_image or not found or (int(found[1]), int(found[2])) >= MIN_ETCD:
            return None
        return (f"etcd {self.etcd_version} is older than {MIN_ETCD[0]}.{MIN_ETCD[1]}, the oldest etcd the API server "
                f"of Kubernetes {self.kubernetes_version} supports; set etcd-version (default {ETCD_VERSION})")


# Every Kubernetes kubeadm deploys here (v1.2x and newer) needs etcd 3.5 or newer; the original's
# examples name etcd 3.2.
MIN_ETCD = (3, 5)

LEGACY_KUBERNETES_KEYS = (
    "hyperkube-version",
    "apiserver-version",
    "kube-scheduler-version",
    "kube-controller-manager-version",
)


class KubernetesFile(FileModel):
    """kubernetes-configuration.yaml"""

    kubernetes: KubernetesSettings


# --- k8s-role-definition.yaml ---------------------------------------------------------------


class ComponentRef(FileModel):
    name: Text


class RoleComponents(FileModel):
    component: list[ComponentRef] = []


class RoleDefinitionFile(FileModel):
    """k8s-role-definition.yaml: which components each role runs (shown by cluster.check)."""

    component_list: dict[Text, Any] = {}
    k8s_role: dict[Literal["master", "worker", "proxy"], RoleComponents]


# --- services-configuration.yaml ------------------------------------------------------------


class RegistryInfo(FileModel):
    """`cluster.docker-registry-info`: where the platform's images live."""

    docker_namespace: Annotated[Text, AfterValidator(_matches(_NAMESPACE, "a registry namespace (lower-case words "
                                                                          "joined by '.', '_', '-' or '/')"))]
    # `public` means Docker Hub, as in the original.
    docker_registry_domain: Annotated[Text, AfterValidator(lambda v: v if v == "public" else _matches(
        _REGISTRY, "a registry (host[:port]) or the word public")(v))]
    docker_username: Optional[Text] = None
    docker_password: Optional[Secret] = None
    docker_tag: Annotated[Text, BeforeValidator(_as_text), AfterValidator(_matches(_TAG, "an image tag (letters, "
                                                                                  "digits, '_', '.', '-')"))]
    secret_name: DnsLabel


class ClusterSection(FileModel):
    clusterid: DnsLabel
    nvidia_drivers_version: Optional[Version] = None
    docker_version: Optional[Version] = Field(
        None, validation_alias=AliasChoices("docker-version", "docker-verison")
    )
    data_path: HostPath = "/datastorage"
    docker_registry_info: Optional[RegistryInfo] = None


class ImagesSection(FileModel):
    """`images` (new): where the platform's own images start from."""

    base_os_image: Image = "docker.io/library/ubuntu:22.04"
    # Images whose code is not part of openi-tasks: the services run them by these names.
    rest_server: Image = "docker.io/openpai/rest-server:v1.8.0"
    webportal: Image = "docker.io/openpai/webportal:v1.8.0"
    frameworklauncher: Image = "docker.io/openpai/frameworklauncher:v1.8.0"
    grafana: Image = "docker.io/grafana/grafana:10.4.2"
    prometheus: Image = "docker.io/prom/prometheus:v2.53.0"
    node_exporter: Image = "docker.io/prom/node-exporter:v1.8.1"
    nginx: Image = "docker.io/library/nginx:1.27"
    # Default: nvcr.io/nvidia/driver:<nvidia-drivers-version>-ubuntu22.04
    nvidia_driver: Optional[Image] = None
    # Legacy: the device plugin is an add-on of k8s.deploy now (kubernetes.nvidia-device-plugin-image);
    # read and ignored, with a warning.
    nvidia_device_plugin: Optional[Image] = None


class VirtualCluster(FileModel):
    description: Optional[Text] = None
    capacity: NonNegative


class HadoopSection(OpenSection):
    # The original's example wrote it relative (`./customhadoop/`); it is read relative to the
    # configuration directory, and may name the tarball or the directory that holds it.
    custom_hadoop_binary_path: Annotated[Optional[Text], BeforeValidator(_none_word)] = None
    hadoop_version: Version = "2.9.0"
    hadoop_download_url: Url = "https://archive.apache.org/dist/hadoop/common"
    # Set: Hadoop's runtime is assembled from its artifacts in this Maven repository (a mirror of
    # Maven Central) instead of downloaded from hadoop-download-url.
    hadoop_maven_repository: Optional[Url] = None
    # A repository that asks for credentials: they go into the Maven settings file (0600, removed
    # after the run), never onto Maven's command line.
    hadoop_maven_username: Optional[Text] = None
    hadoop_maven_password: Optional[Secret] = None
    # The NodeManagers' disk health check: a disk fuller than this share of its file system, or with
    # less free than this, is bad, and a node whose every disk is bad is UNHEALTHY (no containers).
    # YARN's defaults: 90% and 0. On a thin or shared volume whose size says little, use bytes.
    nodemanager_max_disk_utilization_percent: Annotated[float, Field(gt=0, le=100)] = 90.0
    nodemanager_min_free_disk_mb: Annotated[int, Field(ge=0)] = 0
    virtual_clusters: dict[DnsLabel, VirtualCluster] = Field({}, alias="virtualClusters")


class FrameworkLauncherSection(OpenSection):
    frameworklauncher_port: Port = 9086


class RestServerSection(OpenSection):
    server_port: Port = 9186
    jwt_secret: Optional[Secret] = None
    default_pai_admin_username: Optional[Text] = Field(
        None,
        validation_alias=AliasChoices("default-pai-admin-username", "default-openi-admin-username"),
    )
    default_pai_admin_password: Optional[Secret] = Field(
        None,
        validation_alias=AliasChoices("default-pai-admin-password", "default-openi-admin-password"),
    )


class WebPortalSection(OpenSection):
    server_port: Port = 9286


class GrafanaSection(OpenSection):
    grafana_port: Port = 3000


class PrometheusSection(OpenSection):
    prometheus_port: Port = 9091
    node_exporter_port: Port = 9100


class PylonSection(OpenSection):
    port: Port = 80


class ServicesFile(OpenSection):
    """services-configuration.yaml. Sections of services we do not know are kept for templates."""

    cluster: ClusterSection
    images: ImagesSection = ImagesSection()
    hadoop: HadoopSection = HadoopSection()
    frameworklauncher: FrameworkLauncherSection = FrameworkLauncherSection()
    restserver: RestServerSection = RestServerSection()
    webportal: WebPortalSection = WebPortalSection()
    grafana: GrafanaSection = GrafanaSection()
    prometheus: PrometheusSection = PrometheusSection()
    pylon: PylonSection = PylonSection()

    def secret_values(self) -> list[str]:
        """Every secret this file holds, in clear (for scrubbing logs; never printed)."""
        info = self.cluster.docker_registry_info
        candidates = [self.restserver.jwt_secret, self.restserver.default_pai_admin_password,
                      info.docker_password if info is not None else None, self.hadoop.hadoop_maven_password]
        return [c.get_secret_value() for c in candidates if c is not None]


FILES = {
    "cluster-configuration.yaml": ClusterFile,
    "kubernetes-configuration.yaml": KubernetesFile,
    "k8s-role-definition.yaml": RoleDefinitionFile,
    "services-configuration.yaml": ServicesFile,
}
