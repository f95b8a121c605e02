"""images.build and images.push with real Docker, the testbed's registry, and a registry with auth."""

from __future__ import annotations

import io
import re
import secrets
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import docker
import pytest
from rich.console import Console

from openi_tasks.config import load_cluster
from openi_tasks.config.generate import write_configuration
from openi_tasks.dockerbuild import ImageBuildFailed
from openi_tasks.images.build import ImageBuilder
from openi_tasks.images.catalog import load_images
from openi_tasks.images.push import PushFailed, push
from openi_tasks.ssh import Inventory
from openi_tasks.report import Reporter

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


@pytest.fixture
def auth_registry(testbed):
    """A registry on this machine's loopback that wants a user name and password (plain HTTP:
    Docker allows that for 127.0.0.0/8)."""
    client = docker.from_env()
    password = "pw-" + secrets.token_hex(8)
    htpasswd = f"pusher:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
    config = (
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\n"
        "http:\n  addr: :5000\nauth:\n  htpasswd:\n    realm: openi-test\n    path: /auth/htpasswd\n"
    )
    container = client.containers.create(
        testbed.state.images["registry"], ["/usr/bin/docker-registry", "serve", "/auth/config.yml"],
        ports={"5000/tcp": ("127.0.0.1", 5999)}, labels={"openi.test": "auth-registry"},
    )
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, text in (("auth/htpasswd", htpasswd), ("auth/config.yml", config)):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    container.put_archive("/", archive.getvalue())
    container.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen("http://127.0.0.1:5999/v2/", timeout=1)
        except urllib.error.HTTPError:  # 401: up, and asking for credentials
            break
        except OSError:
            time.sleep(0.3)
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
