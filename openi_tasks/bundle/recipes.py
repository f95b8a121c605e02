"""How each artifact of a bundle is built from source: which Go modules at which versions.

Versions come from the configuration (Kubernetes, etcd, the add-ons' image tags) and, for what
kubeadm itself chooses (CoreDNS, pause), from the built kubeadm. A tag that names no source
that can be built here is refused with the reason, before anything is built.
"""

from __future__ import annotations

import re

from ..errors import OpenIError
from .gobuild import GoBuild

KUBERNETES = ("kubeadm", "kubelet", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
              "kube-proxy")
CONTROL_PLANE_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
CNI_PLUGINS = {"bridge": "plugins/main/bridge", "host-local": "plugins/ipam/host-local",
               "loopback": "plugins/main/loopback", "portmap": "plugins/meta/portmap"}
# The flannel CNI plugin: its own repository (flannel-io/cni-plugin) is not served by the module
# proxy, but the same plugin lived in containernetworking/plugins up to v0.9.1.
FLANNEL_CNI_LAST = (0, 9, 1)
# CoreDNS with only the plugins kubeadm's Corefile uses (the full set pulls in every cloud SDK).
COREDNS_PLUGINS = ("errors", "health", "ready", "kubernetes", "metrics", "forward", "cache", "loop", "reload",
                   "loadbalance", "log")


class NotBuildable(OpenIError):
    """An artifact the configuration names cannot be built from source here; says why and what works."""

    exit_code = 2


def semver(tag: str, what: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)(?:-\d+)?", tag)
    if not match:
        raise NotBuildable(f"{what}: cannot tell a version from the tag {tag!r}")
    return int(match[1]), int(match[2]), int(match[3])


STAMPED = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
# Upstream's build tags (hack/lib/golang.sh), for its binaries and e2e.test alike: `notest` drops
# apimachinery's fuzz files, so a build without it compiles nearly every Kubernetes package again.
KUBERNETES_TAGS = ("selinux", "notest", "grpcnotrace")


def kubernetes(version: str, released: str) -> GoBuild:
    """The seven binaries, version-stamped as upstream stamps them (kubeadm checks the version).
    `released` is the release's time from the module proxy: the build date of every rebuild, so
    that a rebuild is the same build and Go's cache serves it."""
    major, minor, patch = semver(version, "kubernetes-version")
    ldflags = ["-s", "-w"]
    for package in STAMPED:
        ldflags += [f"-X {package}.gitVersion={version}", f"-X {package}.gitMajor={major}",
                    f"-X {package}.gitMinor={minor}", f"-X {package}.gitTreeState=clean",
                    f"-X {package}.buildDate={released}"]
    return GoBuild(
        name=f"kubernetes-{version}",
        requires={"k8s.io/kubernetes": version},
        binaries={name: f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES},
        ldflags=tuple(ldflags),
        tags=KUBERNETES_TAGS,
        stage_replaces_of="k8s.io/kubernetes",
        stage_version=f"v0.{minor}.{patch}" if major == 1 else "",
    )


# The conformance suite's programs in k8s.io/kubernetes (and its staging sample-apiserver), and
# the ginkgo runner at the version Kubernetes' own go.mod requires.
CONFORMANCE_PROGRAMS = {"ginkgo": "github.com/onsi/ginkgo/v2/ginkgo",
                        "agnhost": "k8s.io/kubernetes/test/images/agnhost",
                        "nonewprivs": "k8s.io/kubernetes/test/images/nonewprivs",
                        "sample-apiserver": "k8s.io/sample-apiserver"}


def conformance(version: str, released: str) -> GoBuild:
    """e2e.test (`go test -c k8s.io/kubernetes/test/e2e`), ginkgo and the test images' programs,
    stamped as the cluster's binaries are (the suite reads its own version)."""
    stamped = kubernetes(version, released)
    return GoBuild(
        name=f"conformance-{version}",
        requires=stamped.requires,
        binaries=CONFORMANCE_PROGRAMS,
        tests={"e2e.test": "k8s.io/kubernetes/test/e2e"},
        ldflags=stamped.ldflags,
        tags=stamped.tags,  # the same tags: the packages e2e.test shares with the cluster's binaries compile once
        stage_replaces_of=stamped.stage_replaces_of,
        stage_version=stamped.stage_version,
    )


def etcd(image_tag: str) -> GoBuild:
    """etcd, etcdctl and etcdutl at the version of the configured etcd image's tag (3.7.0-0 -> v3.7.0)."""
    major, minor, patch = semver(image_tag, "etcd-version")
    if (major, minor) < (3, 5):
        raise NotBuildable(f"etcd {image_tag}: Kubernetes needs etcd 3.5 or newer")
    version = f"v{major}.{minor}.{patch}"
    return GoBuild(
        name=f"etcd-{version}",
        requires={"go.etcd.io/etcd/server/v3": version, "go.etcd.io/etcd/etcdctl/v3": version,
                  "go.etcd.io/etcd/etcdutl/v3": version},
        binaries={"etcd": "go.etcd.io/etcd/server/v3", "etcdctl": "go.etcd.io/etcd/etcdctl/v3",
                  "etcdutl": "go.etcd.io/etcd/etcdutl/v3"},
        ldflags=("-s", "-w"),
    )


