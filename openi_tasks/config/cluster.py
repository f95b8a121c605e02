"""Build the `Cluster` from a configuration directory: the checks that need several files.

`load_cluster` is the one entry point. It either returns a valid cluster (with warnings) or
raises `ConfigError` listing every problem at once; it never contacts a host.

The checks here read the files' raw data (guarding every type), so that they run even when a
file has other errors: one misspelt key does not hide a duplicate address elsewhere.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping

from ..errors import ConfigError
from .files import NODE_CIDR_MASK, MachineDefaults, MachineEntry, MachineSku
from .loader import LoadedFiles, field_names, load_files
from .model import ROLES, Cluster, Endpoint, Machine
from .problems import Problem, did_you_mean
from .yamlfile import YamlDocument, YamlFloat

CLUSTER_FILE = "cluster-configuration.yaml"
KUBERNETES_FILE = "kubernetes-configuration.yaml"
ROLES_FILE = "k8s-role-definition.yaml"
SERVICES_FILE = "services-configuration.yaml"

_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
# A machine flag becomes a node label, readable through the API: these words say it is a secret.
_SECRET_WORD = re.compile(r"pass|secret|token|credential|private|api-?key", re.IGNORECASE)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_QUEUE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ENTRY_KEYS = field_names(MachineEntry)


def load_cluster(path: str | os.PathLike) -> Cluster:
    """Load and validate a configuration directory; raise `ConfigError` with every problem."""
    directory = Path(path).expanduser()
    files, problems = load_files(directory)
    checks = _CrossChecks(files)
    if files.docs.keys() >= {CLUSTER_FILE, KUBERNETES_FILE, SERVICES_FILE}:
        checks.run()
    problems += checks.problems
    if not files.complete or any(p.severity == "error" for p in problems):
        raise ConfigError(problems)
    return _build(directory, files, checks, tuple(sorted(problems, key=lambda p: (p.file, p.line or 0))))


def machine_from_entry(entry: MachineEntry, defaults: MachineDefaults, skus: Mapping[str, MachineSku],
                       labels: dict[str, str]) -> Machine:
    """A machine-list entry with what it inherits resolved."""
    ssh_key = entry.ssh_key or defaults.ssh_key
    return Machine(
        hostname=entry.hostname,
        address=str(entry.hostip),
        role=entry.k8s_role,
        sku_name=entry.machine_type,
        sku=skus.get(entry.machine_type),
        etcdid=entry.etcdid,
        user=entry.username or defaults.username,
        port=entry.sshport or defaults.sshport,
        password=entry.password or defaults.password,
        ssh_key=str(Path(ssh_key).expanduser()) if ssh_key else None,
        labels=MappingProxyType(labels),
    )


def entry_labels(entry: MachineEntry) -> dict[str, str]:
    """An entry's flags as label values (for entries already checked)."""
    return {key: _label_text(value) for key, value in (entry.model_extra or {}).items()}


def _build(directory: Path, files: LoadedFiles, checks: "_CrossChecks", warnings: tuple) -> Cluster:
    cluster_file = files.models[CLUSTER_FILE]
    defaults = cluster_file.default_machine_properties
    skus = cluster_file.machine_sku
    machines = tuple(
        machine_from_entry(entry, defaults, skus, checks.labels[index])
        for index, entry in enumerate(cluster_file.machine_list)
    )
    services = files.models[SERVICES_FILE]
    return Cluster(
        path=directory,
        id=services.cluster.clusterid,
        machines=machines,
        skus=MappingProxyType(dict(skus)),
        kubernetes=files.models[KUBERNETES_FILE].kubernetes,
        services=services,
        roles=files.models[ROLES_FILE],
        operator=cluster_file.operator,
        endpoint=checks.endpoint,
        defaults=defaults,
        warnings=warnings,
    )


@dataclass
class _Host:
    """What the cross checks need of one machine-list entry, read defensively from raw data."""

    index: int
    raw: dict
    hostname: str | None
    ip: str | None
    role: str | None
    etcdid: str | None


