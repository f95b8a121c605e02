"""What deploy needs to know about a host before it changes anything, in one SSH round trip.

`gather` runs one script on the host and parses its `key=value` lines into `HostFacts`;
`problems` says why a host cannot take part (unsupported OS, port taken by something else,
too little disk...). Things deploy can fix itself (swap on, /etc/hosts, sysctls, Docker missing)
are not problems: the prepare and docker phases make them so.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from ..config import Cluster, Machine
from ..ssh import CommandFailed, Host
from . import gpufacts
from .runtime import KUBELET_RUNTIME, runtime_of

SUPPORTED_OS = {("ubuntu", "22.04"), ("ubuntu", "24.04"), ("debian", "12")}
SUPPORTED_ARCH = {"x86_64", "aarch64"}
MIN_FREE_BYTES = 2 * 1024**3
SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
}

_SCRIPT = r"""
. /etc/os-release 2>/dev/null
echo "os_id=${ID:-unknown}"; echo "os_version=${VERSION_ID:-unknown}"; echo "os_codename=${VERSION_CODENAME:-}"
echo "arch=$(uname -m)"
echo "hostname=$(hostname)"
echo "resolves=$(getent ahostsv4 "$(hostname)" 2>/dev/null | awk '{print $1}' | sort -u | tr '\n' ' ')"
echo "swap=$(tail -n +2 /proc/swaps | wc -l)"
echo "overlay=$(grep -qw overlay /proc/filesystems && echo yes || (modprobe -n overlay 2>/dev/null && echo loadable) || echo no)"
echo "br_netfilter=$(test -d /proc/sys/net/bridge && echo yes || (modprobe -n br_netfilter 2>/dev/null && echo loadable) || echo no)"
for key in __SYSCTLS__; do echo "sysctl.$key=$(sysctl -n "$key" 2>/dev/null)"; done
disk=__DISK__; while [ ! -e "$disk" ]; do disk=$(dirname "$disk"); done
df -PB1 "$disk" 2>/dev/null | awk 'NR==2 {print "free_bytes=" $4; print "disk_bytes=" $2}'
if command -v ss >/dev/null; then
  echo "listening=$(ss -Htln | awk '{print $4}' | sed 's/.*://' | sort -un | tr '\n' ' ')"
else
  echo "listening=unknown"
fi
echo "systemd=$(test -d /run/systemd/system && echo yes || echo no)"
echo "docker=$(command -v docker >/dev/null 2>&1 && echo yes || echo no)"
echo "docker_active=$(systemctl is-active docker 2>/dev/null || true)"
echo "managed=$(docker ps -a --filter label=openi.managed=true --format '{{.Names}}' 2>/dev/null | tr '\n' ' ')"
echo "kubelet_joined=$(test -f /etc/kubernetes/kubelet.conf && echo yes || echo no)"
echo "apiserver=$(test -f /etc/kubernetes/manifests/kube-apiserver.yaml && echo yes || echo no)"
echo "kubeadm=$(kubeadm version -o short 2>/dev/null || echo none)"
# An init or join that started and never finished (interrupted): see phases/control_plane.py.
echo "kubeadm_unfinished=$(test -e /etc/openi/kubeadm/started -a ! -e /etc/openi/kubeadm/done && echo yes || echo no)"
echo "kubelet=$(kubelet --version 2>/dev/null | awk '{print $2}')"
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  echo "image.$c=$(sed -n 's/^ *image: *//p' /etc/kubernetes/manifests/$c.yaml 2>/dev/null | head -1)"
done
echo "containerd=$(containerd --version 2>/dev/null | awk '{print $3}')"
echo "kubelet_runtime=$(""" + KUBELET_RUNTIME + """)"
echo "cgroup=$(test "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs && echo 2 || echo 1)"
# Whether this host may lower a process's OOM score (CAP_SYS_RESOURCE in the bounding set, bit 24):
# a host that is itself a container may not, and containerd must then not ask runc to.
bounding=$(awk '/^CapBnd/ {print $2}' /proc/self/status 2>/dev/null)
echo "cap_sys_resource=$([ $(( 0x${bounding:-1000000} >> 24 & 1 )) = 1 ] && echo yes || echo no)"
# Whether kube-proxy can size conntrack (a host in a network namespace of its own, or with a
# read-only /proc/sys, cannot; kube-proxy must then leave those settings alone).
echo "resolvers=$(awk '$1 == "nameserver" {print $2}' /etc/resolv.conf 2>/dev/null | tr '\n' ' ')"
echo "resolved_conf=$(test -s /run/systemd/resolve/resolv.conf && echo yes || echo no)"
echo "conntrack_writable=$(test -w /proc/sys/net/netfilter/nf_conntrack_max && echo yes || echo no)"
""" + gpufacts.SCRIPT


