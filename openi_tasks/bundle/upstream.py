"""`inv k8s.bundle` from upstream releases: what the configuration needs, downloaded rather than built.

Binaries from the Kubernetes release site's layout (`<release-url>/<version>/bin/linux/amd64/kubeadm`,
its digest in `kubeadm.sha256` beside it) and the CNI plugins' release archive
(`<cni-url>/<version>/cni-plugins-linux-amd64-<version>.tgz` and its `.sha256`); each is checked
against its published digest before it replaces anything in the bundle. Images are pulled from
their upstream registries, or from a mirror that keeps their paths
(`<mirror>/registry.k8s.io/kube-apiserver:v1.37.2`), and tagged as the cluster pulls them.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..dockerbuild import is_stand_in
from ..download import download_checked, published_sha256
from ..errors import OpenIError
from ..localfiles import file_digest
from ..report import Activity
from .cache import cache_dir
from .manifest import BinaryEntry, ImageEntry
from .needs import CNI_BINARIES, CONTAINERD_BINARIES, NODE_ARCH, NODE_BINARIES, ImageNeed

if TYPE_CHECKING:
    import docker

CNI_RELEASES = "https://github.com/containernetworking/plugins/releases/download"
CONTAINERD_RELEASES = "https://github.com/containerd/containerd/releases/download"
RUNC_RELEASES = "https://github.com/opencontainers/runc/releases/download"
# Where each image is released. A configured reference in one of the public registries is pulled
# as it is; one in a private registry (the cluster's own) from its role's release repository.
RELEASED = {
    "kube-apiserver": "registry.k8s.io/kube-apiserver",
    "kube-controller-manager": "registry.k8s.io/kube-controller-manager",
    "kube-scheduler": "registry.k8s.io/kube-scheduler",
    "kube-proxy": "registry.k8s.io/kube-proxy",
    "coredns": "registry.k8s.io/coredns/coredns",
    "pause": "registry.k8s.io/pause",
    "etcd": "registry.k8s.io/etcd",
    "haproxy": "docker.io/library/haproxy",
    "flannel": "ghcr.io/flannel-io/flannel",
    "flannel-cni-plugin": "ghcr.io/flannel-io/flannel-cni-plugin",
    "dashboard": "docker.io/kubernetesui/dashboard",
    "dashboard-metrics-scraper": "docker.io/kubernetesui/metrics-scraper",
    "nvidia-device-plugin": "nvcr.io/nvidia/k8s-device-plugin",
}
PUBLIC_REGISTRIES = ("registry.k8s.io", "docker.io", "ghcr.io", "nvcr.io", "quay.io", "k8s.gcr.io")


class NotReleased(OpenIError):
    """The configuration names images no upstream release has (stand-ins); says which and what works."""

    exit_code = 2


def released_ref(need: ImageNeed) -> str:
    """Where `need` is released: its own reference when that is in a public registry, else its
    role's release repository with the configured tag."""
    first = need.ref.split("/", 1)[0]
    if "/" not in need.ref or not ("." in first or ":" in first or first == "localhost"):
        return f"docker.io/{need.ref if '/' in need.ref else 'library/' + need.ref}"
    if first in PUBLIC_REGISTRIES:
        return need.ref
    return f"{RELEASED[need.role]}:{need.tag}"


def refuse_stand_ins(needs: list[ImageNeed]) -> None:
    stand_ins = [n.ref for n in needs if is_stand_in(n.name)]
    if stand_ins:
        raise NotReleased(f"{', '.join(stand_ins)}: a stand-in is built by openi-tasks and released nowhere; make "
                          f"this bundle with --from-source, or name the released image in the configuration")


def download_binaries(release_url: str, version: str, out: Path, activity: Activity) -> list[BinaryEntry]:
    """kubeadm, kubelet and kubectl of `version` into `out`, each checked against its published sha256."""
    entries, fetched = [], []
    for name in NODE_BINARIES:
        url = f"{release_url.rstrip('/')}/{version}/bin/linux/{NODE_ARCH}/{name}"
        expected = published_sha256(url + ".sha256")
        target = out / name
        if not (target.is_file() and file_digest(target) == expected):
            activity.step(f"download {url}")
            download_checked(url, target, expected, activity.event)
            fetched.append(name)
        target.chmod(0o755)
        entries.append(BinaryEntry(name, expected, target.stat().st_size, url))
    activity.step(f"kubeadm, kubelet, kubectl {version}: " +
                  (f"downloaded {', '.join(fetched)}" if fetched else "unchanged (their published sha256 matches)"))
    return entries


def download_cni(cni_url: str, version: str, out: Path, activity: Activity) -> list[BinaryEntry]:
    """The CNI plugins the nodes need, from the release archive (kept in the cache, checked by its sha256)."""
    name = f"cni-plugins-linux-{NODE_ARCH}-{version}.tgz"
    url = f"{cni_url.rstrip('/')}/{version}/{name}"
    expected = published_sha256(url + ".sha256")
    archive = cache_dir() / "downloads" / name
    if not (archive.is_file() and file_digest(archive) == expected):
        activity.step(f"download {url}")
        download_checked(url, archive, expected, activity.event)
    entries, copied = [], []
    with tarfile.open(archive) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
        missing = [binary for binary in CNI_BINARIES if binary not in members]
        if missing:
            raise OpenIError(f"{url} lacks the CNI plugins {', '.join(missing)}")
        for binary in CNI_BINARIES:
            data = tar.extractfile(members[binary]).read()
            target = out / "cni" / binary
            target.parent.mkdir(parents=True, exist_ok=True)
            if not (target.is_file() and target.read_bytes() == data):
                target.write_bytes(data)
                copied.append(binary)
            target.chmod(0o755)
            entries.append(BinaryEntry(f"cni/{binary}", file_digest(target), len(data), f"{url} (sha256 {expected})"))
    activity.step(f"CNI plugins {version}: " + (f"copied {', '.join(copied)}" if copied else "unchanged"))
    return entries


