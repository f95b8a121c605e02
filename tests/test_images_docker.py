"""images.build and images.push with real Docker, the testbed's registry, and a registry with auth."""

from __future__ import annotations

import functools
import hashlib
import io
import re
import secrets
import shutil
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

import bcrypt
import docker
import pytest
from rich.console import Console

from openi_tasks.bundle.manifest import Manifest
from openi_tasks.config import load_cluster
from openi_tasks.config.generate import write_configuration
from openi_tasks.dockerbuild import ImageBuildFailed
from openi_tasks.images.build import ImageBuilder
from openi_tasks.images.catalog import load_images
from openi_tasks.images.push import PushFailed, push
from openi_tasks.k8s.kubectl import install_binary
from openi_tasks.ssh import Inventory
from openi_tasks.report import Reporter

from .test_bundle_upstream import Quiet as QuietFiles
from .test_cli import inv

pytestmark = pytest.mark.testbed

CHAIN = """
imagelist:
  base:
    templatelist: [Dockerfile]
    prerequisite: None
  middle:
    templatelist: [Dockerfile]
    prerequisite: base
  leaf:
    templatelist: [Dockerfile]
    prerequisite: middle
"""


def reporter() -> tuple[Reporter, io.StringIO]:
    buffer = io.StringIO()
    return Reporter(Console(file=buffer, width=300, highlight=False)), buffer


def write_chain(root: Path, broken: bool = False) -> tuple[Path, Path]:
    """Three images; the base carries a label unique to this call, so nothing built before matches."""
    (root / "service.yaml").write_text(CHAIN)
    contexts = root / "images"
    steps = {
        "base": f"FROM {{{{ base_os_image }}}}\nLABEL chain={secrets.token_hex(6)}\nRUN echo base > /base.txt\n",
        "middle": "FROM {{ images['base'] }}\nCOPY middle.txt /middle.txt\n",
        "leaf": "FROM {{ images['middle'] }}\nRUN echo leaf > /leaf.txt\n"
        + ("RUN echo 'about to fail' && ls /no/such/dir\n" if broken else ""),
    }
    for name, dockerfile in steps.items():
        (contexts / name).mkdir(parents=True, exist_ok=True)
        (contexts / name / "Dockerfile.template").write_text(dockerfile)
    (contexts / "middle" / "middle.txt").write_text("middle v1\n")
    return root / "service.yaml", contexts


def cluster_for(tmp_path: Path, testbed, domain: str, namespace: str, username: str = "", password: str = ""):
    machines = [{"hostname": "m1", "hostip": "10.1.0.1", "machine-type": "standard", "k8s-role": "master", "etcdid": "e1"}]
    registry = {"docker-namespace": namespace, "docker-registry-domain": domain, "docker-username": username,
                "docker-password": password, "docker-tag": "t1", "secret-name": "regsecret"}
    directory = write_configuration(tmp_path / f"config-{secrets.token_hex(3)}", machines, services={
        "cluster": {"docker-registry-info": registry},
        "images": {"base-os-image": testbed.state.images["base"]},
    })
    return load_cluster(directory)


def remove_images(match: str) -> None:
    client = docker.from_env()
    for image in client.images.list():
        for tag in image.tags:
            if match in tag:
                client.images.remove(tag, force=True)


@pytest.fixture
def chain(tmp_path, testbed):
    namespace = f"chain{secrets.token_hex(3)}"
    cluster = cluster_for(tmp_path, testbed, testbed.state.registry, namespace)
    yield cluster, load_images(*write_chain(tmp_path)), tmp_path
    remove_images(f"/{namespace}/")


def test_a_chain_builds_in_order_is_pushed_and_pulled_back_by_digest(testbed, chain):
    cluster, images, _ = chain
    report, _ = reporter()
    results = ImageBuilder(cluster, images, report).build()
    assert [(r.name, r.status) for r in results] == [("base", "built"), ("middle", "built"), ("leaf", "built")]
    client = docker.from_env()
    output = client.containers.run(results[-1].ref, "cat /base.txt /middle.txt /leaf.txt", remove=True).decode()
    assert output == "base\nmiddle v1\nleaf\n"
    pushed = push(cluster, images, report, ["leaf"])
    assert [p.ref for p in pushed] == [r.ref for r in results]
    leaf = pushed[-1]
    assert leaf.ref == f"{testbed.state.registry}/{cluster.services.cluster.docker_registry_info.docker_namespace}/leaf:t1"
    by_digest = f"{leaf.ref.rsplit(':', 1)[0]}@{leaf.digest}"
    with Inventory(load_cluster(testbed.config_dir)) as inventory:
        node = inventory.host("master1")
        node.sh(f"docker pull -q {by_digest}", check=True)
        assert node.sh(f"docker run --rm {by_digest} cat /leaf.txt", check=True).stdout == "leaf\n"


