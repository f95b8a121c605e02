"""A real multi-node cluster on one machine, for trying openi-tasks and for its tests.

Nodes are Docker containers, as kind runs Kubernetes nodes, but each has systemd, its own sshd
and (unless bare) its own dockerd with its own storage, so openi-tasks reaches them exactly as
it reaches a server. A registry and an apt mirror of the testbed's own serve what the nodes pull
and install, so nothing a test does leaves the testbed's network.

    testbed = Testbed(Path(".testbed"))
    config_dir = testbed.up(masters=3, workers=1, proxy=True, bare=0)
    testbed.node("master2").disconnect()        # fault helpers for tests
    testbed.down()

Everything it creates carries the label `openi.testbed=<id>`; `down` removes exactly that.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import os
import secrets
import shlex
import shutil
import socket
import ssl
import tarfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import docker
from docker.errors import APIError, NotFound

from ..bundle.build import BundleBuilder
from ..bundle.cache import cache_dir
from ..config import load_cluster
from ..config.files import KubernetesSettings
from ..config.generate import write_configuration
from ..errors import OpenIError
from ..localfiles import local_docker
from ..pki import CertificateAuthority, SshKey
from ..render import TEMPLATES
from ..report import Reporter
from ..state import write_private
from ..k8s.runtime import ROOT as OWN_CONTAINERD_ROOT
from . import s3_server
from .images import ImageBuilder, TestbedImages

LABEL = "openi.testbed"
SUDO_USER = "openi"
REGISTRY_PORT = 5000
MIRROR_PORT = 8080
HOST_CERTS = Path("/etc/docker/certs.d")
# kubelet in a node sets these kernel tunables when they differ, and cannot (a node's /proc/sys is
# read-only): the testbed sets them on this machine, as kubelet does on every host it runs on.
KUBELET_SYSCTLS = {"vm.overcommit_memory": 1, "vm.panic_on_oom": 0, "kernel.panic": 10, "kernel.panic_on_oops": 1,
                   "kernel.keys.root_maxkeys": 1000000, "kernel.keys.root_maxbytes": 25000000}
# Floors for what a dozen kubelets and their pods on one kernel need (kind asks for the same).
INOTIFY_FLOORS = {"fs.inotify.max_user_instances": 512, "fs.inotify.max_user_watches": 524288}
STAND_IN_GPUS = 2  # per GPU worker
HADOOP_VERSION = "3.5.0"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
EXPLICIT_CAPABILITIES = dict(
    cap_add=["ALL"],
    cap_drop=["SYS_RESOURCE"],
    security_opt=["seccomp=unconfined", "apparmor=unconfined"],
    device_cgroup_rules=["a *:* rwm"],
)


class TestbedError(OpenIError):
    """The testbed could not be brought up, found, or changed."""


@dataclass
class NodeInfo:
    hostname: str
    address: str
    role: str
    bare: bool
    container: str
    gpus: int = 0  # stand-in GPUs (nvidia-smi and nvidia-container-runtime stand-ins on the node)


@dataclass
class TestbedState:
    """What `up` made, kept in <workdir>/testbed.json for `status`, `down` and the fault helpers."""

    id: str
    network: str
    subnet: str
    registry: str
    mirror: str
    run_mode: str
    config_dir: str
    load_balancer: str = ""
    nodes: list[NodeInfo] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "TestbedState":
        data = json.loads(path.read_text())
        data["nodes"] = [NodeInfo(**n) for n in data["nodes"]]
        return cls(**data)


def testbed_id(workdir: Path) -> str:
    return hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:8]


class Testbed:
    """The testbed whose working directory is `workdir`."""

    def __init__(self, workdir: Path, client: docker.DockerClient | None = None, say: Callable[[str], None] = print):
        self.workdir = Path(workdir).resolve()
        self.id = testbed_id(self.workdir)
        self.say = say
        self.client = client or local_docker()
        self.prefix = f"openi-tb-{self.id}"

    @property
    def state_file(self) -> Path:
        return self.workdir / "testbed.json"

    @property
    def state(self) -> TestbedState:
        if not self.state_file.is_file():
            raise TestbedError(f"no testbed in {self.workdir} (start one with: inv testbed.up)")
        return TestbedState.load(self.state_file)

    # --- up ---------------------------------------------------------------------------------

    def up(self, masters: int = 3, workers: int = 1, proxy: bool = True, bare: int = 0,
           kubernetes_version: str | None = None, reporter: Reporter | None = None,
           load_balancer: bool = False, gpu_workers: int = 0) -> Path:
        """Bring the testbed up and return its configuration directory.

        `gpu_workers`: that many workers look like GPU nodes of a machine type with 2 GPUs, through
        STAND-INS of nvidia-smi and nvidia-container-runtime (templates/testbed/gpu-stand-in).

        `load_balancer`: the configuration's API endpoint is an address on the testbed's network
        that the testbed reserves but does not serve (`state.load_balancer`): the endpoint is
        `external`, and whoever uses the testbed runs the load balancer there.

        Its configuration points at a Kubernetes bundle built from the Go modules (built once and
        cached, see `inv k8s.bundle`) whose images are in the testbed's registry, so that
        `inv k8s.deploy -p <that directory>` needs nothing else.
        """
        if masters < 1 or workers < 0 or not 0 <= bare <= workers:
            raise TestbedError("need at least one master, and --bare at most the number of worker nodes")
        if not 0 <= gpu_workers <= workers - bare:
            raise TestbedError("--gpu-workers may be at most the number of workers that are not bare")
        if masters > 1 and not proxy and not load_balancer:
            raise TestbedError("several masters need the proxy node as their API endpoint (drop --no-proxy), "
                               "or an external load balancer (--load-balancer)")
        if proxy and load_balancer:
            raise TestbedError("the API endpoint is either the proxy node or an external load balancer, not both")
        if os.geteuid() != 0:
            raise TestbedError("the testbed needs root (it runs debootstrap and writes Docker's certs.d)")
        layout = _layout(masters, workers, proxy, bare)
        self._kernel_settings()
        if self.state_file.is_file():
            return self._resume(layout)
        self.workdir.mkdir(parents=True, exist_ok=True)
        images = ImageBuilder(self.client, self.say).build_all()
        run_mode = self._run_mode(images.base)
        network, subnet = self._network()
        hosts = list(subnet.hosts())
        registry_ip, mirror_ip = str(hosts[1]), str(hosts[2])
        registry = f"{registry_ip}:{REGISTRY_PORT}"
        secrets_dir = self.workdir / "secrets"
        ca = self._ca()
        ca.issue("registry", addresses=[registry_ip]).write(self.workdir / "registry-certs", "registry")
        self._trust_on_host(registry, ca.cert_pem)
        state = TestbedState(
            id=self.id,
            network=network.name,
            subnet=str(subnet),
            registry=registry,
            mirror=f"http://{mirror_ip}:{MIRROR_PORT}",
            load_balancer=str(hosts[3]) if load_balancer else "",
            run_mode=run_mode,
            config_dir=str(self.workdir / "cluster-configuration"),
            images=asdict(images),
        )
        self._save(state)  # from here on, `down` can clean up whatever exists
        operator_key = SshKey.generate("openi-testbed-operator")
        write_private(secrets_dir / "id_ed25519", operator_key.private)
        password = secrets.token_urlsafe(18)
        write_private(secrets_dir / "sudo-password", password + "\n")
        state.nodes = [
            NodeInfo(hostname, str(hosts[9 + i]), role, is_bare, f"{self.prefix}-{hostname}")
            for i, (hostname, role, is_bare) in enumerate(layout)
        ]
        for node in [n for n in state.nodes if n.role == "worker" and not n.bare][:gpu_workers]:
            node.gpus = STAND_IN_GPUS
        host_keys = {n.hostname: SshKey.generate(n.hostname) for n in state.nodes}
        (secrets_dir / "known_hosts").write_text(
            "".join(f"{n.address} {host_keys[n.hostname].public}\n" for n in state.nodes)
        )
        self._write_configuration(state, password, images.base, kubernetes_version, mirror_ip)
        self._save(state)
        cluster = load_cluster(Path(state.config_dir))
        builder = BundleBuilder(cluster, reporter or Reporter(), Path(cluster.kubernetes.binaries_dir),
                                base_image=images.base, client=self.client)
        manifest = builder.from_source()
        state.containers += [
            self._service("registry", images.registry, registry_ip, network.name,
                          volumes={f"{self.prefix}-registry": {"bind": "/var/lib/docker-registry", "mode": "rw"},
                                   str(self.workdir / "registry-certs"): {"bind": "/certs", "mode": "ro"}}),
            self._service("mirror", images.mirror, mirror_ip, network.name,
                          command=[f"--host-record={name},{address}" for name, address in
                                   [("registry", registry_ip), ("mirror", mirror_ip)]
                                   + [(n.hostname, n.address) for n in state.nodes]]),
        ]
        self._save(state)
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(
                lambda n: self._start_node(n, images, state, run_mode, operator_key, host_keys[n.hostname],
                                           password, ca.cert_pem),
                state.nodes,
            ))
            self._wait_http(f"https://{registry}/v2/", ca)
            builder.push(manifest)
            self._push_base(images, state)
            list(pool.map(self._wait_ready, state.nodes))
        self.say(f"testbed {self.id}: {len(state.nodes)} nodes on {state.subnet}, registry {registry}, "
                 f"Kubernetes {cluster.kubernetes.kubernetes_version} from {cluster.kubernetes.binaries_dir}")
        return Path(state.config_dir)

    def _resume(self, layout: list[tuple[str, str, bool]]) -> Path:
        state = self.state
        if [(n.hostname, n.role, n.bare) for n in state.nodes] != layout:
            raise TestbedError(
                f"a testbed with another layout is up in {self.workdir}; run inv testbed.down first"
            )
        for name in state.containers + [n.container for n in state.nodes]:
            container = self.client.containers.get(name)
            if container.status != "running":
                container.start()
        list(map(self._wait_ready, state.nodes))
        self.say(f"testbed {self.id} is already up")
        return Path(state.config_dir)

    def _ca(self) -> CertificateAuthority:
        """The testbed's CA (its registry's and S3 server's certificates): made on the first call."""
        return CertificateAuthority.load_or_create(self.workdir / "secrets" / "ca", f"openi testbed {self.id} CA")

    def _kernel_settings(self) -> None:
        """What kubelet needs of the kernel the nodes share, set here once (and said)."""
        changed = []
        for key, value in {**KUBELET_SYSCTLS, **INOTIFY_FLOORS}.items():
            path = Path("/proc/sys") / key.replace(".", "/")
            current = int(path.read_text().split()[0])
            if current == value or (key in INOTIFY_FLOORS and current >= value):
                continue
            path.write_text(f"{value}\n")
            changed.append(f"{key}={value} (was {current})")
        if changed:
            self.say(f"set on this machine for kubelet in the nodes: {', '.join(changed)}")

    def _save(self, state: TestbedState) -> None:
        self.state_file.write_text(json.dumps(asdict(state), indent=2) + "\n")

    def _labels(self, **extra: str) -> dict[str, str]:
        return {LABEL: self.id, f"{LABEL}.workdir": str(self.workdir), **extra}

    def _run_mode(self, base_image: str) -> str:
        """--privileged where the kernel allows it, else the explicit capability set (said once)."""
        try:
            self.client.containers.run(base_image, "true", privileged=True, remove=True, labels=self._labels())
            return "privileged"
        except APIError as exc:
            self.say(
                "note: --privileged containers are refused on this machine "
                f"({_first_line(exc.explanation or str(exc))}); nodes run with an explicit capability set instead"
            )
            for leftover in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.id}"}):
                leftover.remove(force=True)
            return "capabilities"

    def _network(self):
        taken = []
        for net in self.client.networks.list():
            for pool in (net.attrs.get("IPAM") or {}).get("Config") or []:
                if pool.get("Subnet"):
                    taken.append(ipaddress.ip_network(pool["Subnet"], strict=False))
        taken += _host_routes()
        for third in range(0, 256):
            subnet = ipaddress.ip_network(f"172.30.{third}.0/24")
            if not any(subnet.overlaps(t) for t in taken):
                ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(subnet))])
                # Internal: nothing on it reaches past this machine's bridge, as on a closed network.
                # (A bridge that forwards out lets a pod's connection to an address nobody serves
                # here be answered by whatever the machine's network does with it: conformance's
                # "a removed Service port stops forwarding" saw such a connection succeed.)
                network = self.client.networks.create(
                    self.prefix, driver="bridge", ipam=ipam, labels=self._labels(), internal=True
                )
                return network, subnet
        raise TestbedError("no free /24 in 172.30.0.0/16 for the testbed network")

    def _trust_on_host(self, registry: str, ca_pem: bytes) -> None:
        """The host's Docker trusts the registry's CA (for images.push from this machine)."""
        directory = HOST_CERTS / registry
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ca.crt").write_bytes(ca_pem)
        (directory / ".openi-testbed").write_text(self.id + "\n")

    def _service(self, name: str, image: str, address: str, network: str, volumes: dict | None = None,
                 command: list[str] | None = None) -> str:
        container_name = f"{self.prefix}-{name}"
        for volume in volumes or {}:
            if not volume.startswith("/"):  # a named volume: create it with our label so down finds it
                self.client.volumes.create(volume, labels=self._labels())
        container = self.client.containers.create(
            image,
            command=command,
            name=container_name,
            hostname=name,
            detach=True,
            labels=self._labels(**{f"{LABEL}.role": name}),
            network=network,
            networking_config={network: self.client.api.create_endpoint_config(ipv4_address=address, aliases=[name])},
            volumes=volumes or {},
            restart_policy={"Name": "unless-stopped"},
        )
        container.start()
        return container_name

    def _start_node(
        self,
        node: NodeInfo,
        images: TestbedImages,
        state: TestbedState,
        run_mode: str,
        operator_key: SshKey,
        host_key: SshKey,
        password: str,
        ca_pem: bytes,
    ) -> None:
        # Docker's and both containerds' storage on volumes (Docker's, and openi-tasks' own for
        # kubelet): overlay snapshots cannot live on the container's own overlay root.
        stores = {"docker": "/var/lib/docker", "containerd": "/var/lib/containerd",
                  "openi-containerd": OWN_CONTAINERD_ROOT}
        volumes = {f"{node.container}-{name}": {"bind": path, "mode": "rw"} for name, path in stores.items()}
        if Path("/lib/modules").is_dir():
            volumes["/lib/modules"] = {"bind": "/lib/modules", "mode": "ro"}
        for name in stores:
            self.client.volumes.create(f"{node.container}-{name}", labels=self._labels())
        security = {"privileged": True} if run_mode == "privileged" else EXPLICIT_CAPABILITIES
        container = self.client.containers.create(
            images.bare if node.bare else images.node,
            name=node.container,
            hostname=node.hostname,
            detach=True,
            labels=self._labels(**{f"{LABEL}.role": node.role, f"{LABEL}.node": node.hostname}),
            network=state.network,
            networking_config={
                state.network: self.client.api.create_endpoint_config(
                    ipv4_address=node.address, aliases=[node.hostname]
                )
            },
            volumes=volumes,
            tmpfs={"/run": "rw,mode=755", "/run/lock": "rw", "/tmp": "rw,mode=1777"},
            # /proc/sys is read-only in a container: set what Kubernetes needs at creation, as the
            # network namespace's own values, so deploy finds them already right.
            sysctls={"net.ipv4.ip_forward": "1"},
            # A cgroup namespace of its own: systemd and kubelet see the node's cgroup as the root,
            # as on a host (testbed-entrypoint makes the hierarchies writable).
            cgroupns="private",
            devices=["/dev/kmsg:/dev/kmsg:rwm"],  # kubelet's OOM watcher reads the kernel log
            **security,
        )
        registry_ca = f"etc/docker/certs.d/{state.registry}/ca.crt"
        container.put_archive(
            "/",
            _tar(
                {
                    "etc/ssh/ssh_host_ed25519_key": (host_key.private, 0o600, 0),
                    "etc/ssh/ssh_host_ed25519_key.pub": (host_key.public.encode() + b"\n", 0o644, 0),
                    "root/.ssh/": (None, 0o700, 0),
                    "root/.ssh/authorized_keys": (operator_key.public.encode() + b"\n", 0o600, 0),
                    "etc/openi-testbed/": (None, 0o700, 0),
                    "etc/openi-testbed/password": (f"{SUDO_USER}:{password}\n".encode(), 0o600, 0),
                    registry_ca: (ca_pem, 0o644, 0),
                    "usr/local/share/ca-certificates/openi-testbed.crt": (ca_pem, 0o644, 0),
                    # Only the testbed's mirror: the base image's Debian source is out of reach (the
                    # network is internal), and apt waited 87 s for it at every deploy.
                    "etc/apt/sources.list": (b"# The testbed's apt mirror only: sources.list.d/debian.sources\n",
                                             0o644, 0),
                    "etc/apt/sources.list.d/debian.sources": (_apt_source(state.mirror), 0o644, 0),
                    **(_gpu_stand_ins(node.gpus) if node.gpus else {}),
                }
            ),
        )
        container.start()

    def _wait_ready(self, node: NodeInfo, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not sshd_answers(node.address):
            if time.monotonic() > deadline:
                raise TestbedError(f"{node.hostname}: sshd did not answer within {timeout:.0f}s")
            time.sleep(0.3)
        if node.bare:
            return
        container = self.client.containers.get(node.container)
        while container.exec_run("docker info --format '{{.ServerVersion}}'").exit_code != 0:
            if time.monotonic() > deadline:
                raise TestbedError(f"{node.hostname}: dockerd did not answer within {timeout:.0f}s")
            time.sleep(0.5)

    def _wait_http(self, url: str, ca: CertificateAuthority, timeout: float = 60.0) -> None:
        context = ssl.create_default_context(cadata=ca.cert_pem.decode())
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(url, context=context, timeout=2).close()
                return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise TestbedError(f"registry at {url} did not answer: {exc}") from None
                time.sleep(0.3)

    def _push_base(self, images: TestbedImages, state: TestbedState) -> None:
        """The Debian base, for the platform's images (images.build) on the testbed."""
        target = f"{state.registry}/debian"
        self.client.images.get(images.base).tag(target, "bookworm")
        for line in self.client.images.push(target, tag="bookworm", stream=True, decode=True):
            if "error" in line:
                raise TestbedError(f"pushing {target}:bookworm to the testbed registry failed: {line['error']}")

    def _write_configuration(self, state: TestbedState, password: str, base_image: str,
                             kubernetes_version: str | None, dns: str) -> None:
        masters = [n for n in state.nodes if n.role == "master"]
        proxies = [n for n in state.nodes if n.role == "proxy"]
        machines = []
        for node in state.nodes:
            entry = {"hostname": node.hostname, "hostip": node.address,
                     "machine-type": "testbed-gpu" if node.gpus else "testbed", "k8s-role": node.role}
            if node.role == "master":
                entry.update({"etcdid": f"etcd{masters.index(node) + 1}", "node-exporter": "true"})
                if node is masters[0]:
                    entry.update({"pai-master": "true", "zkid": "1", "dashboard": "true"})
            if node.role == "worker":
                # Workers log in as a user who needs the password for sudo: that path is exercised too.
                entry.update({"username": SUDO_USER, "password": password, "pai-worker": "true", "node-exporter": "true"})
            machines.append(entry)
        kubernetes = kubernetes_settings(state.registry, base_image, kubernetes_version, dns)
        if proxies:
            kubernetes["load-balance-ip"] = proxies[0].address
        if state.load_balancer:
            kubernetes["load-balance-ip"] = state.load_balancer
        skus = {"testbed": {"mem": 2, "cpu": {"vcore": 1}, "os": "debian12"}}
        if any(n.gpus for n in state.nodes):
            # The stand-in nvidia-container-runtime is on the GPU workers already; NVIDIA's device
            # plugin needs GPUs: a STAND-IN built by the bundle advertises the stand-in GPUs.
            kubernetes["nvidia-toolkit-source"] = "preinstalled"
            kubernetes["nvidia-device-plugin-image"] = f"{state.registry}/nvidia-device-plugin-stand-in:testbed"
            skus["testbed-gpu"] = {**skus["testbed"], "gpu": {"type": "stand-in", "count": STAND_IN_GPUS}}
        directory = write_configuration(
            Path(state.config_dir),
            machines,
            clusterid=f"testbed-{self.id}",
            defaults={"username": "root", "sshport": 22, "ssh-key": str(self.workdir / "secrets" / "id_ed25519")},
            skus=skus,
            operator={
                "known-hosts": str(self.workdir / "secrets" / "known_hosts"),
                "host-key-policy": "strict",
                "state-dir": str(self.workdir / "state"),
                "connect-timeout": 10,  # a loaded 2-core machine can take seconds to answer
            },
            kubernetes=kubernetes,
            services={
                "restserver": {"jwt-secret": secrets.token_urlsafe(24), "default-pai-admin-password": secrets.token_urlsafe(12)},
                "cluster": {
                    "docker-registry-info": {
                        "docker-namespace": "openi",
                        "docker-registry-domain": state.registry,
                        "docker-username": "",
                        "docker-password": "",
                        "docker-tag": "testbed",
                        "secret-name": "openi-regsecret",
                    }
                },
                # The platform's images (images.build) start from the testbed's Debian base; the
                # services take prometheus, node-exporter and nginx from what images.build makes
                # of Debian's packages (no upstream image can be pulled here), and the rest from
                # the service stand-in.
                # Hadoop's runtime is assembled from its artifacts on Maven Central, which this
                # machine reaches (Apache's release archive it does not): HDFS and YARN really run.
                # YARN's disk check in bytes too (TESTBED_EVICTION): its default, 90% of the
                # volume, made the NodeManagers UNHEALTHY on CI's 252 GiB volume once less than
                # 25 GiB was free.
                "hadoop": {"hadoop-version": HADOOP_VERSION, "hadoop-maven-repository": MAVEN_CENTRAL,
                           "nodemanager-max-disk-utilization-percent": 100.0, "nodemanager-min-free-disk-mb": 2048,
                           "virtualClusters": {"vc1": {"description": "the testbed's virtual cluster",
                                                       "capacity": 50}}},
                "images": {"base-os-image": base_image,
                           **{name: f"{state.registry}/openi/{name}:testbed"
                              for name in ("prometheus", "node-exporter", "nginx")},
                           # OpenPAI's own services and Grafana cannot be built here: a STAND-IN.
                           **{name: f"{state.registry}/openi/service-stand-in:testbed"
                              for name in ("rest-server", "webportal", "frameworklauncher", "grafana")}},
            },
            header=f"# Written by `inv testbed.up` for the testbed in {self.workdir}.\n",
        )
        (directory / "cluster-configuration.yaml").chmod(0o600)

    def start_load_balancer(self, port: int = 6443) -> str:
        """Run a stand-in for a cloud load balancer at the reserved address: haproxy (from the bundle's
        image in the testbed's registry) forwarding TCP `port` to every master. It is not the
        endpoint phase's haproxy: external mode means openi-tasks does not run the load balancer."""
        state = self.state
        if not state.load_balancer:
            raise TestbedError("this testbed reserved no load balancer address (testbed.up --load-balancer)")
        config_dir = self.workdir / "load-balancer"
        config_dir.mkdir(exist_ok=True)
        servers = "".join(f"    server {n.hostname} {n.address}:{port} check inter 2s fall 2 rise 2\n"
                          for n in state.nodes if n.role == "master")
        (config_dir / "haproxy.cfg").write_text(
            "defaults\n    mode tcp\n    timeout connect 3s\n    timeout client 1h\n    timeout server 1h\n"
            f"frontend api\n    bind :{port}\n    default_backend masters\n"
            f"backend masters\n    option redispatch\n    retries 3\n{servers}")
        image = f"{state.registry}/haproxy:debian-bookworm"
        # Not among the bundle's images when no proxy node needs it: built (or found by its inputs) here.
        BundleBuilder(load_cluster(Path(state.config_dir)), Reporter(), self.workdir, base_image=state.images["base"],
                      client=self.client).haproxy_image(image)
        name = self._service("load-balancer", image, state.load_balancer, state.network,
                             volumes={str(config_dir): {"bind": "/usr/local/etc/haproxy", "mode": "ro"}})
        state.containers.append(name)
        self._save(state)
        return f"{state.load_balancer}:{port}"

    def start_s3(self, access_key: str, secret_key: str, bucket: str) -> tuple[str, Path]:
        """Run a real S3 server (SeaweedFS, see s3_server.py) on the testbed's network, at the
        address after the load balancer's, over TLS with a certificate of the testbed's CA, for
        one identity, with `bucket` made. Its https URL, and the CA's certificate to trust."""
        state = self.state
        address = str(list(ipaddress.ip_network(state.subnet).hosts())[4])
        directory = self.workdir / "s3"
        s3_server.write_files(directory, access_key, secret_key)
        self._ca().issue("s3", addresses=[address]).write(directory / "tls", "s3")
        ca_file = self.workdir / "secrets" / "ca" / "ca.crt"
        try:  # one from before, with other keys: replaced
            self.client.containers.get(f"{self.prefix}-s3").remove(force=True)
        except NotFound:
            pass
        name = self._service(
            "s3", state.images["base"], address, state.network, command=s3_server.command(address, bucket),
            volumes={str(s3_server.build()): {"bind": "/usr/local/bin/weed", "mode": "ro"},
                     str(directory / "s3.json"): {"bind": "/etc/seaweedfs/s3.json", "mode": "ro"},
                     str(directory / "tls"): {"bind": "/etc/seaweedfs/tls", "mode": "ro"}})
        state.containers = [*dict.fromkeys([*state.containers, name])]
        self._save(state)
        url = f"https://{address}:{s3_server.PORT}"
        s3_server.wait_answering(url, ca_file)
        return url, ca_file

    # --- down -------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Remove every container, volume, network and file this testbed made; say what."""
        removed = []
        selector = {"label": f"{LABEL}={self.id}"}
        for container in self.client.containers.list(all=True, filters=selector):
            container.remove(force=True, v=True)
            removed.append(f"container {container.name}")
        for volume in self.client.volumes.list(filters=selector):
            volume.remove(force=True)
            removed.append(f"volume {volume.name}")
        for network in self.client.networks.list(filters=selector):
            network.remove()
            removed.append(f"network {network.name}")
        if HOST_CERTS.is_dir():
            for marker in HOST_CERTS.glob("*/.openi-testbed"):
                if marker.read_text().strip() == self.id:
                    shutil.rmtree(marker.parent)
                    removed.append(f"directory {marker.parent}")
        for name in ("testbed.json", "secrets", "registry-certs", "cluster-configuration", "state", "s3"):
            path = self.workdir / name
            if path.is_dir():
                shutil.rmtree(path)
                removed.append(f"{path}")
            elif path.exists():
                path.unlink()
                removed.append(f"{path}")
        if self.workdir.is_dir() and not any(self.workdir.iterdir()):
            self.workdir.rmdir()
        return removed

    # --- status and faults ------------------------------------------------------------------

    def status(self) -> list[dict]:
        """Per node: address, role, container state, and whether sshd and dockerd answer."""
        rows = []
        for node in self.state.nodes:
            try:
                container = self.client.containers.get(node.container)
                state = container.status
            except NotFound:
                container, state = None, "missing"
            docker_state = "not installed" if node.bare else "no"
            if container is not None and state == "running":
                probe = container.exec_run("docker info --format '{{.ServerVersion}}'")
                if probe.exit_code == 0:
                    docker_state = "yes " + probe.output.decode().strip()
                elif node.bare and b"not found" not in probe.output:
                    docker_state = "no"
            rows.append(
                {
                    "node": node.hostname,
                    "address": node.address,
                    "role": node.role + (" (bare)" if node.bare else ""),
                    "container": state,
                    "sshd": "yes" if state == "running" and sshd_answers(node.address, timeout=2) else "no",
                    "dockerd": docker_state,
                }
            )
        return rows

    def node(self, hostname: str) -> "Node":
        state = self.state
        for info in state.nodes:
            if info.hostname == hostname:
                return Node(self, info, state.network)
        raise TestbedError(f"no node {hostname} in this testbed")


class Node:
    """Fault helpers for one testbed node."""

    def __init__(self, testbed: Testbed, info: NodeInfo, network: str) -> None:
        self.testbed = testbed
        self.info = info
        self.network = network

    @property
    def container(self):
        return self.testbed.client.containers.get(self.info.container)

    def exec(self, command: str) -> tuple[int, str]:
        result = self.container.exec_run(["sh", "-c", command])
        return result.exit_code, result.output.decode(errors="replace")

    def stop(self) -> None:
        self.container.stop(timeout=10)

    def start(self) -> None:
        self.container.start()
        self.testbed._wait_ready(self.info)

    def pause(self) -> None:
        self.container.pause()

    def unpause(self) -> None:
        self.container.unpause()

    def disconnect(self) -> None:
        """Cut the node off the network (its address stops answering)."""
        self.testbed.client.networks.get(self.network).disconnect(self.info.container)

    def connect(self) -> None:
        self.testbed.client.networks.get(self.network).connect(
            self.info.container, ipv4_address=self.info.address, aliases=[self.info.hostname]
        )

    def kill(self, process: str) -> int:
        """SIGKILL every process with this exact name; returns how many were found."""
        code, out = self.exec(f"pgrep -x {shlex.quote(process)} | wc -l; pkill -9 -x {shlex.quote(process)}")
        return int(out.split()[0]) if out.split() else 0

    def fill_disk(self, path: str = "/var/lib/openi", size_mb: int = 64) -> None:
        """Make `path` a small filesystem (its content kept) and fill it: writes there fail with ENOSPC.

        The filesystem is a tmpfs, so its content does not survive a restart of the node.
        """
        quoted = shlex.quote(path)
        code, out = self.exec(
            f"set -e; mkdir -p {quoted}; keep=$(mktemp -d); cp -a {quoted}/. \"$keep\"/; "
            f"mount -t tmpfs -o size={int(size_mb)}m openi-fill {quoted}; cp -a \"$keep\"/. {quoted}/; rm -rf \"$keep\"; "
            f"dd if=/dev/zero of={quoted}/.openi-fill bs=1M 2>/dev/null || true; df -k {quoted} | tail -1"
        )
        if code != 0:
            raise TestbedError(f"{self.info.hostname}: could not fill {path}: {out.strip()}")

    def free_disk(self, path: str = "/var/lib/openi") -> None:
        self.exec(f"rm -f {shlex.quote(path)}/.openi-fill")


def sshd_answers(address: str, port: int = 22, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout) as connection:
            connection.settimeout(timeout)
            return connection.recv(16).startswith(b"SSH-")
    except OSError:
        return False


# The nodes' disk is this machine's, shared by every node, the caches and Docker: kubelet's default
# thresholds are shares of it (15% free for images), which on a large volume with little free space
# (as CI's is: 38 of 252 GiB free) put every node under DiskPressure while it looks Ready. The
# testbed asks for room in bytes instead; every threshold kubelet has by default is named.
TESTBED_EVICTION = {"memory.available": "100Mi", "nodefs.available": "2Gi", "nodefs.inodesFree": "5%",
                    "imagefs.available": "2Gi", "imagefs.inodesFree": "5%"}


def kubernetes_settings(registry: str, base_image: str, version: str | None, dns: str) -> dict[str, object]:
    """The testbed's kubernetes-configuration: every image from its registry, built from source
    by the bundle (the dashboard as a stand-in: its source is not served here), binaries from the
    bundle's directory in the cache, the testbed's own DNS server as the cluster's upstream, and
    eviction thresholds in bytes (TESTBED_EVICTION)."""
    defaults = KubernetesSettings()
    version = version or defaults.kubernetes_version
    flannel_tag = defaults.flannel_image.rsplit(":", 1)[1]
    return {
        "kubernetes-version": version,
        "cluster-dns": dns,
        "docker-registry": registry,
        "haproxy-image": f"{registry}/haproxy:debian-bookworm",
        "flannel-image": f"{registry}/flannel:{flannel_tag}",
        "flannel-cni-plugin-image": f"{registry}/flannel-cni-plugin:v0.9.1",
        "dashboard-image": f"{registry}/dashboard-stand-in:{defaults.dashboard_version}",
        "dashboard-metrics-scraper-image": f"{registry}/metrics-scraper-stand-in:v1.0.8",
        "package-source": "binaries",
        "binaries-dir": str(cache_dir() / "testbed" / f"bundle-{version}"),
        "bundle-base-image": base_image,
        "docker-install-source": "os-package",
        "kubelet-eviction-hard": dict(TESTBED_EVICTION),
    }


def _layout(masters: int, workers: int, proxy: bool, bare: int) -> list[tuple[str, str, bool]]:
    nodes = [(f"master{i + 1}", "master", False) for i in range(masters)]
    if proxy:
        nodes.append(("proxy", "proxy", False))
    nodes += [(f"worker{i + 1}", "worker", i >= workers - bare) for i in range(workers)]
    return nodes


def _apt_source(mirror: str) -> bytes:
    return f"Types: deb\nURIs: {mirror}/\nSuites: ./\nTrusted: yes\n".encode()


def _gpu_stand_ins(count: int) -> dict[str, tuple[bytes | None, int, int]]:
    """The files that make a node look like a GPU node: STAND-INS, see templates/testbed/gpu-stand-in."""
    source = TEMPLATES / "testbed" / "gpu-stand-in"
    return {
        "usr/local/bin/nvidia-smi": ((source / "nvidia-smi").read_bytes(), 0o755, 0),
        "usr/bin/nvidia-container-runtime": ((source / "nvidia-container-runtime").read_bytes(), 0o755, 0),
        "etc/openi-testbed/gpu-count": (f"{count}\n".encode(), 0o644, 0),
    }


def _tar(files: dict[str, tuple[bytes | None, int, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, (content, mode, uid) in files.items():
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mode, info.uid, info.gid, info.mtime = mode, uid, uid, int(time.time())
            if content is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _host_routes() -> list[ipaddress.IPv4Network]:
    routes = []
    try:
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            fields = line.split()
            destination = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
            mask = bin(int(fields[7], 16)).count("1")
            if mask:
                routes.append(ipaddress.ip_network(f"{destination}/{mask}", strict=False))
    except OSError:
        pass
    return routes


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text

