"""The operator's container (Dockerfile at the root), built and used with real Docker.

No public registry is reachable here, so the image is built FROM the testbed's Debian base (made
with debootstrap), and kubectl is the real one, built from its Go module by the Kubernetes bundle
and placed in dist/kubectl (the air-gapped way of building: it cannot be downloaded here). This machine reaches PyPI through a TLS-inspecting
proxy, so its CA certificates go in dist/ca-certificates/, as the Dockerfile documents.
"""

from __future__ import annotations

import base64
import http.server
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import docker
import pytest

from openi_tasks.bundle import recipes
from openi_tasks.bundle.cache import cache_dir
from openi_tasks.bundle.gobuild import Go
from openi_tasks.config.files import KubernetesSettings
from openi_tasks.config.generate import write_configuration
from openi_tasks.testbed import images as testbed_images
from openi_tasks.testbed.testbed import HADOOP_VERSION, MAVEN_CENTRAL

from .conftest import EXAMPLE, ROOT

pytestmark = pytest.mark.testbed

TAG = "openi-tasks:test"
MAVEN_TAG = "openi-tasks:test-maven"
UID = 1234


def build_image(client, context: Path, tag: str, base: str, **args: str) -> None:
    """The image as `tag`, and its `dependencies` stage as `tag`-dependencies, which stays after the
    tests: the classic builder keeps its cache in untagged parents, which removing `tag` deletes up
    to the nearest tagged one. So the next run reinstalls only the wheel, as an operator's rebuild does."""
    arguments = {"BASE_IMAGE": base, **args}
    client.images.build(path=str(context), tag=f"{tag}-dependencies", target="dependencies", buildargs=arguments,
                        rm=True, pull=False)
    client.images.build(path=str(context), tag=tag, buildargs=arguments, rm=True, pull=False)


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    """The checkout's files (tracked or not ignored), with a real kubectl in dist/ (air-gapped)."""
    context = tmp_path_factory.mktemp("context")
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    for relative in tracked:
        target = context / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    shutil.copy(real_kubectl(), context / "dist" / "kubectl")
    proxies = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    if proxies:
        (context / "dist" / "ca-certificates").mkdir()
        for cert in proxies:
            shutil.copy(cert, context / "dist" / "ca-certificates" / cert.name)
    return context


@pytest.fixture(scope="module")
def image(context):
    client = docker.from_env()
    base = testbed_images.ImageBuilder(client, lambda message: None).base()
    build_image(client, context, TAG, base)
    yield client, base
    client.images.remove(TAG, force=True)


@pytest.fixture(scope="module")
def maven_image(context, image):
    """The variant with a JRE and Maven (--build-arg MAVEN=1)."""
    client, base = image
    build_image(client, context, MAVEN_TAG, base, MAVEN="1")
    yield client
    client.images.remove(MAVEN_TAG, force=True)


def real_kubectl() -> Path:
    """kubectl of the default Kubernetes version: the testbed's bundle's, else built from source
    (Go's build cache makes that quick once the testbed has been up on this machine)."""
    version = KubernetesSettings().kubernetes_version
    bundled = cache_dir() / "testbed" / f"bundle-{version}" / "kubectl"
    if bundled.is_file():
        return bundled
    go = Go()
    return go.build(recipes.kubernetes(version, go.release_time("k8s.io/kubernetes", version)),
                    cache_dir() / "operator-image-kubectl")["kubectl"]


def run(client, command: str, volumes: dict | None = None, tag: str = TAG, **options) -> tuple[int, str]:
    container = client.containers.run(tag, ["sh", "-c", command], volumes=volumes or {}, detach=True, **options)
    code = container.wait()["StatusCode"]
    output = container.logs().decode()
    container.remove()
    return code, output


def test_the_image_lists_the_tasks_and_has_its_tools(image):
    client, _ = image
    code, output = run(client, "inv --list && openi --list && kubectl version --client && ssh -V 2>&1 && "
                               "python3 -c 'import openi_tasks; print(openi_tasks.__file__)'")
    assert code == 0, output
    assert "/opt/venv/lib/python3" in output.splitlines()[-1], "installed from the wheel, not a checkout"
    for namespace in ("cluster.check", "k8s.deploy", "images.build", "testbed.up"):
        # inv and openi list the same tasks (a task's name begins its line; help may name it too)
        assert len(re.findall(rf"^  {re.escape(namespace)} ", output, re.M)) == 2, namespace
    assert f"Client Version: {KubernetesSettings().kubernetes_version}" in output and "OpenSSH" in output


def test_check_and_render_run_as_the_owner_of_the_mounted_configuration(image, tmp_path):
    client, _ = image
    config = Path(shutil.copytree(EXAMPLE, tmp_path / "cluster-configuration"))
    subprocess.run(["chown", "-R", f"{UID}:{UID}", str(config)], check=True)
    volumes = {str(config): {"bind": "/cluster-configuration", "mode": "rw"}}
    code, output = run(client, "id -u && inv cluster.check -p /cluster-configuration && "
                               "inv cluster.render -p /cluster-configuration --out /cluster-configuration/out", volumes)
    assert code == 0, output
    assert output.splitlines()[0] == str(UID)
    assert "/cluster-configuration: valid" in output
    rendered = config / "out" / "openi-master-1" / "etc/openi/containers/etcd.yaml"
    assert rendered.is_file() and rendered.stat().st_uid == UID


