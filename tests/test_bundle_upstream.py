"""A bundle from upstream releases: downloads checked against published digests, from a loopback
HTTP server with the release sites' layout (no internet here), and where each image is released.
The whole path with real kubeadm, Docker and a registry is in test_images_docker.py."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from openi_tasks.bundle.needs import ImageNeed
from openi_tasks.bundle.upstream import download_binaries, download_cni, download_containerd, released_ref
from openi_tasks.download import DownloadFailed

from .test_cli import inv

VERSION = "v1.37.2"
CNI = "v1.10.0"


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path):
    """A release site on loopback: (its root directory, its URL)."""
    root = tmp_path / "site"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def publish(root: Path) -> dict[str, bytes]:
    """Kubernetes' binaries (digest alone, as dl.k8s.io) and a CNI archive (digest and name, as
    GitHub releases) under the sites' layouts; what each binary holds."""
    contents = {name: os.urandom(4096) + name.encode() for name in ("kubeadm", "kubelet", "kubectl")}
    binaries = root / "release" / VERSION / "bin" / "linux" / "amd64"
    binaries.mkdir(parents=True)
    for name, data in contents.items():
        (binaries / name).write_bytes(data)
        (binaries / f"{name}.sha256").write_text(hashlib.sha256(data).hexdigest())
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name in ("bridge", "host-local", "loopback", "portmap", "vlan"):
            data = os.urandom(2048) + name.encode()
            contents[f"cni/{name}"] = data
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    name = f"cni-plugins-linux-amd64-{CNI}.tgz"
    (root / "cni" / CNI).mkdir(parents=True)
    (root / "cni" / CNI / name).write_bytes(archive.getvalue())
    (root / "cni" / CNI / f"{name}.sha256").write_text(f"{hashlib.sha256(archive.getvalue()).hexdigest()}  {name}\n")
    return contents


def activity():
    from rich.console import Console

    from openi_tasks.report import Reporter

    buffer = io.StringIO()
    return Reporter(Console(file=buffer, width=300)).activity("bundle"), buffer