@dataclass(frozen=True)
class HostFacts:
    os_id: str
    os_version: str
    os_codename: str
    arch: str
    hostname: str
    resolves: tuple[str, ...]
    swap: bool
    overlay: str
    br_netfilter: str
    sysctls: dict[str, str]
    free_bytes: int | None
    listening: tuple[int, ...] | None
    systemd: bool
    docker: bool
    docker_active: bool
    managed: tuple[str, ...]
    kubelet_joined: bool
    apiserver: bool
    kubeadm: str
    kubeadm_unfinished: bool = False
    kubelet: str = ""
    containerd: str = ""
    kubelet_runtime: str = ""  # a joined kubelet's CRI endpoint
    cgroup: int = 2
    cap_sys_resource: bool = True
    conntrack_writable: bool = True
    resolvers: tuple[str, ...] = ()
    resolved_conf: bool = False
    disk_bytes: int | None = None  # the size of the filesystem free_bytes is of
    gpus: gpufacts.GpuFacts = gpufacts.GpuFacts("pci")
    control_plane: dict[str, str] = field(default_factory=dict)  # static pod -> image, on a master
    raw: dict[str, str] = field(default_factory=dict, repr=False)


def gather(host: Host, disk_path: str = "/var/lib") -> HostFacts:
    script = _SCRIPT.replace("__SYSCTLS__", " ".join(SYSCTLS)).replace("__DISK__", shlex.quote(disk_path))
    result = host.sh(script)
    if result.exited != 0:
        raise CommandFailed(host.name, "gather facts", result)
    raw = key_values(result.stdout)
    listening = raw.get("listening", "unknown")
    return HostFacts(
        os_id=raw.get("os_id", "unknown"),
        os_version=raw.get("os_version", "unknown"),
        os_codename=raw.get("os_codename", ""),
        arch=raw.get("arch", "unknown"),
        hostname=raw.get("hostname", ""),
        resolves=tuple(raw.get("resolves", "").split()),
        swap=raw.get("swap", "0").strip() not in ("", "0"),
        overlay=raw.get("overlay", "no"),
        br_netfilter=raw.get("br_netfilter", "no"),
        sysctls={k[len("sysctl."):]: v for k, v in raw.items() if k.startswith("sysctl.")},
        free_bytes=int(raw["free_bytes"]) if raw.get("free_bytes", "").isdigit() else None,
        listening=None if listening == "unknown" else tuple(int(p) for p in listening.split() if p.isdigit()),
        systemd=raw.get("systemd") == "yes",
        docker=raw.get("docker") == "yes",
        docker_active=raw.get("docker_active", "").strip() == "active",
        managed=tuple(raw.get("managed", "").split()),
        kubelet_joined=raw.get("kubelet_joined") == "yes",
        apiserver=raw.get("apiserver") == "yes",
        kubeadm=raw.get("kubeadm", "none").strip(),
        kubeadm_unfinished=raw.get("kubeadm_unfinished", "").strip() == "yes",
        kubelet=raw.get("kubelet", "").strip(),
        containerd=raw.get("containerd", "").strip(),
        kubelet_runtime=raw.get("kubelet_runtime", "").strip().strip("'\""),
        cgroup=1 if raw.get("cgroup", "2").strip() == "1" else 2,
        cap_sys_resource=raw.get("cap_sys_resource", "yes").strip() != "no",
        conntrack_writable=raw.get("conntrack_writable", "yes").strip() != "no",
        resolvers=tuple(raw.get("resolvers", "").split()),
        resolved_conf=raw.get("resolved_conf", "").strip() == "yes",
        disk_bytes=int(raw["disk_bytes"]) if raw.get("disk_bytes", "").isdigit() else None,
        gpus=gpufacts.parse(raw),
        control_plane={k[len("image."):]: v.strip() for k, v in raw.items() if k.startswith("image.") and v.strip()},
        raw=raw,
    )