def test_a_second_build_builds_nothing_and_a_changed_file_rebuilds_what_depends_on_it(chain):
    cluster, images, root = chain
    start = time.monotonic()
    first = ImageBuilder(cluster, images, reporter()[0]).build()
    first_seconds = time.monotonic() - start
    start = time.monotonic()
    again = ImageBuilder(cluster, images, reporter()[0]).build()
    again_seconds = time.monotonic() - start
    assert [r.status for r in again] == ["unchanged"] * 3
    assert [r.image_id for r in again] == [r.image_id for r in first]
    assert again_seconds <= 0.1 * first_seconds, (first_seconds, again_seconds)
    (root / "images" / "middle" / "middle.txt").write_text("middle v2\n")
    changed = ImageBuilder(cluster, load_images(root / "service.yaml", root / "images"), reporter()[0]).build()
    assert [(r.name, r.status) for r in changed] == [("base", "unchanged"), ("middle", "built"), ("leaf", "built")]
    assert changed[0].image_id == first[0].image_id and changed[2].image_id != first[2].image_id
    forced = ImageBuilder(cluster, load_images(root / "service.yaml", root / "images"), reporter()[0]).build(["base"], force=True)
    assert [r.status for r in forced] == ["built"]


def test_a_failing_step_names_the_image_the_step_and_its_output(tmp_path, testbed):
    cluster = cluster_for(tmp_path, testbed, testbed.state.registry, "broken")
    remove_images("/broken/")
    images = load_images(*write_chain(tmp_path, broken=True))
    with pytest.raises(ImageBuildFailed) as info:
        ImageBuilder(cluster, images, reporter()[0]).build()
    text = str(info.value)
    assert re.match(r"image leaf failed at Step 3/\d+ : RUN echo 'about to fail' && ls /no/such/dir:\n", text)
    detail = text.split("\n", 1)[1]
    assert "about to fail" in detail and "No such file or directory" in detail and "--->" not in detail


def loopback_registry(testbed, port: int, label: str, auth: bool = False, files: dict[str, str] | None = None):
    """A registry container on this machine's loopback at `port` (plain HTTP: Docker allows that
    for 127.0.0.0/8), from the testbed's registry image; with `auth`, files must hold auth/htpasswd."""
    client = docker.from_env()
    config = "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\nhttp:\n  addr: :5000\n"
    if auth:
        config += "auth:\n  htpasswd:\n    realm: openi-test\n    path: /auth/htpasswd\n"
    container = client.containers.create(
        testbed.state.images["registry"], ["/usr/bin/docker-registry", "serve", "/auth/config.yml"],
        ports={"5000/tcp": ("127.0.0.1", port)}, labels={"openi.test": label},
    )
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, text in {**(files or {}), "auth/config.yml": config}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    container.put_archive("/", archive.getvalue())
    container.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            break
        except urllib.error.HTTPError:  # 401: up, and asking for credentials
            break
        except OSError:
            time.sleep(0.3)
    return container


@pytest.fixture
def auth_registry(testbed):
    """A loopback registry that wants a user name and password."""
    password = "pw-" + secrets.token_hex(8)
    htpasswd = f"pusher:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
    container = loopback_registry(testbed, 5999, "auth-registry", auth=True, files={"auth/htpasswd": htpasswd})
    yield container, password
    container.remove(force=True)
    remove_images("127.0.0.1:5999/")


def test_credentials_wrong_right_and_a_stopped_registry(tmp_path, testbed, auth_registry):
    container, password = auth_registry
    images = load_images(*write_chain(tmp_path))
    wrong = cluster_for(tmp_path, testbed, "127.0.0.1:5999", "auth", "pusher", "not-the-" + password)
    ImageBuilder(wrong, images, reporter()[0]).build()
    report, out = reporter()
    with pytest.raises(PushFailed) as info:
        push(wrong, images, report)
    assert str(info.value).startswith("login to 127.0.0.1:5999 as pusher failed:")
    assert password not in str(info.value) and password not in out.getvalue()

    right = cluster_for(tmp_path, testbed, "127.0.0.1:5999", "auth", "pusher", password)
    report, out = reporter()
    pushed = push(right, images, report)
    assert len(pushed) == 3 and all(p.digest.startswith("sha256:") for p in pushed)
    assert password not in out.getvalue()

    container.stop(timeout=1)
    with pytest.raises(PushFailed) as info:
        push(right, images, reporter()[0])
    assert "127.0.0.1:5999" in str(info.value) and password not in str(info.value)


MIRROR_PORT = 5998