def test_binaries_and_cni_plugins_are_downloaded_checked_and_left_alone_when_unchanged(site, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENI_CACHE", str(tmp_path / "cache"))
    root, url = site
    contents = publish(root)
    out = tmp_path / "bundle"
    context, buffer = activity()
    with context as steps:
        entries = download_binaries(f"{url}/release", VERSION, out, steps)
        entries += download_cni(f"{url}/cni", CNI, out, steps)
    assert {e.path: e.sha256 for e in entries} == {
        name: hashlib.sha256(data).hexdigest() for name, data in contents.items() if name != "cni/vlan"}
    assert all((out / e.path).read_bytes() == contents[e.path] for e in entries)
    assert not (out / "cni" / "vlan").exists() and all(os.access(out / e.path, os.X_OK) for e in entries)
    assert entries[0].source == f"{url}/release/{VERSION}/bin/linux/amd64/kubeadm"
    assert "downloaded kubeadm, kubelet, kubectl" in buffer.getvalue()
    # Again: nothing is written, and each step says so.
    stamps = {e.path: (out / e.path).stat().st_mtime_ns for e in entries}
    context, buffer = activity()
    with context as steps:
        download_binaries(f"{url}/release", VERSION, out, steps)
        download_cni(f"{url}/cni", CNI, out, steps)
    assert {e.path: (out / e.path).stat().st_mtime_ns for e in entries} == stamps
    text = buffer.getvalue()
    assert "kubeadm, kubelet, kubectl v1.37.2: unchanged" in text and "CNI plugins v1.10.0: unchanged" in text
    assert "download http" not in text


def test_containerd_and_runc_come_from_their_releases_checked(site, tmp_path, monkeypatch):
    """containerd's archive (its digest in <archive>.sha256sum) and runc's binary (its digest one line
    of runc.sha256sum among the other architectures'), as GitHub's releases publish them."""
    monkeypatch.setenv("OPENI_CACHE", str(tmp_path / "cache"))
    root, url = site
    contents = {name: os.urandom(3000) + name.encode() for name in ("containerd", "containerd-shim-runc-v2", "ctr")}
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, data in {**contents, "containerd-stress": b"x"}.items():
            info = tarfile.TarInfo(f"bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    name = "containerd-2.4.2-linux-amd64.tar.gz"
    (root / "containerd" / "v2.4.2").mkdir(parents=True)
    (root / "containerd" / "v2.4.2" / name).write_bytes(archive.getvalue())
    (root / "containerd" / "v2.4.2" / f"{name}.sha256sum").write_text(
        f"{hashlib.sha256(archive.getvalue()).hexdigest()}  {name}\n")
    runc = os.urandom(5000)
    (root / "runc" / "v1.5.3").mkdir(parents=True)
    (root / "runc" / "v1.5.3" / "runc.amd64").write_bytes(runc)
    (root / "runc" / "v1.5.3" / "runc.sha256sum").write_text(
        f"{hashlib.sha256(b'arm').hexdigest()}  runc.arm64\n{hashlib.sha256(runc).hexdigest()}  runc.amd64\n")
    out = tmp_path / "bundle"
    context, buffer = activity()
    with context as steps:
        entries = download_containerd(f"{url}/containerd", f"{url}/runc", "v2.4.2", "v1.5.3", out, steps)
    assert {e.path for e in entries} == {"containerd/containerd", "containerd/containerd-shim-runc-v2",
                                         "containerd/ctr", "containerd/runc"}
    assert (out / "containerd" / "runc").read_bytes() == runc and not (out / "containerd" / "containerd-stress").exists()
    assert all((out / e.path).read_bytes() == contents[e.path.split("/")[1]] for e in entries if "runc" != e.path[-4:])
    (root / "runc" / "v1.5.3" / "runc.amd64").write_bytes(b"tampered")
    (out / "containerd" / "runc").unlink()
    with pytest.raises(DownloadFailed, match="not the published"), activity()[0] as steps:
        download_containerd(f"{url}/containerd", f"{url}/runc", "v2.4.2", "v1.5.3", out, steps)
    assert not (out / "containerd" / "runc").exists()


def test_a_download_that_is_not_the_published_file_replaces_nothing(site, tmp_path):
    root, url = site
    contents = publish(root)
    out = tmp_path / "bundle"
    with activity()[0] as steps:
        download_binaries(f"{url}/release", VERSION, out, steps)
    # The site now serves another kubelet, while its published digest is still the old one's.
    (root / "release" / VERSION / "bin" / "linux" / "amd64" / "kubelet").write_bytes(b"tampered")
    (root / "release" / VERSION / "bin" / "linux" / "amd64" / "kubelet.sha256").write_text("0" * 64)
    with pytest.raises(DownloadFailed, match=r"kubelet: its sha256 is \w{64}, not the published 0{64}; .* was left"):
        with activity()[0] as steps:
            download_binaries(f"{url}/release", VERSION, out, steps)
    assert (out / "kubelet").read_bytes() == contents["kubelet"]
    assert sorted(p.name for p in out.iterdir()) == ["kubeadm", "kubectl", "kubelet"], "no partial file is left"
    # A version the site does not have: the error names the URL.
    with pytest.raises(DownloadFailed, match=r"cannot download .*/v9\.9\.9/bin/linux/amd64/kubeadm\.sha256: HTTP Error 404"):
        with activity()[0] as steps:
            download_binaries(f"{url}/release", "v9.9.9", out, steps)


@pytest.mark.parametrize("role, ref, released", [
    ("kube-apiserver", "10.0.0.1:5000/kube-apiserver:v1.37.2", "registry.k8s.io/kube-apiserver:v1.37.2"),
    ("coredns", "mirror.example.com/k8s/coredns:v1.12.1", "registry.k8s.io/coredns/coredns:v1.12.1"),
    ("etcd", "localhost/etcd:3.7.3-0", "registry.k8s.io/etcd:3.7.3-0"),
    ("haproxy", "haproxy:2.8", "docker.io/library/haproxy:2.8"),
    ("dashboard", "kubernetesui/dashboard:v2.7.0", "docker.io/kubernetesui/dashboard:v2.7.0"),
    ("flannel", "ghcr.io/flannel-io/flannel:v0.28.10", "ghcr.io/flannel-io/flannel:v0.28.10"),
    ("nvidia-device-plugin", "registry.local:443/nvidia/dp:v0.17.4", "nvcr.io/nvidia/k8s-device-plugin:v0.17.4"),
])
def test_each_image_is_pulled_from_where_it_is_released(role, ref, released):
    assert released_ref(ImageNeed(role, ref)) == released


def test_a_stand_in_image_is_refused_before_anything_is_downloaded(example_dir, tmp_path):
    settings = example_dir / "kubernetes-configuration.yaml"
    settings.write_text(settings.read_text().replace(
        "  # dashboard-image: mirror.example.com/kubernetesui/dashboard:v2.7.0",
        "  dashboard-image: mirror.example.com/kubernetesui/dashboard-stand-in:v2.7.0"))
    result = inv("k8s.bundle", "-p", str(example_dir), "--out", str(tmp_path / "bundle"),
                 "--release-url", "http://127.0.0.1:9/none", env={"OPENI_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "mirror.example.com/kubernetesui/dashboard-stand-in:v2.7.0: a stand-in is built by openi-tasks and " \
           "released nowhere; make this bundle with --from-source" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "bundle").exists()
