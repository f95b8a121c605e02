"""The platform's services on a real cluster: a testbed of its own (one master, two workers,
Kubernetes from the bundle built from its Go modules), the platform's images built by
`images.build` from Debian's packages and pushed to the testbed's registry, and `services.*` run as
an operator runs them, against the real API server and real pods.

What runs here for real: cluster-configuration (the pull secret the nodes pull with, the host
configuration maps), ZooKeeper, Prometheus, node-exporter and pylon (nginx) from Debian's packages,
and the cleaning DaemonSet wiping the data path on every node. OpenPAI's rest-server and webportal
and Grafana are not built here: a STAND-IN image answers in their place (see the README).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from openi_tasks.config import load_cluster
from openi_tasks.state import StateDir
from openi_tasks.testbed.testbed import Testbed

from .cluster import Kube, deployed
from .conftest import ROOT

pytestmark = pytest.mark.testbed

NODES = ["master1", "worker1", "worker2"]
NAMESPACE = "default"


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    testbed = Testbed(tmp_path_factory.mktemp("services") / "testbed", say=lambda message: None)
    try:
        config = testbed.up(masters=1, workers=2, proxy=False)
        cluster = load_cluster(config)
        deployed(cluster)
        kube = Kube(StateDir.of(cluster).admin_conf)
        kube.wait_ready(NODES, cluster.kubernetes.kubernetes_version)
        yield testbed, config, kube
    finally:
        testbed.down()


def openi(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
                            capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.args, result.stdout[-4000:], result.stderr[-4000:])
    return result.stdout


def zookeeper_says(address: str, word: str = "ruok") -> str:
    with socket.create_connection((address, 2181), timeout=5) as sock:
        sock.sendall(word.encode())
        return sock.recv(100).decode()


def test_images_are_built_from_debian_packages_and_pushed(bed):
    _, config, _ = bed
    for name in ("zookeeper", "cleaning-image", "prometheus", "node-exporter", "nginx", "service-stand-in"):
        out = ok(openi("images.build", "-p", str(config), "--name", name))
        assert name in out
        ok(openi("images.push", "-p", str(config), "--name", name))


def test_deploy_zookeeper_with_its_prerequisites(bed):
    testbed, config, kube = bed
    out = ok(openi("services.deploy", "-p", str(config), "--service", "zookeeper", "--with-prerequisites"))
    assert "cluster-configuration: ready" in out and "zookeeper: ready" in out
    cluster = load_cluster(config)
    # The pull secret made by cluster-configuration is what the nodes pulled the image with.
    pods = kube.core.list_namespaced_pod(NAMESPACE, label_selector="app=zookeeper").items
    assert [p.spec.node_name for p in pods] == ["master1"]  # only the zkid host
    assert pods[0].spec.image_pull_secrets[0].name == cluster.services.cluster.docker_registry_info.secret_name
    assert pods[0].status.container_statuses[0].image.startswith(testbed.state.registry)
    # hostNetwork: ZooKeeper answers on the host's own address, from this machine.
    assert zookeeper_says(cluster.by_name["master1"].address) == "imok"


def test_prometheus_scrapes_node_exporter_on_every_flagged_node(bed):
    _, config, kube = bed
    ok(openi("services.deploy", "-p", str(config), "--service", "prometheus", "--with-prerequisites"))
    cluster = load_cluster(config)
    port = cluster.services.prometheus.prometheus_port
    base = f"http://{cluster.platform_master().address}:{port}/prometheus"
    assert requests.get(f"{base}/-/ready", timeout=5).status_code == 200
    flagged = sorted(f"{m.address}:{cluster.services.prometheus.node_exporter_port}" for m in cluster.flagged("node-exporter"))
    assert len(flagged) == 3
    deadline = time.monotonic() + 120
    while True:  # the first scrape comes within a scrape interval
        targets = requests.get(f"{base}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        up = sorted(t["labels"]["instance"] for t in targets if t["labels"]["job"] == "node-exporter" and t["health"] == "up")
        if up == flagged:
            break
        assert time.monotonic() < deadline, targets
        time.sleep(3)
    nodes = {p.spec.node_name for p in kube.core.list_namespaced_pod(NAMESPACE, label_selector="app=node-exporter").items}
    assert nodes == set(NODES)


def test_pylon_is_the_entry_point_to_prometheus(bed):
    """pylon (nginx from Debian's packages, its nginx.conf a ConfigMap) on the pai-master host's port,
    routing /prometheus/ to the real Prometheus deployed above."""
    _, config, kube = bed
    ok(openi("services.deploy", "-p", str(config), "--service", "pylon"))
    cluster = load_cluster(config)
    entry = f"http://{cluster.platform_master().address}:{cluster.services.pylon.port}"
    assert requests.get(f"{entry}/healthz", timeout=5).text == "ok\n"
    ready = requests.get(f"{entry}/prometheus/-/ready", timeout=5)
    assert ready.status_code == 200 and "Ready" in ready.text, ready.text
    targets = requests.get(f"{entry}/prometheus/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    assert {t["labels"]["job"] for t in targets} >= {"node-exporter"}, targets
    nodes = {p.spec.node_name for p in kube.core.list_namespaced_pod(NAMESPACE, label_selector="app=pylon").items}
    assert nodes == {"master1"}


def test_pylon_routes_to_the_service_stand_ins(bed):
    """OpenPAI's rest-server and webportal and Grafana are not built here: the testbed runs the
    service STAND-IN image in their place, with their shipped manifests; pylon routes to each."""
    _, config, kube = bed
    for service in ("rest-server", "webportal", "grafana"):
        ok(openi("services.deploy", "-p", str(config), "--service", service))
    cluster = load_cluster(config)
    entry = f"http://{cluster.platform_master().address}:{cluster.services.pylon.port}"
    for path, port, seen in (("/rest-server/api/v1", cluster.services.restserver.server_port, "GET /api/v1"),
                             ("/grafana/api/health", cluster.services.grafana.grafana_port, "GET /grafana/api/health"),
                             ("/", cluster.services.webportal.server_port, "GET /")):
        answer = requests.get(entry + path, timeout=5)
        assert answer.status_code == 200 and f"STAND-IN (not the real service) on port {port}: {seen}" in answer.text, \
            (path, answer.status_code, answer.text)
    pods = kube.core.list_namespaced_pod(NAMESPACE, label_selector="app in (rest-server, webportal, grafana)").items
    assert len(pods) == 3 and {p.spec.node_name for p in pods} == {"master1"}


def test_a_second_deploy_changes_nothing_and_restarts_nothing(bed):
    _, config, kube = bed
    before = {p.metadata.uid: p.status.container_statuses[0].restart_count
              for p in kube.core.list_namespaced_pod(NAMESPACE, label_selector="app=zookeeper").items}
    out = ok(openi("services.deploy", "-p", str(config), "--service", "zookeeper", "--with-prerequisites"))
    assert "every service is already as configured: no changes" in out
    after = {p.metadata.uid: p.status.container_statuses[0].restart_count
             for p in kube.core.list_namespaced_pod(NAMESPACE, label_selector="app=zookeeper").items}
    assert after == before


def test_status_shows_each_workload_ready_and_where(bed):
    _, config, _ = bed
    out = ok(openi("services.status", "-p", str(config)))
    row = next(line for line in out.splitlines() if "zookeeper-1" in line)
    assert "1/1" in row and "master1" in row and "not ready" not in row


def test_clean_wipes_the_data_path_on_every_node_and_removes_everything(bed):
    testbed, config, kube = bed
    data = load_cluster(config).services.cluster.data_path
    for name in NODES:
        code, output = testbed.node(name).exec(f"mkdir -p {data}/job && echo x > {data}/job/file && "
                                               f"touch {data}/'a b' && ls {data}")
        assert code == 0 and "job" in output, output
    out = ok(openi("services.clean", "-p", str(config), "--yes"))
    assert "cleaning: wiping the platform's data on every node" in out
    for name in NODES:
        code, output = testbed.node(name).exec(f"ls -A {data}")
        assert code == 0 and output.strip() == "", (name, output)
    # Nothing of the platform is left: no workload, no cleaning DaemonSet, no pull secret.
    deadline = time.monotonic() + 120
    while kube.core.list_namespaced_pod(NAMESPACE, label_selector="app in (zookeeper, cleaning, prometheus, "
                                                                  "node-exporter, pylon, rest-server, "
                                                                  "webportal, grafana)").items:
        assert time.monotonic() < deadline, "pods still there 120 s after clean"
        time.sleep(2)
    apps = kube.apps
    assert not apps.list_namespaced_deployment(NAMESPACE, label_selector="app=zookeeper").items
    assert not apps.list_namespaced_daemon_set(NAMESPACE, label_selector="app=cleaning").items
    secret = load_cluster(config).services.cluster.docker_registry_info.secret_name
    assert secret not in [s.metadata.name for s in kube.core.list_namespaced_secret(NAMESPACE).items]


def test_a_second_clean_changes_nothing(bed):
    _, config, _ = bed
    out = ok(openi("services.clean", "-p", str(config), "--yes"))
    assert "zookeeper: removed (0 object(s))" in out
    assert "cluster-configuration: removed (0 object(s))" in out


def test_a_service_whose_image_cannot_be_pulled_fails_with_the_kubelets_reason(bed, tmp_path):
    testbed, config, _ = bed
    broken = Path(config).parent / "broken-configuration"
    subprocess.run(["cp", "-r", str(config), str(broken)], check=True)
    services = broken / "services-configuration.yaml"
    services.write_text(services.read_text().replace("docker-tag: testbed", "docker-tag: no-such-tag"))
    started = time.monotonic()
    result = openi("services.deploy", "-p", str(broken), "--service", "zookeeper", "--with-prerequisites")
    assert result.returncode != 0
    assert "zookeeper" in result.stderr and ("ErrImagePull" in result.stderr or "ImagePullBackOff" in result.stderr), \
        result.stderr[-3000:]
    assert "openi/zookeeper:no-such-tag" in result.stderr, result.stderr[-3000:]
    assert time.monotonic() - started < 900
    # Cleaned with the working configuration: the broken one names a cleaning image that does not exist either.
    ok(openi("services.clean", "-p", str(config), "--yes"))