def release_like_upstream(testbed, site: Path, registry: str) -> dict[str, str]:
    """Publish the testbed's bundle (built from source) as its upstreams do: binaries under the
    Kubernetes release site's layout with their .sha256, the CNI plugins' release archive, and each
    image in `registry` under its upstream path. Returns {upstream reference: image ID}."""
    cluster = load_cluster(testbed.config_dir)
    k = cluster.kubernetes
    source = Path(k.binaries_dir)
    binaries = site / "release" / k.kubernetes_version / "bin" / "linux" / "amd64"
    binaries.mkdir(parents=True)
    for name in ("kubeadm", "kubelet", "kubectl"):
        shutil.copyfile(source / name, binaries / name)
        (binaries / f"{name}.sha256").write_text(hashlib.sha256((source / name).read_bytes()).hexdigest())
    archive_name = f"cni-plugins-linux-amd64-{k.cni_plugins_version}.tgz"
    (site / "cni" / k.cni_plugins_version).mkdir(parents=True)
    archive = site / "cni" / k.cni_plugins_version / archive_name
    with tarfile.open(archive, "w:gz") as tar:
        for plugin in sorted((source / "cni").iterdir()):
            tar.add(plugin, arcname=f"./{plugin.name}")
    archive.with_name(archive_name + ".sha256").write_text(f"{hashlib.sha256(archive.read_bytes()).hexdigest()}  "
                                                           f"{archive_name}\n")
    # containerd's release archive (bin/...) with its .sha256sum, runc's binary with runc.sha256sum.
    containerd = site / "containerd" / k.containerd_version
    containerd.mkdir(parents=True)
    archive_name = f"containerd-{k.containerd_version.lstrip('v')}-linux-amd64.tar.gz"
    with tarfile.open(containerd / archive_name, "w:gz") as tar:
        for binary in ("containerd", "containerd-shim-runc-v2", "ctr"):
            tar.add(source / "containerd" / binary, arcname=f"bin/{binary}")
    (containerd / f"{archive_name}.sha256sum").write_text(
        f"{hashlib.sha256((containerd / archive_name).read_bytes()).hexdigest()}  {archive_name}\n")
    runc = site / "runc" / k.runc_version
    runc.mkdir(parents=True)
    shutil.copyfile(source / "containerd" / "runc", runc / "runc.amd64")
    (runc / "runc.sha256sum").write_text(f"{hashlib.sha256((runc / 'runc.amd64').read_bytes()).hexdigest()}  runc.amd64\n")
    upstream_repository = {
        "kube-apiserver": "registry.k8s.io/kube-apiserver", "kube-controller-manager": "registry.k8s.io/kube-controller-manager",
        "kube-scheduler": "registry.k8s.io/kube-scheduler", "kube-proxy": "registry.k8s.io/kube-proxy",
        "coredns": "registry.k8s.io/coredns/coredns", "pause": "registry.k8s.io/pause", "etcd": "registry.k8s.io/etcd",
        "haproxy": "docker.io/library/haproxy", "flannel": "ghcr.io/flannel-io/flannel",
        "flannel-cni-plugin": "ghcr.io/flannel-io/flannel-cni-plugin",
    }
    client = docker.from_env()
    released = {}
    for entry in Manifest.read(source).images:
        name, tag = entry.ref.rsplit("/", 1)[1].split(":")
        if name not in upstream_repository:
            continue  # the dashboard's stand-ins: released nowhere
        upstream = f"{upstream_repository[name]}:{tag}"
        client.images.get(entry.ref).tag(f"{registry}/{upstream}")
        for line in client.images.push(f"{registry}/{upstream}", stream=True, decode=True):
            assert "error" not in line, line
        released[upstream] = entry.id
    assert len(released) == len(upstream_repository)
    return released


