"""The testbed: real nodes with sshd and dockerd, a registry, a mirror, and fault helpers."""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path

import docker
import pytest
import requests

from openi_tasks.bundle.manifest import Manifest
from openi_tasks.config import load_cluster
from openi_tasks.config.generate import write_configuration
from openi_tasks.ssh import Inventory
from openi_tasks.testbed import testbed as tb
from openi_tasks.testbed.testbed import LABEL, SUDO_USER, sshd_answers

from .test_services import check_catalog, with_hadoop

pytestmark = pytest.mark.testbed


def _configuration(testbed: tb.Testbed, tmp_path: Path, as_sudo_user: bool) -> Path:
    """The testbed's machines, all logging in as root with the key, or all as the sudo user."""
    cluster = load_cluster(testbed.config_dir)
    password = (testbed.workdir / "secrets" / "sudo-password").read_text().strip()
    machines = []
    for m in cluster.machines:
        entry = {"hostname": m.hostname, "hostip": m.address, "machine-type": "standard", "k8s-role": m.role}
        if m.etcdid:
            entry["etcdid"] = m.etcdid
        machines.append(entry)
    defaults = (
        {"username": SUDO_USER, "password": password}
        if as_sudo_user
        else {"username": "root", "ssh-key": str(testbed.workdir / "secrets" / "id_ed25519")}
    )
    return write_configuration(
        tmp_path / ("sudo" if as_sudo_user else "root"),
        machines,
        defaults=defaults,
        operator={"known-hosts": str(testbed.workdir / "secrets" / "known_hosts")},
        kubernetes={"load-balance-ip": cluster.endpoint.address},
    )


def test_generated_configuration_is_valid_and_points_at_the_testbed(testbed):
    cluster = load_cluster(testbed.config_dir)
    state = testbed.state
    assert [m.hostname for m in cluster.masters] == ["master1", "master2", "master3"]
    assert [m.etcdid for m in cluster.masters] == ["etcd1", "etcd2", "etcd3"]
    assert cluster.endpoint.mode == "proxy" and cluster.endpoint.host == "proxy"
    k = cluster.kubernetes
    assert cluster.etcd_image == f"{state.registry}/etcd:{k.etcd_version}"
    assert k.docker_install_source == "os-package" and k.docker_registry == state.registry
    # Kubernetes from the bundle built from source, whose manifest lists every image in the registry.
    assert k.package_source == "binaries"
    manifest = Manifest.read(Path(k.binaries_dir))
    assert manifest.kubernetes_version == k.kubernetes_version and manifest.origin == "source"
    assert {b.path for b in manifest.binaries} >= {"kubeadm", "kubelet", "kubectl", "cni/bridge"}
    refs = {i.ref for i in manifest.images}
    assert cluster.etcd_image in refs and f"{state.registry}/kube-apiserver:{k.kubernetes_version}" in refs
    for ref in refs:  # each is in the testbed's registry, pulled by the digest it has there
        repository, tag = ref.rsplit(":", 1)
        assert requests.get(f"https://{state.registry}/v2/{repository.split('/', 1)[1]}/manifests/{tag}",
                            verify=str(testbed.workdir / "secrets" / "ca" / "ca.crt"), timeout=10,
                            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}).ok, ref
    assert k.cluster_dns is not None and str(k.cluster_dns) != ""
    assert cluster.services.cluster.docker_registry_info.docker_registry_domain == state.registry
    assert {m.address for m in cluster.machines} == {n.address for n in state.nodes}
    assert (Path(testbed.config_dir) / "cluster-configuration.yaml").stat().st_mode & 0o077 == 0