def test_images_build_through_the_mounted_socket_lands_on_the_hosts_docker(image, tmp_path):
    client, base = image
    catalog = tmp_path / "catalog"
    (catalog / "images" / "tiny").mkdir(parents=True)
    (catalog / "service.yaml").write_text("imagelist:\n  tiny:\n    templatelist: [Dockerfile]\n    prerequisite: None\n")
    (catalog / "images" / "tiny" / "Dockerfile.template").write_text(
        "FROM {{ base_os_image }}\nRUN echo built-inside-the-operator-container > /tiny.txt\n")
    machines = [{"hostname": "m1", "hostip": "10.1.0.1", "machine-type": "standard", "k8s-role": "master", "etcdid": "e1"}]
    config = write_configuration(tmp_path / "config", machines, services={
        "cluster": {"docker-registry-info": {"docker-namespace": "operator-test", "docker-registry-domain": "local.invalid",
                                             "docker-tag": "t1", "secret-name": "regsecret"}},
        "images": {"base-os-image": base},
    })
    subprocess.run(["chown", "-R", f"{UID}:{UID}", str(tmp_path)], check=True)
    reference = "local.invalid/operator-test/tiny:t1"
    try:
        client.images.remove(reference, force=True)
    except docker.errors.ImageNotFound:
        pass
    volumes = {
        str(config): {"bind": "/cluster-configuration", "mode": "rw"},
        str(catalog): {"bind": "/catalog", "mode": "ro"},
        "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
    }
    code, output = run(client, "id -u && inv images.build -p /cluster-configuration --catalog /catalog", volumes)
    assert code == 0, output
    assert output.splitlines()[0] == str(UID)
    assert client.containers.run(reference, "cat /tiny.txt", remove=True) == b"built-inside-the-operator-container\n"
    client.images.remove(reference, force=True)


def test_image_size_is_reported(image, maven_image, capsys):
    client, base = image
    size = client.images.get(TAG).attrs["Size"]
    base_size = client.images.get(base).attrs["Size"]
    maven_size = client.images.get(MAVEN_TAG).attrs["Size"]
    with capsys.disabled():
        print(f"\noperator image: {size / 2**20:.0f} MiB ({(size - base_size) / 2**20:.0f} MiB above its base); "
              f"with MAVEN=1: {maven_size / 2**20:.0f} MiB (+{(maven_size - size) / 2**20:.0f} MiB)")
    assert size - base_size < 400 * 2**20, "keep the image lean: no compilers, no caches"
    assert maven_size - size < 300 * 2**20, "a JRE and Maven, nothing more"


class CredentialCheckingMirror(http.server.BaseHTTPRequestHandler):
    """A Maven mirror on loopback that asks for Basic credentials and, given the right ones, serves
    from this machine's Maven cache or else from Maven Central; it records what it was sent."""
    expected = ""
    seen: list[tuple[str, str | None]] = []

    def do_GET(self):
        authorization = self.headers.get("Authorization")
        self.seen.append((self.path, authorization))
        if authorization != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="mirror"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        relative = self.path.split("?")[0].removeprefix("/maven2/")
        cached = cache_dir() / "maven" / relative
        try:
            body = cached.read_bytes() if ".." not in relative and cached.is_file() else \
                urllib.request.urlopen(f"{MAVEN_CENTRAL}/{relative}", timeout=60).read()
        except urllib.error.HTTPError as error:
            self.send_response(error.code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_hadoop_prepare_from_a_mirror_that_needs_credentials_runs_in_the_maven_variant(maven_image, tmp_path):
    client = maven_image
    password = "mirror-password-2718"
    CredentialCheckingMirror.expected = "Basic " + base64.b64encode(f"reader:{password}".encode()).decode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CredentialCheckingMirror)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mirror = f"http://127.0.0.1:{server.server_address[1]}/maven2"
    machines = [{"hostname": "m1", "hostip": "10.1.0.1", "machine-type": "standard", "k8s-role": "master", "etcdid": "e1",
                 "pai-master": "true", "pai-worker": "true"}]  # hadoop.prepare configures its roles there
    config = write_configuration(tmp_path / "config", machines, services={"hadoop": {
        "hadoop-version": HADOOP_VERSION, "hadoop-maven-repository": mirror,
        "hadoop-maven-username": "reader", "hadoop-maven-password": password}})
    state, cache = tmp_path / "state", tmp_path / "cache"
    state.mkdir()
    cache.mkdir()
    subprocess.run(["chown", "-R", f"{UID}:{UID}", str(tmp_path)], check=True)
    volumes = {str(config): {"bind": "/cluster-configuration", "mode": "ro"},
               str(state): {"bind": "/root/.openi", "mode": "rw"},
               str(cache): {"bind": "/var/cache/openi-tasks", "mode": "rw"}}
    try:
        code, output = run(client, "id -u && inv hadoop.prepare -p /cluster-configuration", volumes,
                           tag=MAVEN_TAG, network_mode="host")
    finally:
        server.shutdown()
    assert code == 0, output
    assert output.splitlines()[0] == str(UID)
    tarballs = list(state.rglob(f"hadoop-{HADOOP_VERSION}.tar.gz"))
    assert len(tarballs) == 1 and tarballs[0].stat().st_uid == UID, (sorted(state.rglob("*")), output)
    answered = [path for path, authorization in CredentialCheckingMirror.seen if authorization == CredentialCheckingMirror.expected]
    assert any(path.endswith(f"hadoop-common-{HADOOP_VERSION}.jar") for path in answered), CredentialCheckingMirror.seen[:10]
    assert password not in output
