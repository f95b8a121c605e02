"""The container runtime kubelet talks to, through CRI: openi-tasks' own containerd 2.x and runc
from the bundle, or the containerd Docker runs on (`kubernetes.containerd-source`).

openi-tasks' own is a second containerd beside Docker's, as k3s and RKE2 run theirs: its own
binaries, unit, configuration, socket, state and root. Docker, its containerd and what they run
(etcd, haproxy) are not touched, whatever version the host's packages are.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Cluster


@dataclass(frozen=True)
class Runtime:
    own: bool  # openi-tasks' containerd from the bundle, not the host's
    service: str
    config: str
    socket: str  # the CRI endpoint, unix://...
    ctr: str  # ctr, with the socket's address
    has_ctr: str  # a command that succeeds where that ctr is installed

    @property
    def address(self) -> str:
        return self.socket.removeprefix("unix://")

    @property
    def pods_run(self) -> str:
        """Succeeds when a task runs in the runtime's Kubernetes namespace."""
        return f"{self.has_ctr} && test -n \"$({self.ctr} -n k8s.io tasks ls -q 2>/dev/null)\""

    @property
    def kill_pods(self) -> str:
        """Kills every task left in the runtime's Kubernetes namespace (kubeadm reset warns and goes on
        when it cannot stop a pod)."""
        return (f"if {self.has_ctr}; then for task in $({self.ctr} -n k8s.io tasks ls -q 2>/dev/null); do "
                f"{self.ctr} -n k8s.io tasks kill -s SIGKILL \"$task\" 2>/dev/null || true; done; fi")


BIN_DIR = "/opt/openi/containerd/bin"
ROOT = "/var/lib/openi-containerd"  # images and snapshots: kept by a clean, as Docker's are
STATE = "/run/openi-containerd"
UNIT = "/etc/systemd/system/openi-containerd.service"
BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr", "runc")

OWN = Runtime(own=True, service="openi-containerd", config="/etc/openi/containerd/config.toml",
              socket=f"unix://{STATE}/containerd.sock", ctr=f"{BIN_DIR}/ctr --address {STATE}/containerd.sock",
              has_ctr=f"test -x {BIN_DIR}/ctr")
HOST = Runtime(own=False, service="containerd", config="/etc/containerd/config.toml",
               socket="unix:///run/containerd/containerd.sock", ctr="ctr", has_ctr="command -v ctr >/dev/null")


def runtime_of(cluster: Cluster) -> Runtime:
    return OWN if cluster.kubernetes.containerd_from_bundle else HOST


# The CRI endpoint a joined kubelet runs its pods on (kubeadm writes it into the kubelet's config).
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
KUBELET_RUNTIME = f"sed -n 's/^containerRuntimeEndpoint: *//p' {KUBELET_CONFIG} 2>/dev/null | head -1"


def runtime_at(socket: str, cluster: Cluster) -> Runtime:
    """The runtime a kubelet uses, from its endpoint (KUBELET_RUNTIME's output); the configured one
    when the node has none (not joined)."""
    socket = socket.strip().strip("'\"")
    return OWN if socket == OWN.socket else HOST if socket == HOST.socket else runtime_of(cluster)