def test_the_service_catalog_renders_for_the_testbed_and_places_by_its_flags(testbed, tmp_path, monkeypatch):
    """The whole catalog against the testbed's own configuration (through the FAKE Kubernetes API)."""
    monkeypatch.setenv("OPENI_STATE_DIR", str(tmp_path / "state"))
    directory = Path(shutil.copytree(testbed.config_dir, tmp_path / "config"))
    placed = check_catalog(with_hadoop(directory, tmp_path))
    assert placed["zookeeper-1"] == ("master1",)
    assert set(placed["node-exporter"]) == {"master1", "master2", "master3", "worker1", "worker2"}
    assert placed["hadoop-nodemanager"] == ("worker1", "worker2")


@pytest.mark.parametrize("as_sudo_user", [False, True], ids=["root-with-key", "sudo-user-with-password"])
def test_every_node_answers_ssh_as_both_users_and_sudo_works(testbed, tmp_path, as_sudo_user):
    cluster = load_cluster(_configuration(testbed, tmp_path, as_sudo_user))
    with Inventory(cluster) as inventory:
        results = inventory.map(inventory.hosts(), 
            lambda h: (h.sh("id -un", sudo=False).stdout.strip(), h.sh("id -un").stdout.strip(),
                       h.sh("hostname", sudo=False).stdout.strip())
        )
    assert not results.failed, results.failed
    user = SUDO_USER if as_sudo_user else "root"
    assert {h.name: r for h, r in results.items()} == {h.name: (user, "root", h.name) for h in results}


def test_each_node_has_its_own_docker(testbed):
    cluster = load_cluster(testbed.config_dir)
    image = f"{testbed.state.registry}/debian:bookworm"
    with Inventory(cluster) as inventory:
        hosts = [h for h in inventory.hosts() if h.name != "worker2"]  # worker2 is bare
        started = inventory.map(hosts, 
            lambda h: h.sh(f"docker run -d --name marker-{h.name} {image} sleep 600", check=True)
        )
        assert not started.failed, started.failed
        listed = inventory.map(hosts, lambda h: h.sh("docker ps --format '{{.Names}}'", check=True).stdout.split())
        inventory.map(hosts, lambda h: h.sh(f"docker rm -f marker-{h.name}"))
    assert {h.name: names for h, names in listed.items()} == {h.name: [f"marker-{h.name}"] for h in hosts}


def test_nothing_on_the_testbed_reaches_past_this_machine(testbed):
    """The testbed's network is internal: a node's connection to an address outside it (TEST-NET-1,
    which nothing serves) fails, as on a closed network; before, this machine's network accepted
    it. The registry, on the testbed's network, is reached."""
    node = testbed.node("worker1")
    code, out = node.exec("timeout 5 bash -c 'echo > /dev/tcp/192.0.2.1/80' && echo connected || echo failed")
    assert out.strip().splitlines()[-1] == "failed", out
    registry = testbed.state.registry.replace(":", "/")
    code, out = node.exec(f"timeout 5 bash -c 'echo > /dev/tcp/{registry}' && echo connected || echo failed")
    assert out.strip().splitlines()[-1] == "connected", out


def test_apt_on_a_node_asks_only_the_testbeds_mirror(testbed):
    """apt-get update reads the mirror and nothing else, at once (a source out of reach made every
    deploy's install of kubelet's prerequisites wait 87 s for it)."""
    started = time.monotonic()
    code, out = testbed.node("worker1").exec("apt-get update 2>&1")
    assert code == 0 and "Failed to fetch" not in out and "deb.debian.org" not in out, out
    assert testbed.state.mirror.split("//")[1] in out, out
    assert time.monotonic() - started < 30, out


def test_an_image_pushed_to_the_registry_is_pulled_by_every_node(testbed):
    client = docker.from_env()
    registry = testbed.state.registry
    reference = f"{registry}/openi/pull-test:{secrets.token_hex(4)}"
    base = client.images.get(testbed.state.images["base"])
    base.tag(reference)
    pushed = [line for line in client.images.push(reference, stream=True, decode=True)]
    digest = next(line["aux"]["Digest"] for line in pushed if "aux" in line)
    client.images.remove(reference)
    cluster = load_cluster(testbed.config_dir)
    by_digest = f"{reference.rsplit(':', 1)[0]}@{digest}"
    with Inventory(cluster) as inventory:
        hosts = [h for h in inventory.hosts() if h.name != "worker2"]
        pulled = inventory.map(hosts, 
            lambda h: h.sh(f"docker pull -q {by_digest} >/dev/null && docker image inspect --format '{{{{.Id}}}}' {by_digest}",
                           check=True).stdout.strip()
        )
    assert not pulled.failed, pulled.failed
    assert set(pulled.values()) == {base.id}