def test_a_bundle_from_upstream_releases_is_checked_pulled_from_a_mirror_and_pushed(testbed, tmp_path):
    """k8s.bundle without --from-source: binaries from a loopback site with dl.k8s.io's and the CNI
    releases' layouts, the real kubeadm asked for its CoreDNS and pause tags, images pulled through
    a mirror that keeps their upstream paths, tagged and pushed as an air-gapped cluster pulls them."""
    mirror = f"127.0.0.1:{MIRROR_PORT}"
    container = loopback_registry(testbed, MIRROR_PORT, "upstream-mirror")
    server = None
    try:
        site = tmp_path / "site"
        released = release_like_upstream(testbed, site, mirror)
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietFiles, directory=str(site)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        source = load_cluster(testbed.config_dir).kubernetes
        flannel_tag = source.flannel_image.rsplit(":", 1)[1]
        airgap = f"{mirror}/airgap"

        def configuration(flannel: str) -> Path:
            return write_configuration(
                tmp_path / f"config-{flannel}",
                [{"hostname": "m1", "hostip": "127.0.0.2", "machine-type": "standard", "k8s-role": "master",
                  "etcdid": "etcd1"},
                 {"hostname": "p1", "hostip": "127.0.0.3", "machine-type": "standard", "k8s-role": "proxy"},
                 {"hostname": "w1", "hostip": "127.0.0.4", "machine-type": "standard", "k8s-role": "worker"}],
                kubernetes={"kubernetes-version": source.kubernetes_version, "docker-registry": airgap,
                            "haproxy-image": f"{airgap}/haproxy:debian-bookworm",
                            "flannel-image": f"{airgap}/flannel:{flannel}",
                            "flannel-cni-plugin-image": f"{airgap}/flannel-cni-plugin:v0.9.1",
                            "package-source": "binaries", "binaries-dir": str(tmp_path / "bundle")})

        def bundle(config: Path) -> subprocess.CompletedProcess:
            return inv("k8s.bundle", "-p", str(config), "--release-url", f"{url}/release", "--cni-url",
                       f"{url}/cni", "--containerd-url", f"{url}/containerd", "--runc-url", f"{url}/runc",
                       "--mirror", mirror, "--push",
                       env={"OPENI_CACHE": str(tmp_path / "cache"), "COLUMNS": "300"})

        config = configuration(flannel_tag)
        first = bundle(config)
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-3000:]
        manifest = Manifest.read(tmp_path / "bundle")
        assert manifest.origin == "upstream" and manifest.kubernetes_version == source.kubernetes_version
        built = {b.path: b.sha256 for b in Manifest.read(Path(source.binaries_dir)).binaries}
        assert {b.path: b.sha256 for b in manifest.binaries} == built
        version = subprocess.run([str(tmp_path / "bundle" / "kubeadm"), "version", "-o", "short"],
                                 capture_output=True, text=True)
        assert version.stdout.strip() == source.kubernetes_version
        # k8s.install-kubectl's download path takes kubectl from the same site, checked the same way.
        plain = write_configuration(tmp_path / "config-download", [
            {"hostname": "m1", "hostip": "127.0.0.2", "machine-type": "standard", "k8s-role": "master", "etcdid": "e1"}],
            kubernetes={"kubernetes-version": source.kubernetes_version, "kubectl-download-url": f"{url}/release"})
        said = install_binary(load_cluster(plain), tmp_path / "bin")
        assert said == (f"installed kubectl {source.kubernetes_version} from {url}/release/{source.kubernetes_version}"
                        f"/bin/linux/amd64/kubectl into {tmp_path / 'bin' / 'kubectl'}")
        # Every image is what the mirror released, under the reference the cluster pulls, and in
        # the cluster's registry.
        assert {i.source.split("@")[0]: i.id for i in manifest.images} == released
        assert {i.ref for i in manifest.images} == {f"{airgap}/{u.rsplit('/', 1)[1]}" for u in released}
        for image in manifest.images:
            assert re.fullmatch(r"[^@]+@sha256:[0-9a-f]{64}", image.source), image.source
            repository, tag = image.ref.split("/", 1)[1].rsplit(":", 1)
            with urllib.request.urlopen(urllib.request.Request(
                    f"http://{mirror}/v2/{repository}/manifests/{tag}", method="HEAD",
                    headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                                       "application/vnd.oci.image.manifest.v1+json"}), timeout=10) as answer:
                assert answer.status == 200, image.ref
        # Again: nothing is downloaded, pulled or pushed, and each step says so.
        again = bundle(config)
        assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-3000:]
        text = again.stdout
        assert f"kubeadm, kubelet, kubectl {source.kubernetes_version}: unchanged" in text, text[-4000:]
        assert "CNI plugins" in text and "download http" not in text and "pulled (" not in text
        assert text.count(": unchanged (") >= len(released)
        for image in manifest.images:
            assert f"{image.ref}: unchanged (already in the registry)" in text, text[-4000:]
        # An image the mirror does not have: the run fails naming it, after the binaries it has.
        missing = bundle(configuration("v0.0.0-missing"))
        assert missing.returncode == 1, missing.stdout[-3000:]
        said = " ".join((missing.stdout + missing.stderr).split())
        assert f"pulling {mirror}/ghcr.io/flannel-io/flannel:v0.0.0-missing (for {airgap}/flannel:v0.0.0-missing) " \
               f"failed" in said, said[-3000:]
        assert "Traceback" not in missing.stderr
    finally:
        if server is not None:
            server.shutdown()
        container.remove(force=True)
        remove_images(f"{mirror}/")