def coredns(tag: str) -> GoBuild:
    semver(tag, "CoreDNS")
    imports = "\n".join(f'\t_ "github.com/coredns/coredns/plugin/{p}"' for p in COREDNS_PLUGINS)
    main = (
        "// CoreDNS with the plugins kubeadm's Corefile uses. Written by openi-tasks.\n"
        "package main\n\nimport (\n\t\"github.com/coredns/coredns/coremain\"\n" + imports + "\n)\n\n"
        "func main() { coremain.Run() }\n"
    )
    return GoBuild(name=f"coredns-{tag}", requires={"github.com/coredns/coredns": tag},
                   binaries={"coredns": "."}, ldflags=("-s", "-w"), files={"main.go": main})


# flannel's backends left out of a build from source, and why; vxlan, host-gw, ipip, wireguard,
# ipsec and alloc are kept.
FLANNEL_LEFT_OUT = {"tencentvpc": "its cloud SDK is not served by the module proxy",
                    "udp": "it needs cgo, and flannel itself keeps it for debugging only"}


def flannel(tag: str, main_go: str) -> GoBuild:
    """flanneld (static) from flannel's own main.go (`main_go`, read from the module), without the
    backends in FLANNEL_LEFT_OUT."""
    semver(tag, "flannel")
    kept = [line for line in main_go.splitlines()
            if not any(f'pkg/backend/{backend}"' in line for backend in FLANNEL_LEFT_OUT)]
    return GoBuild(
        name=f"flannel-{tag}",
        requires={"github.com/flannel-io/flannel": tag},
        binaries={"flanneld": "."},
        ldflags=("-s", "-w", f"-X github.com/flannel-io/flannel/pkg/version.Version={tag}"),
        files={"main.go": "\n".join(kept) + "\n"},
    )


def flannel_cni_plugin(tag: str) -> GoBuild:
    version = semver(tag, "flannel-cni-plugin")
    if version > FLANNEL_CNI_LAST or version < (0, 8, 0):
        raise NotBuildable(
            f"flannel-cni-plugin {tag}: that plugin comes from github.com/flannel-io/cni-plugin, which the Go "
            f"module proxy here does not serve. The same plugin is built from github.com/containernetworking/"
            f"plugins v0.8.0 to v0.9.1: name the image <registry>/flannel-cni-plugin:v0.9.1 "
            f"(kubernetes.flannel-cni-plugin-image), or use a bundle from upstream releases")
    return GoBuild(name=f"flannel-cni-{tag}", requires={"github.com/containernetworking/plugins": tag},
                   binaries={"flannel": "github.com/containernetworking/plugins/plugins/meta/flannel"},
                   ldflags=("-s", "-w"))


def cni_plugins(tag: str) -> GoBuild:
    semver(tag, "cni plugins")
    return GoBuild(name=f"cni-plugins-{tag}", requires={"github.com/containernetworking/plugins": tag},
                   binaries={name: f"github.com/containernetworking/plugins/{path}" for name, path in CNI_PLUGINS.items()},
                   ldflags=("-s", "-w", f"-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion={tag}"))


def containerd(tag: str) -> GoBuild:
    """containerd 2.x, its runc shim and ctr, static, as containerd's release builds them (no btrfs,
    which needs cgo and its headers)."""
    major, _, _ = semver(tag, "containerd-version")
    if major < 2:
        raise NotBuildable(f"containerd {tag}: openi-tasks builds containerd 2.x (Kubernetes 1.36+ wants it)")
    package = "github.com/containerd/containerd/v2"
    return GoBuild(
        name=f"containerd-{tag}",
        requires={package: tag},
        binaries={name: f"{package}/cmd/{name}" for name in ("containerd", "containerd-shim-runc-v2", "ctr")},
        ldflags=("-s", "-w", f"-X {package}/version.Version={tag}", f"-X {package}/version.Package=github.com/containerd/containerd/v2"),
        tags=("no_btrfs", "urfave_cli_no_docs", "netgo", "osusergo"),
    )


def runc(tag: str) -> GoBuild:
    """runc with seccomp, linked statically against Debian's libseccomp (libseccomp-dev, gcc)."""
    semver(tag, "runc-version")
    return GoBuild(
        name=f"runc-{tag}",
        requires={"github.com/opencontainers/runc": tag},
        binaries={"runc": "github.com/opencontainers/runc"},
        ldflags=("-s", "-w", f"-X main.version={tag.lstrip('v')}", "-extldflags -static"),
        tags=("seccomp", "urfave_cli_no_docs", "netgo", "osusergo"),
        cgo=True,
    )


def stand_in(source: str) -> GoBuild:
    """The stand-ins' one small server (what cannot be built here: see templates/bundle/stand-in)."""
    return GoBuild(name="stand-in", requires={}, binaries={"stand-in": "."}, ldflags=("-s", "-w"),
                   files={"main.go": source})


def nvidia_device_plugin_stand_in(kubernetes_version: str, source: str) -> GoBuild:
    """The STAND-IN for NVIDIA's device plugin (templates/bundle/nvidia-device-plugin-stand-in),
    against the kubelet's device-plugin API of the cluster's Kubernetes (k8s.io/kubelet v0.<minor>)."""
    _, minor, patch = semver(kubernetes_version, "kubernetes-version")
    kubelet = f"v0.{minor}.{patch}"
    return GoBuild(name=f"nvidia-device-plugin-stand-in-{kubelet}", requires={"k8s.io/kubelet": kubelet},
                   binaries={"nvidia-device-plugin-stand-in": "."}, ldflags=("-s", "-w"), files={"main.go": source})
