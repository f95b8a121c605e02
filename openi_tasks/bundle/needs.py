"""What a configuration needs from a bundle: binaries for the nodes and images for the cluster.

Computed from the configuration alone, except the tags kubeadm chooses itself (CoreDNS, pause),
which the caller reads from the kubeadm of the configured version.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Cluster

NODE_ARCH = "amd64"
NODE_BINARIES = ("kubeadm", "kubelet", "kubectl")
CNI_BINARIES = ("bridge", "host-local", "loopback", "portmap")
# kubelet's runtime (kubernetes.containerd-source: bundle): <bundle>/containerd/<name>
CONTAINERD_BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr", "runc")


@dataclass(frozen=True)
class ImageNeed:
    """An image the cluster pulls: `role` says what it is (and so how it is built), `ref` where the
    cluster pulls it from."""

    role: str
    ref: str

    @property
    def repository(self) -> str:
        return self.ref.rsplit(":", 1)[0] if ":" in self.ref.rsplit("/", 1)[-1] else self.ref

    @property
    def tag(self) -> str:
        last = self.ref.rsplit("/", 1)[-1]
        return last.split(":", 1)[1] if ":" in last else "latest"

    @property
    def name(self) -> str:
        return self.repository.rsplit("/", 1)[-1]


def image_needs(cluster: Cluster, coredns_tag: str, pause_tag: str) -> list[ImageNeed]:
    k = cluster.kubernetes
    registry = k.docker_registry.rstrip("/")
    needs = [ImageNeed(name, f"{registry}/{name}:{k.kubernetes_version}")
             for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")]
    needs += [ImageNeed("coredns", f"{registry}/coredns:{coredns_tag}"), ImageNeed("pause", f"{registry}/pause:{pause_tag}"),
              ImageNeed("etcd", cluster.etcd_image)]
    if cluster.endpoint.mode == "proxy":
        needs.append(ImageNeed("haproxy", k.haproxy_image))
    if k.network_plugin == "flannel":
        needs += [ImageNeed("flannel", k.flannel_image), ImageNeed("flannel-cni-plugin", k.flannel_cni_plugin_image)]
    if any(m.labels.get("dashboard") == "true" for m in cluster.machines):
        needs += [ImageNeed("dashboard", cluster.dashboard_image),
                  ImageNeed("dashboard-metrics-scraper", k.dashboard_metrics_scraper_image)]
    if any(m.gpu_count for m in cluster.machines):
        needs.append(ImageNeed("nvidia-device-plugin", k.nvidia_device_plugin_image))
    return needs