def key_values(output: str) -> dict[str, str]:
    """The `key=value` lines a facts script prints (gpufacts.SCRIPT's too)."""
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def required_ports(cluster: Cluster, machine: Machine) -> dict[int, str]:
    """Ports this host must have free (or held by what deploy itself put there), with their use."""
    k = cluster.kubernetes
    ports = {10250: "kubelet"}
    if machine.is_master:
        ports.update({k.etcd_client_port: "etcd", k.etcd_peer_port: "etcd", k.api_port: "kube-apiserver",
                      10257: "kube-controller-manager", 10259: "kube-scheduler"})
    if machine.role == "proxy" and cluster.endpoint.mode == "proxy":
        ports[k.api_port] = "haproxy (API endpoint)"
    return ports


# kubelet's own hard eviction thresholds for the disk, when kubernetes.kubelet-eviction-hard sets none
KUBELET_DISK_EVICTION = {"nodefs.available": "10%", "imagefs.available": "15%"}


def disk_pressure(cluster: Cluster, facts: HostFacts) -> list[str]:
    """The host's disk (of /var/lib, where the kubelet and the images live) below a threshold of
    kubelet's hard eviction, with MIN_FREE_BYTES to spare for the images the node is about to pull:
    the node would be under DiskPressure, its pods evicted or never started, while it looks Ready.
    A percentage of a large disk with little free space (a shared or thin volume) is where this bites."""
    if facts.free_bytes is None or not facts.disk_bytes:
        return []
    from kubernetes.utils import parse_quantity  # here: the kubernetes client is slow to import

    configured = cluster.kubernetes.kubelet_eviction_hard
    thresholds = configured if configured is not None else KUBELET_DISK_EVICTION
    found = []
    for signal in ("nodefs.available", "imagefs.available"):
        text = thresholds.get(signal)
        if not text:
            continue
        if text.endswith("%"):
            needed = facts.disk_bytes * float(text[:-1]) / 100
        else:
            needed = float(parse_quantity(text))
        if facts.free_bytes - MIN_FREE_BYTES < needed:
            source = ("kubernetes.kubelet-eviction-hard" if configured is not None else
                      "kubelet's default; kubernetes.kubelet-eviction-hard sets another")
            found.append(f"{facts.free_bytes / 2**30:.1f} GiB free of {facts.disk_bytes / 2**30:.1f} GiB "
                         f"({100 * facts.free_bytes / facts.disk_bytes:.0f}%): kubelet evicts pods below {signal}<{text} "
                         f"({source}), and the node's images need about {MIN_FREE_BYTES / 2**30:.0f} GiB more: "
                         f"it would be under DiskPressure. Free disk space or set the threshold")
            break
    return found


def runtime_move_from(cluster: Cluster, facts: HostFacts) -> str:
    """The CRI endpoint a joined kubelet runs its pods on when it is not the configured runtime's
    (k8s.upgrade moves them); "" when it is, or when the host has no joined kubelet."""
    if facts.kubelet_joined and facts.kubelet_runtime and facts.kubelet_runtime != runtime_of(cluster).socket:
        return facts.kubelet_runtime
    return ""


