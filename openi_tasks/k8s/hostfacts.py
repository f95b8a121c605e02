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
echo "free_bytes=$(df -PB1 "$disk" 2>/dev/null | awk 'NR==2 {print $4}')"
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
"""


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
    raw: dict[str, str] = field(default_factory=dict, repr=False)


def gather(host: Host, disk_path: str = "/var/lib") -> HostFacts:
    script = _SCRIPT.replace("__SYSCTLS__", " ".join(SYSCTLS)).replace("__DISK__", shlex.quote(disk_path))
    result = host.sh(script)
    if result.exited != 0:
        raise CommandFailed(host.name, "gather facts", result)
    raw = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
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
        raw=raw,
    )


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


def problems(cluster: Cluster, machine: Machine, facts: HostFacts) -> list[str]:
    """Why this host cannot take part in a deploy; empty when it can."""
    found = []
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
    if facts.listening is None:
        found.append("cannot list listening ports (`ss` from iproute2 is missing)")
    else:
        for port, use in sorted(required_ports(cluster, machine).items()):
            if port in facts.listening and not _ours(cluster, machine, facts, use):
                found.append(f"port {port} (needed for {use}) is already in use by another program")
    return found


def _ours(cluster: Cluster, machine: Machine, facts: HostFacts, use: str) -> bool:
    """Whether a taken port is held by what a previous deploy started (so a re-run is fine)."""
    if use == "etcd":
        return f"etcd-{machine.etcdid}" in facts.managed
    if use.startswith("haproxy"):
        return "openi-haproxy" in facts.managed
    if use == "kubelet":
        return facts.kubelet_joined
    return facts.apiserver