def test_the_bare_node_has_no_docker_but_can_install_from_the_testbed_mirror(testbed):
    cluster = load_cluster(testbed.config_dir)
    with Inventory(cluster) as inventory:
        bare = inventory.host("worker2")
        assert bare.sh("command -v docker dockerd").exited != 0
        bare.sh("apt-get update -qq", check=True)
        policy = bare.sh("apt-cache policy docker.io", check=True).stdout
    assert testbed.state.mirror in policy and "Candidate: (none)" not in policy


def test_status_reports_sshd_and_dockerd_per_node(testbed):
    rows = {row["node"]: row for row in testbed.status()}
    assert set(rows) == {"master1", "master2", "master3", "proxy", "worker1", "worker2"}
    assert all(row["sshd"] == "yes" and row["container"] == "running" for row in rows.values())
    assert rows["worker2"]["dockerd"] == "not installed" and rows["worker2"]["role"] == "worker (bare)"
    assert all(row["dockerd"].startswith("yes") for name, row in rows.items() if name != "worker2")


def test_up_again_reuses_the_running_testbed_and_refuses_another_layout(testbed):
    start = time.monotonic()
    assert testbed.up(masters=3, workers=2, proxy=True, bare=1) == Path(testbed.config_dir)
    assert time.monotonic() - start < 60
    with pytest.raises(tb.TestbedError, match="another layout"):
        testbed.up(masters=1, workers=0, proxy=False)


def test_fault_helpers(testbed):
    node = testbed.node("worker1")
    address = node.info.address
    node.disconnect()
    assert not sshd_answers(address)
    node.connect()
    assert sshd_answers(address, timeout=5)

    node.pause()
    assert not sshd_answers(address)
    node.unpause()
    assert sshd_answers(address, timeout=5)

    node.exec("nohup sleep 1000 >/dev/null 2>&1 &")
    time.sleep(0.3)
    assert node.kill("sleep") == 1
    assert node.exec("pgrep -x sleep")[0] != 0

    node.fill_disk("/var/lib/openi-fill-test", size_mb=8)
    write = "dd if=/dev/zero of=/var/lib/openi-fill-test/more bs=1k count=64"
    code, output = node.exec(write)
    assert code != 0 and "No space left on device" in output
    node.free_disk("/var/lib/openi-fill-test")
    assert node.exec(write)[0] == 0

    node.stop()
    assert node.container.status == "exited" and not sshd_answers(address)
    node.start()
    assert sshd_answers(address, timeout=5)


def test_down_removes_everything_it_made_and_nothing_else(tmp_path):
    client = docker.from_env()

    def inventory():
        return (
            {c.name for c in client.containers.list(all=True)},
            {n.name for n in client.networks.list()},
            {v.name for v in client.volumes.list()},
        )

    before = inventory()
    bed = tb.Testbed(tmp_path / "small", say=lambda message: None)
    config_dir = bed.up(masters=1, workers=0, proxy=False)
    assert load_cluster(config_dir).endpoint.mode == "single"
    during = inventory()
    assert all(during[i] > before[i] for i in range(3))
    certs = Path("/etc/docker/certs.d") / bed.state.registry
    assert certs.is_dir()
    bed.down()
    assert inventory() == before
    assert not certs.exists() and not (tmp_path / "small").exists()
    assert not client.containers.list(all=True, filters={"label": f"{LABEL}={bed.id}"})