def problems(cluster: Cluster, machine: Machine, facts: HostFacts, upgrading: bool = False,
             rejoining: bool = False) -> list[str]:
    """Why this host cannot take part in a deploy (or, `upgrading`, in an upgrade; `rejoining`, in a
    repair, which resets the node first); empty when it can."""
    found = []
    running = version_change(cluster, facts)
    if running and not upgrading:
        found.append(f"it runs Kubernetes {running} but the configuration says {cluster.kubernetes.kubernetes_version}: "
                     f"a version change is an upgrade (inv k8s.upgrade --to {cluster.kubernetes.kubernetes_version})")
    if runtime_move_from(cluster, facts) and not (rejoining or upgrading):
        found.append(f"its kubelet runs the pods on {facts.kubelet_runtime} but the configuration's runtime is "
                     f"{runtime_of(cluster).socket} (kubernetes.containerd-source): a deploy does not move a joined "
                     f"node's pods; "
                     f"inv k8s.upgrade --to {cluster.kubernetes.kubernetes_version} moves them node by node, drained "
                     f"(docs/operations.md, \"Moving to containerd 2\")")
    if (facts.os_id, facts.os_version) not in SUPPORTED_OS:
        found.append(
            f"unsupported OS {facts.os_id} {facts.os_version} (supported: Ubuntu 22.04, Ubuntu 24.04, Debian 12)"
        )
    if facts.arch not in SUPPORTED_ARCH:
        found.append(f"unsupported architecture {facts.arch} (supported: x86_64, aarch64)")
    if facts.hostname.lower() != machine.hostname.lower():
        found.append(f"the host calls itself '{facts.hostname}' but the configuration says '{machine.hostname}'")
    if not facts.systemd:
        found.append("systemd is not running (openi-tasks manages Docker, containerd and kubelet with systemd)")
    if facts.overlay == "no":
        found.append("the kernel has no overlay filesystem (module overlay)")
    if facts.br_netfilter == "no":
        found.append("the kernel has no bridge netfilter (module br_netfilter)")
    if facts.free_bytes is None:
        found.append("cannot read free disk space")
    elif facts.free_bytes < MIN_FREE_BYTES:
        found.append(f"only {facts.free_bytes / 2**30:.1f} GiB free (at least {MIN_FREE_BYTES / 2**30:.0f} GiB needed)")
    else:
        found += disk_pressure(cluster, facts)
    if cluster.kubernetes.cluster_dns is None and facts.resolvers and all(_loopback(r) for r in facts.resolvers) \
            and not (facts.resolved_conf and "127.0.0.53" in facts.resolvers):
        found.append(f"/etc/resolv.conf names only resolvers on loopback ({', '.join(facts.resolvers)}): cluster DNS "
                     f"would forward to itself. Set kubernetes.cluster-dns to your upstream DNS server")
    gpus = gpufacts.mismatch(machine, facts.gpus)
    if gpus and cluster.kubernetes.gpu_mismatch == "error":
        found.append(f"{gpus} (set kubernetes.gpu-mismatch: warn to deploy anyway)")
    if facts.listening is None:
        found.append("cannot list listening ports (`ss` from iproute2 is missing)")
    else:
        for port, use in sorted(required_ports(cluster, machine).items()):
            if port in facts.listening and not _ours(cluster, machine, facts, use):
                found.append(f"port {port} (needed for {use}) is already in use by another program")
    return found


def version_change(cluster: Cluster, facts: HostFacts) -> str:
    """The version this host's kubelet or control plane runs when it is not the configured one
    (a deploy would replace them without kubeadm's upgrade), else ""."""
    wanted = cluster.kubernetes.kubernetes_version
    running = [facts.kubelet] if facts.kubelet_joined else []
    running += [image.rsplit(":", 1)[-1] for image in facts.control_plane.values()]
    return next((version for version in running if version and version != wanted), "")


def _loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def _ours(cluster: Cluster, machine: Machine, facts: HostFacts, use: str) -> bool:
    """Whether a taken port is held by what a previous deploy started (so a re-run is fine)."""
    if use == "etcd":
        return f"etcd-{machine.etcdid}" in facts.managed
    if use.startswith("haproxy"):
        return "openi-haproxy" in facts.managed
    if use == "kubelet":
        return facts.kubelet_joined
    return facts.apiserver