LINK_LOCAL = ip_network("169.254.0.0/16")
# Where the original's examples took Kubernetes images from; frozen since registry.k8s.io took over.
FROZEN_REGISTRIES = ("gcr.io/google_containers", "gcr.io/google-containers", "k8s.gcr.io")


class _CrossChecks:
    """Checks across entries and files; each adds problems instead of stopping at the first."""

    def __init__(self, files: LoadedFiles) -> None:
        self.files = files
        self.problems: list[Problem] = []
        self.labels: dict[int, dict[str, str]] = {}
        self.endpoint: Endpoint | None = None

    def run(self) -> None:
        self.cdoc: YamlDocument = self.files.docs[CLUSTER_FILE]
        self.kdoc: YamlDocument = self.files.docs[KUBERNETES_FILE]
        self.sdoc: YamlDocument = self.files.docs[SERVICES_FILE]
        self.kube = _mapping(self.files.raw(KUBERNETES_FILE).get("kubernetes"))
        self.hosts = list(self._hosts())
        self.check_machines()
        self.check_unique()
        self.check_roles()
        self.check_networks()
        self.check_kubernetes()
        self.check_services()
        self.endpoint = self.derive_endpoint()

    def error(self, doc: YamlDocument, path: tuple, message: str) -> None:
        self.problems.append(doc.problem(path, message))

    def warn(self, doc: YamlDocument, path: tuple, message: str) -> None:
        self.problems.append(doc.problem(path, message, severity="warning"))

    def _hosts(self) -> Iterator[_Host]:
        entries = self.files.raw(CLUSTER_FILE).get("machine-list")
        for index, raw in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(raw, dict):
                yield _Host(
                    index,
                    raw,
                    _text(raw.get("hostname")),
                    _address(raw.get("hostip")),
                    _text(raw.get("k8s-role")),
                    _text(raw.get("etcdid")),
                )

    # --- machines -------------------------------------------------------------------------

    def check_machines(self) -> None:
        raw = self.files.raw(CLUSTER_FILE)
        skus = _mapping(raw.get("machine-sku"))
        defaults = _mapping(raw.get("default-machine-properties"))
        for host in self.hosts:
            path = ("machine-list", host.index)
            machine_type = host.raw.get("machine-type")
            if isinstance(machine_type, str) and isinstance(raw.get("machine-sku"), dict) and machine_type not in skus:
                self.error(
                    self.cdoc,
                    path + ("machine-type",),
                    f"unknown machine type '{machine_type}'{did_you_mean(machine_type, skus)}; "
                    f"define it under machine-sku",
                )
            self.check_key_file(path + ("ssh-key",), host.raw.get("ssh-key"))
            self.labels[host.index] = self.machine_labels(host)
        self.check_key_file(("default-machine-properties", "ssh-key"), defaults.get("ssh-key"))

    def check_key_file(self, path: tuple, ssh_key: Any) -> None:
        if isinstance(ssh_key, str) and not Path(ssh_key).expanduser().is_file():
            self.error(self.cdoc, path, f"SSH key file {ssh_key} does not exist")

    def machine_labels(self, host: _Host) -> dict[str, str]:
        labels = {}
        for key, value in host.raw.items():
            if key in _ENTRY_KEYS or did_you_mean(key, _ENTRY_KEYS):
                continue  # a field, or a misspelt one that the loader reported
            path = ("machine-list", host.index, key)
            if not isinstance(key, str) or not _LABEL_KEY.match(key):
                self.error(self.cdoc, path, "is not a valid node label name (letters, digits, '-', '_', '.')")
                continue
            if _SECRET_WORD.search(key):
                self.error(self.cdoc, path, "looks like a secret, and a machine flag becomes a node label that anyone "
                                            "who can read the cluster's nodes sees: remove it (the SSH password is "
                                            "`password`, the key file `ssh-key`)")
                continue
            text = _label_text(value)
            if text is None or not _LABEL_VALUE.match(text):
                self.error(
                    self.cdoc,
                    path,
                    'a machine flag becomes a node label: its value must be a short word such as "true" or "1"',
                )
                continue
            labels[key] = text
        return labels

    def check_unique(self) -> None:
        for field in ("hostname", "hostip", "etcdid"):
            first: dict[str, int] = {}
            for host in self.hosts:
                value = {"hostname": (host.hostname or "").lower() or None, "hostip": host.ip, "etcdid": host.etcdid}[field]
                if value is None:
                    continue
                if value in first:
                    self.error(
                        self.cdoc,
                        ("machine-list", host.index, field),
                        f"duplicate {field} '{value}' (also machine-list[{first[value]}])",
                    )
                else:
                    first[value] = host.index

    def check_roles(self) -> None:
        for host in self.hosts:
            if host.role == "master" and not host.etcdid:
                self.error(self.cdoc, ("machine-list", host.index), "a master needs an etcdid (its etcd member name)")
            if host.role in ("worker", "proxy") and host.etcdid:
                self.error(
                    self.cdoc,
                    ("machine-list", host.index, "etcdid"),
                    f"only masters run etcd; this host's k8s-role is {host.role}",
                )
        masters = [h for h in self.hosts if h.role == "master"]
        if not masters:
            self.error(self.cdoc, ("machine-list",), "needs at least one host with k8s-role: master")
        elif len(masters) % 2 == 0:
            self.warn(
                self.cdoc,
                ("machine-list",),
                f"{len(masters)} masters: an even number of etcd members tolerates no more failures "
                f"than {len(masters) - 1} would",
            )
        proxies = [h for h in self.hosts if h.role == "proxy"]
        for host in proxies[1:]:
            self.error(
                self.cdoc,
                ("machine-list", host.index, "k8s-role"),
                f"only one proxy node is supported (the first is machine-list[{proxies[0].index}])",
            )

    def check_networks(self) -> None:
        networks = {}
        for key, default in (("pod-network-cidr", "10.244.0.0/16"), ("service-cluster-ip-range", "10.96.0.0/12")):
            try:
                networks[key] = ip_network(str(self.kube.get(key, default)), strict=True)
            except ValueError:
                pass  # reported by the loader
        pods, services = networks.get("pod-network-cidr"), networks.get("service-cluster-ip-range")
        if services and services.version == 4 and services.overlaps(LINK_LOCAL):
            self.warn(self.kdoc, ("kubernetes", "service-cluster-ip-range"),
                      f"{services} is link-local (the original's example used it); cloud metadata services "
                      "(169.254.169.254) and node-local DNS answer there, so Services may shadow them; "
                      "a private range such as 10.96.0.0/12 is safer")
        if pods and services and pods.version == services.version and pods.overlaps(services):
            self.error(self.kdoc, ("kubernetes", "pod-network-cidr"), f"overlaps service-cluster-ip-range {services}")
        if pods and pods.version == 4:
            self.check_pod_network_capacity(pods)
        for host in self.hosts:
            if host.ip is None:
                continue
            address = ip_address(host.ip)
            for key, network in networks.items():
                if address.version == network.version and address in network:
                    self.error(
                        self.cdoc,
                        ("machine-list", host.index, "hostip"),
                        f"lies inside kubernetes.{key} {network}; choose a range the hosts do not use",
                    )

    def check_pod_network_capacity(self, pods) -> None:
        """Each node gets a /node-cidr-mask-size of pod-network-cidr: the cluster must fit in it."""
        mask = self.kube.get("node-cidr-mask-size", NODE_CIDR_MASK)
        if not isinstance(mask, int) or isinstance(mask, bool) or not 8 <= mask <= 30:
            return  # reported by the loader
        nodes = len(self.hosts)
        if mask < pods.prefixlen:
            self.error(self.kdoc, ("kubernetes", "node-cidr-mask-size"),
                       f"/{mask} per node is wider than pod-network-cidr {pods} itself")
            return
        capacity = 2 ** (mask - pods.prefixlen)
        if nodes > capacity:
            self.error(self.kdoc, ("kubernetes", "pod-network-cidr"),
                       f"{nodes} nodes need {nodes} per-node subnets of /{mask}, and {pods} holds {capacity}: "
                       f"widen pod-network-cidr to a /{mask - (nodes - 1).bit_length()} or wider, or make "
                       f"node-cidr-mask-size larger (fewer pods per node)")
        elif nodes > capacity * 0.8:
            self.warn(self.kdoc, ("kubernetes", "pod-network-cidr"),
                      f"{nodes} nodes use {nodes} of the {capacity} per-node subnets (/{mask}) of {pods}: "
                      f"little room to add nodes")
        if mask > 24 and 2 ** (32 - mask) - 2 < 110:
            self.warn(self.kdoc, ("kubernetes", "node-cidr-mask-size"),
                      f"/{mask} gives each node {2 ** (32 - mask) - 2} pod addresses, fewer than the kubelet's "
                      f"default of 110 pods")

    def check_kubernetes(self) -> None:
        model = self.files.models.get(KUBERNETES_FILE)  # absent when invalid: the loader says why
        too_old = model.kubernetes.etcd_too_old() if model is not None else None
        if too_old:
            self.warn(self.kdoc, ("kubernetes", "etcd-version"), too_old + "; k8s.deploy, add and repair refuse it")
        registry = str(self.kube.get("docker-registry", "")).rstrip("/")
        if registry in FROZEN_REGISTRIES:
            self.warn(self.kdoc, ("kubernetes", "docker-registry"),
                      f"{registry} is frozen (no Kubernetes image newer than early 2023 is there); "
                      "use registry.k8s.io, or a mirror of it")
        if self.kube.get("package-source") == "binaries" and not self.kube.get("binaries-dir"):
            self.error(self.kdoc, ("kubernetes", "package-source"), "is 'binaries' but kubernetes.binaries-dir is not set")
        if self.kube.get("containerd-source") == "bundle" and not self.kube.get("binaries-dir"):
            self.error(self.kdoc, ("kubernetes", "containerd-source"),
                       "is 'bundle' but kubernetes.binaries-dir (the bundle with containerd and runc) is not set")
        ports = {
            name: self.kube.get(name, default)
            for name, default in (("api-port", 6443), ("etcd-client-port", 2379), ("etcd-peer-port", 2380))
        }
        for port, count in Counter(p for p in ports.values() if isinstance(p, int)).items():
            if count > 1:
                names = [n for n, p in ports.items() if p == port]
                self.error(self.kdoc, ("kubernetes", names[-1]), f"uses port {port}, as does {names[0]}")

    def check_services(self) -> None:
        vcs = _mapping(_mapping(self.files.raw(SERVICES_FILE).get("hadoop")).get("virtualClusters"))
        total = 0.0
        for name, vc in vcs.items():
            path = ("hadoop", "virtualClusters", name)
            if name == "root":
                self.error(self.sdoc, path, "'root' is reserved: it is YARN's parent of every queue")
            elif not isinstance(name, str) or not _QUEUE.match(name):
                self.error(self.sdoc, path, "is not a valid queue name (letters, digits, '-', '_')")
            capacity = _mapping(vc).get("capacity")
            if isinstance(capacity, (int, float)) and not isinstance(capacity, bool) and capacity > 0:
                total += capacity
        if total > 100:
            self.warn(
                self.sdoc,
                ("hadoop", "virtualClusters"),
                f"capacities add up to {total:g}%; each will be scaled down proportionally",
            )
        hadoop = _mapping(self.files.raw(SERVICES_FILE).get("hadoop"))
        given = [key for key in ("hadoop-maven-username", "hadoop-maven-password") if hadoop.get(key) is not None]
        if len(given) == 1:
            other = ({"hadoop-maven-username", "hadoop-maven-password"} - set(given)).pop()
            self.error(self.sdoc, ("hadoop", given[0]), f"is set but hadoop.{other} is not: give both, or neither")
        if given and not hadoop.get("hadoop-maven-repository"):
            self.error(self.sdoc, ("hadoop", given[0]), "is set but hadoop.hadoop-maven-repository is not")
        custom = hadoop.get("custom-hadoop-binary-path")
        if isinstance(custom, str) and custom not in ("None", "none", "") and not custom.startswith(("/", "~")):
            self.warn(self.sdoc, ("hadoop", "custom-hadoop-binary-path"),
                      f"is relative: read from {Path(self.sdoc.path).parent.resolve() / custom} (the original read it from "
                      "the directory paictl ran in)")
        seen: dict[str, int] = {}
        for host in self.hosts:
            zkid = self.labels.get(host.index, {}).get("zkid")
            if zkid is None:
                continue
            path = ("machine-list", host.index, "zkid")
            if not zkid.isdigit() or not 1 <= int(zkid) <= 255:
                self.error(self.cdoc, path, "must be a number from 1 to 255")
            elif zkid in seen:
                self.error(self.cdoc, path, f"duplicate zkid {zkid} (also machine-list[{seen[zkid]}])")
            else:
                seen[zkid] = host.index
        # The platform's master services (name node, resource manager, rest-server, ...) are single
        # instances, not highly available: one host runs them all.
        masters = [h.index for h in self.hosts
                   if any(self.labels.get(h.index, {}).get(flag) == "true" for flag in ("pai-master", "openi-master"))]
        for index in masters[1:]:
            flag = "pai-master" if "pai-master" in self.labels.get(index, {}) else "openi-master"
            self.error(self.cdoc, ("machine-list", index, flag),
                       f"only one host may be the platform master (machine-list[{masters[0]}] is); "
                       "its services run once, without failover")

    # --- the API endpoint -----------------------------------------------------------------

    def derive_endpoint(self) -> Endpoint | None:
        """external / proxy / single, from the machine list and load-balance-ip."""
        port = self.kube.get("api-port", 6443)
        lb_raw = self.kube.get("load-balance-ip")
        lb = _address(lb_raw)
        if lb_raw is not None and lb is None:
            return None  # not an address: reported by the loader
        path = ("kubernetes", "load-balance-ip")
        masters = [h for h in self.hosts if h.role == "master"]
        proxies = [h for h in self.hosts if h.role == "proxy"]
        if not masters or len(proxies) > 1 or any(h.role not in ROLES for h in self.hosts):
            return None  # reported by check_roles or the loader
        if proxies:
            proxy = proxies[0]
            if lb and proxy.ip and lb != proxy.ip:
                self.error(
                    self.kdoc,
                    path,
                    f"is {lb}, but with a proxy node the API endpoint is the proxy's address "
                    f"{proxy.ip} ({proxy.hostname}); set it to that or leave it out",
                )
                return None
            return Endpoint("proxy", proxy.ip or "", port, proxy.hostname)
        master_ips = {h.ip: h.hostname for h in masters if h.ip}
        if len(masters) == 1:
            if lb is None or lb in master_ips:
                return Endpoint("single", masters[0].ip or "", port, masters[0].hostname)
            return Endpoint("external", lb, port)
        if lb is None:
            self.error(
                self.kdoc,
                ("kubernetes",),
                f"{len(masters)} masters need an API endpoint: set load-balance-ip to an external "
                f"load balancer's address, or add a host with k8s-role: proxy",
            )
            return None
        if lb in master_ips:
            self.error(
                self.kdoc,
                path,
                f"points at one master ({master_ips[lb]}); with {len(masters)} masters it must be a load "
                f"balancer in front of all of them, or add a proxy node",
            )
            return None
        if lb in {h.ip for h in self.hosts}:
            self.error(self.kdoc, path, "is the address of a worker; use a load balancer or a proxy node")
            return None
        return Endpoint("external", lb, port)


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _address(value: Any) -> str | None:
    try:
        return str(ip_address(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _label_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, YamlFloat):
        return value.text
    if isinstance(value, (int, str)):
        return str(value)
    return None