def download_containerd(containerd_url: str, runc_url: str, containerd_version: str, runc_version: str, out: Path,
                        activity: Activity) -> list[BinaryEntry]:
    """containerd's release archive (containerd, its runc shim, ctr) and runc's static binary, each
    checked against its published sha256, into <bundle>/containerd/."""
    name = f"containerd-{containerd_version.lstrip('v')}-linux-{NODE_ARCH}.tar.gz"
    url = f"{containerd_url.rstrip('/')}/{containerd_version}/{name}"
    expected = published_sha256(url + ".sha256sum")
    archive = cache_dir() / "downloads" / name
    if not (archive.is_file() and file_digest(archive) == expected):
        activity.step(f"download {url}")
        download_checked(url, archive, expected, activity.event)
    files: dict[str, tuple[bytes, str]] = {}
    with tarfile.open(archive) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
        for binary in CONTAINERD_BINARIES[:-1]:
            member = members.get(f"bin/{binary}")
            if member is None:
                raise OpenIError(f"{url} lacks bin/{binary}")
            files[binary] = (tar.extractfile(member).read(), f"{url} (sha256 {expected})")
    runc = f"{runc_url.rstrip('/')}/{runc_version}/runc.{NODE_ARCH}"
    runc_sha = published_sha256(f"{runc_url.rstrip('/')}/{runc_version}/runc.sha256sum", f"runc.{NODE_ARCH}")
    target = out / "containerd" / "runc"
    if not (target.is_file() and file_digest(target) == runc_sha):
        activity.step(f"download {runc}")
        download_checked(runc, target, runc_sha, activity.event)
    target.chmod(0o755)
    entries, copied = [], []
    for binary, (data, source) in files.items():
        path = out / "containerd" / binary
        path.parent.mkdir(parents=True, exist_ok=True)
        if not (path.is_file() and path.read_bytes() == data):
            path.write_bytes(data)
            copied.append(binary)
        path.chmod(0o755)
        entries.append(BinaryEntry(f"containerd/{binary}", file_digest(path), len(data), source))
    entries.append(BinaryEntry("containerd/runc", runc_sha, target.stat().st_size, f"{runc} (sha256 {runc_sha})"))
    activity.step(f"containerd {containerd_version}, runc {runc_version}: " +
                  (f"copied {', '.join(copied)}" if copied else "unchanged"))
    return entries


def kubeadm_image_tags(kubeadm: Path, version: str) -> tuple[str, str]:
    """(CoreDNS tag, pause tag) this kubeadm asks for, from `kubeadm config images list`."""
    try:
        listed = subprocess.run([str(kubeadm), "config", "images", "list", "--kubernetes-version", version],
                                capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise OpenIError(f"{kubeadm} cannot run on this machine ({exc}); it is needed to learn the CoreDNS and "
                         f"pause tags of Kubernetes {version}") from None
    coredns = re.search(r"/coredns(?:/coredns)?:(\S+)$", listed.stdout, re.M)
    pause = re.search(r"/pause:(\S+)$", listed.stdout, re.M)
    if listed.returncode != 0 or not coredns or not pause:
        raise OpenIError(f"`kubeadm config images list` did not name CoreDNS and pause: "
                         f"{(listed.stderr or listed.stdout).strip()[-400:]}")
    return coredns[1], pause[1]


def pull(client: "docker.DockerClient", need: ImageNeed, mirror: str, activity: Activity) -> ImageEntry:
    """Pull `need` from where it is released (through `mirror`, if given) and tag it as the cluster pulls it."""
    from docker.errors import APIError

    released = released_ref(need)
    source = f"{mirror.rstrip('/')}/{released}" if mirror else released
    repository, tag = source.rsplit(":", 1)
    status = ""
    try:
        for line in client.api.pull(repository, tag=tag, stream=True, decode=True):
            if "error" in line:
                raise OpenIError(f"pulling {source} (for {need.ref}) failed: {line['error']}")
            status = line.get("status", status)
            activity.event(f"{source}: {status} {line.get('progress', '')}")
    except APIError as exc:
        raise OpenIError(f"pulling {source} (for {need.ref}) failed: {exc.explanation or exc}") from None
    image = client.images.get(source)
    digest = next((d.split("@", 1)[1] for d in image.attrs.get("RepoDigests") or [] if d.startswith(repository + "@")),
                  "")
    tagged = need.ref in image.tags
    if not tagged:
        image.tag(need.ref)
    fresh = "up to date" not in status or not tagged
    activity.step(f"image {need.ref}: {'pulled' if fresh else 'unchanged'} ({source}@{digest})")
    return ImageEntry(need.ref, image.id, f"{released}@{digest}")
