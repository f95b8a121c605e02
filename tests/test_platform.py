"""The whole platform on real nodes, brought up as the README's first command brings it up
(`inv testbed.demo`): a testbed of 3 masters, the proxy and 2 workers (worker1 a GPU node of
STAND-INS), Kubernetes from the bundle built from its Go modules, then hadoop.prepare,
images.build, images.push and services.deploy of the whole catalog, each as its own command.

What runs here for real: cluster-configuration (the pull secret the nodes pull with, the host
configuration maps), ZooKeeper, Prometheus, node-exporter and pylon (nginx) from Debian's packages,
Hadoop's HDFS and YARN (assembled from its artifacts on Maven Central) running a MapReduce job,
the end-to-end Job, and the cleaning DaemonSet wiping the data path on every node. OpenPAI's
rest-server, webportal and frameworklauncher and Grafana are not built here: a STAND-IN image
answers in their place (see docs/services.md). Kubernetes' own conformance suite (quick) runs on
the same cluster. Last, the whole catalog's placement rules on GPU nodes that KWOK simulates
beside the real ones: their pods are placed by the real scheduler but only played, not run.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import requests
import yaml

from openi_tasks.config import load_cluster
from openi_tasks.services.api import PULL_PATIENCE
from openi_tasks.state import StateDir

from .cluster import NotYet, failure, Kube, run_command, wait_for
from .conftest import ROOT

pytestmark = pytest.mark.testbed

NODES = ["master1", "master2", "master3", "proxy", "worker1", "worker2"]
NAMESPACE = "default"
PLATFORM = ("cluster-configuration", "drivers", "zookeeper", "hadoop-service", "frameworklauncher", "rest-server",
            "webportal", "prometheus", "grafana", "pylon", "end-to-end-test")


def openi(*args: str, timeout: float = 1800, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = run_command([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args], timeout, env)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result


def ok(result: subprocess.CompletedProcess) -> str:
    if result.returncode != 0:  # raised, not asserted: pytest shortens an assertion's message
        raise AssertionError(failure(result))
    return result.stdout


class Platform:
    """The demo's testbed: its work directory, configuration, cluster and the demo's output."""

    def __init__(self, workdir: Path) -> None:
        from openi_tasks.testbed.testbed import Testbed

        self.workdir = workdir
        self.testbed = Testbed(workdir)
        self.config = workdir / "cluster-configuration"
        self.outputs: list[tuple[float, str]] = []
        self.tried = False

    def demo(self) -> str:
        self.tried = True
        started = time.monotonic()
        out = ok(openi("testbed.demo", "--workdir", str(self.workdir), timeout=3600))
        self.outputs.append((time.monotonic() - started, out))
        return out

    @property
    def cluster(self):
        return load_cluster(self.config)

    @property
    def kube(self) -> Kube:
        return Kube(StateDir.of(self.cluster).admin_conf)


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """The demo, run once for the module; the testbed removed at its end. If the demo fails, every
    test of the module fails with its output."""
    bed = Platform(tmp_path_factory.mktemp("platform") / "testbed")
    try:
        yield bed
    finally:
        bed.testbed.down()


@pytest.fixture
def bed(platform):
    """The testbed after the demo (run here if the first test did not run it)."""
    if not platform.outputs:
        if platform.tried:
            pytest.fail("the demo failed (see the first test of this module): nothing to test on", pytrace=False)
        platform.demo()
    return platform.testbed, platform.config, platform.kube


def no_pods_left(kube, label_selector: str = "", timeout: float = 120) -> None:
    """Until the namespace has no pod (of the selector): a clean's pods take their grace period to go."""
    deadline = time.monotonic() + timeout
    while pods := kube.core.list_namespaced_pod(NAMESPACE, label_selector=label_selector).items:
        assert time.monotonic() < deadline, f"pods still there {timeout:.0f} s after clean: " + \
            ", ".join(f"{p.metadata.name} on {p.spec.node_name}" for p in pods)
        time.sleep(2)


def zookeeper_says(address: str, word: str = "ruok") -> str:
    with socket.create_connection((address, 2181), timeout=5) as sock:
        sock.sendall(word.encode())
        return sock.recv(100).decode()


def test_the_demo_brings_up_every_node_and_the_whole_catalog(platform):
    """testbed.up, k8s.deploy, hadoop.prepare, images.build, images.push, services.deploy with no
    --service: every step passes, every node is Ready, every service of the catalog is ready (the
    stand-ins the configuration runs built and pushed without --name), and the demo ends with the
    nodes and where the services answer."""
    out = platform.demo()
    for step in ("testbed.up", "k8s.deploy", "hadoop.prepare", "images.build", "images.push", "services.deploy"):
        assert f"$ inv {step}" in out, (step, out[-3000:])
    cluster = platform.cluster
    nodes = platform.kube.wait_ready(NODES, cluster.kubernetes.kubernetes_version, timeout=10)
    assert all(n["ready"] for n in nodes.values())
    for name in NODES:
        assert re.search(rf"│ {name}\s+│ Ready\s+│ {re.escape(cluster.kubernetes.kubernetes_version)}", out), (name, out[-3000:])
    for service in PLATFORM:
        assert re.search(rf"^{service}: ready", out, re.M), (service, out[-6000:])
    entry = f"http://{cluster.platform_master().address}:{cluster.services.pylon.port}"
    assert f"{entry}/prometheus/" in out and f"http://{cluster.platform_master().address}:9870/" in out
    assert "service-stand-in" in out  # built and pushed because the configuration runs it
    status = ok(openi("services.status", "-p", str(platform.config)))
    assert "not ready" not in status, status


def test_zookeeper_runs_on_its_zkid_host_and_answers(bed):
    testbed, config, kube = bed
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
    cluster = load_cluster(config)
    port = cluster.services.prometheus.prometheus_port
    base = f"http://{cluster.platform_master().address}:{port}/prometheus"
    assert requests.get(f"{base}/-/ready", timeout=5).status_code == 200
    flagged = sorted(f"{m.address}:{cluster.services.prometheus.node_exporter_port}" for m in cluster.flagged("node-exporter"))
    assert len(flagged) == 5  # the masters and the workers, not the proxy
    deadline = time.monotonic() + 120
    while True:  # the first scrape comes within a scrape interval
        targets = requests.get(f"{base}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        up = sorted(t["labels"]["instance"] for t in targets if t["labels"]["job"] == "node-exporter" and t["health"] == "up")
        if up == flagged:
            break
        assert time.monotonic() < deadline, targets
        time.sleep(3)
    nodes = {p.spec.node_name for p in kube.core.list_namespaced_pod(NAMESPACE, label_selector="app=node-exporter").items}
    assert nodes == {m.hostname for m in cluster.flagged("node-exporter")}


def test_pylon_is_the_entry_point_to_prometheus(bed):
    """pylon (nginx from Debian's packages, its nginx.conf a ConfigMap) on the pai-master host's port,
    routing /prometheus/ to the real Prometheus deployed above."""
    _, config, kube = bed
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


HOST_GPU_STATE = "ls -la /run/nvidia 2>&1; cat /etc/openi-testbed/gpu-count; ls /lib/modules 2>&1; " \
                 "grep -c nvidia /proc/modules || true"


def test_the_drivers_service_leaves_a_working_host_driver_alone(bed):
    """worker1 is a GPU node of STAND-INS whose nvidia-smi reports driver 999.99.99: k8s.deploy
    labelled it with that driver, and the drivers service runs no driver container there (it
    would unload the host's driver), says so, and names the configured version that differs."""
    testbed, config, kube = bed
    labels = kube.nodes()["worker1"]["labels"]
    assert labels["openi-gpu"] == "true" and labels["openi-nvidia-driver"] == "999.99.99", labels
    assert "openi-nvidia-driver" not in kube.nodes()["worker2"]["labels"]
    gpu = testbed.node("worker1")
    before = gpu.exec(HOST_GPU_STATE)
    out = ok(openi("services.deploy", "-p", str(config), "--service", "drivers"))
    assert "worker1: NVIDIA driver 999.99.99 works on the host: left alone (no unload, no install)" in out, out
    wanted = load_cluster(config).services.cluster.nvidia_drivers_version
    if wanted:
        assert f"the configuration says nvidia-drivers-version {wanted}" in out, out
    daemonset = kube.apps.read_namespaced_daemon_set("drivers", NAMESPACE)
    assert daemonset.status.desired_number_scheduled == 0
    assert kube.core.list_namespaced_pod(NAMESPACE, label_selector="app=drivers").items == []
    assert gpu.exec(HOST_GPU_STATE) == before


def test_hadoop_assembled_from_maven_runs_hdfs_yarn_and_a_job_in_a_virtual_clusters_queue(bed, platform):
    """Real Hadoop: the demo's hadoop.prepare assembled Hadoop's runtime from its artifacts on Maven
    Central (hadoop-maven-repository in the testbed's configuration), images.build made hadoop-run of
    it, and hadoop-service runs the daemons on the flagged nodes. The NameNode leaves safe mode, both
    workers' DataNodes and NodeManagers register, and MapReduce's sleep job, submitted to the
    virtual cluster vc1's queue from the resource manager's pod, runs to completion in that queue."""
    _, config, kube = bed
    cluster = load_cluster(config)
    assert "Hadoop 3.5.0" in platform.outputs[0][1]
    master = cluster.platform_master().address
    workers = sorted(m.hostname for m in cluster.flagged("pai-worker"))
    assert workers == ["worker1", "worker2"]

    def namenode():
        info = requests.get(f"http://{master}:9870/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo",
                            timeout=5).json()["beans"][0]
        live = sorted(name.split(":")[0] for name in json.loads(info["LiveNodes"]))
        return info if info["Safemode"] == "" and live == workers else None

    wait_for("the NameNode out of safe mode with a live DataNode on each worker", namenode, timeout=180)

    def node_managers():
        nodes = (requests.get(f"http://{master}:8088/ws/v1/cluster/nodes", timeout=5).json()["nodes"] or {}).get("node", [])
        running = sorted(n["nodeHostName"] for n in nodes if n["state"] == "RUNNING")
        seen = "; ".join(f"{n['nodeHostName']} {n['state']} {n.get('healthReport', '')}" for n in nodes)
        return running if running == workers else NotYet(seen or "no NodeManager registered")

    wait_for("a running NodeManager on each worker", node_managers, timeout=180)
    pod = kube.core.list_namespaced_pod(NAMESPACE, label_selector="app=hadoop-resourcemanager").items[0]
    tests_jar = "/usr/local/hadoop/share/hadoop/mapreduce/hadoop-mapreduce-client-jobclient-3.5.0-tests.jar"
    output = kube.exec(pod.metadata.name, [
        "sh", "-c", f"HADOOP_CLASSPATH={tests_jar} hadoop org.apache.hadoop.mapreduce.SleepJob "
        "-Dmapreduce.job.queuename=vc1 -Dyarn.app.mapreduce.am.resource.mb=1024 "
        "-Dmapreduce.map.memory.mb=1024 -Dmapreduce.reduce.memory.mb=1024 -m 1 -r 1 -mt 100 -rt 100 2>&1"])
    apps = requests.get(f"http://{master}:8088/ws/v1/cluster/apps", timeout=5).json()["apps"]["app"]
    sleep = [(a["queue"], a["state"], a["finalStatus"]) for a in apps if a["name"] == "Sleep job"]
    assert sleep == [("root.vc1", "FINISHED", "SUCCEEDED")], (sleep, output[-3000:])


# On a new machine the bundle step compiles e2e.test and the tests' images (about 10 minutes on 2
# cores once the cluster's own binaries are built; the run takes 2 to 3 minutes).
@pytest.mark.timeout(2400)
def test_conformance_quick_passes_air_gapped(bed, tmp_path):
    """Kubernetes' own conformance suite, quick mode, from the bundle: e2e.test and ginkgo built
    from k8s.io/kubernetes' Go modules, the tests' images built here and pushed to the cluster's
    registry (k8s.bundle --from-source --conformance --push), then k8s.conformance."""
    _, config, _ = bed
    bundle = ok(openi("k8s.bundle", "-p", str(config), "--from-source", "--conformance", "--push", timeout=3600))
    assert "conformance/e2e.test" in bundle and "e2e-test-images/agnhost" in bundle, bundle[-3000:]
    out = tmp_path / "conformance"
    scratch = tmp_path / "operator-tmp"  # the operator's temporary directory: the suite leaves nothing in it
    scratch.mkdir()
    result = openi("k8s.conformance", "-p", str(config), "--mode", "quick", "--out", str(out), timeout=1800,
                   env={**os.environ, "TMPDIR": str(scratch)})
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0 and summary == "conformance: 48 passed, 0 failed, 0 skipped", \
        (summary, result.stdout[-3000:], result.stderr[-3000:], (out / "e2e.log").read_text()[-6000:])
    junit = ElementTree.parse(out / "junit_01.xml").getroot()
    cases = [c for c in junit.iter("testcase") if "[Conformance]" in c.get("name", "")]
    ran = [c for c in cases if c.find("skipped") is None]
    assert len(ran) == 48 and not [c for c in ran if c.find("failure") is not None or c.find("error") is not None]
    assert (out / "e2e.log").stat().st_size > 10_000 and (out / "ginkgo" / "report.json").is_file()
    assert not list(scratch.iterdir()), sorted(p.name for p in scratch.iterdir())[:10]


def test_a_second_demo_changes_nothing_restarts_nothing_and_is_quick(platform, bed):
    """The README's first command, run again: every step finds everything as configured."""
    _, _, kube = bed
    before = {p.metadata.uid: [c.restart_count for c in p.status.container_statuses or []]
              for p in kube.core.list_namespaced_pod(NAMESPACE).items}
    out = platform.demo()
    assert "everything is already as configured: no changes" in out, out[-4000:]  # k8s.deploy
    assert "every service is already as configured: no changes" in out, out[-4000:]
    assert f"node labels: 0 of {len(NODES)} node(s) changed" in out, out[-4000:]
    after = {p.metadata.uid: [c.restart_count for c in p.status.container_statuses or []]
             for p in kube.core.list_namespaced_pod(NAMESPACE).items}
    assert after == before
    (first, _), (second, _) = platform.outputs[0], platform.outputs[-1]
    print(f"\ndemo: {first:.0f} s, again: {second:.0f} s")
    assert second < first / 3, (first, second)


def test_hadoop_reconfigure_makes_a_new_virtual_cluster_a_queue_of_the_running_resourcemanager(bed):
    """hadoop.reconfigure: a virtual cluster added to the configuration is a queue of the running
    ResourceManager, with the capacity asked for."""
    _, config, kube = bed
    master = load_cluster(config).platform_master().address
    changed = Path(config).parent / "reconfigured-configuration"
    subprocess.run(["cp", "-r", str(config), str(changed)], check=True)
    services = changed / "services-configuration.yaml"
    settings = yaml.safe_load(services.read_text())
    settings["hadoop"]["virtualClusters"]["vc2"] = {"description": "a second team", "capacity": 20}
    services.write_text(yaml.safe_dump(settings))
    ok(openi("hadoop.reconfigure", "-p", str(changed)))

    def queues():
        info = requests.get(f"http://{master}:8088/ws/v1/cluster/scheduler", timeout=5).json()
        # The scheduler reports capacities as 32-bit floats (30.000002 for 30.00).
        found = {q["queueName"]: round(q["capacity"], 2) for q in info["scheduler"]["schedulerInfo"]["queues"]["queue"]}
        return found if "vc2" in found else None

    assert wait_for("the running ResourceManager serving queue vc2", queues, timeout=300) == \
        {"default": 30.0, "vc1": 50.0, "vc2": 20.0}


def test_a_flag_added_to_a_machine_reaches_its_node_and_leaves_it_when_taken_off(bed):
    """Node labels are compared with what openi-tasks applied before (the Node's managedFields), so
    only nodes that differ are applied, and a flag taken off the machine list leaves its node.
    (zookeeper, already deployed, is the service placed by labels that is redeployed here.)"""
    _, config, kube = bed
    flagged = Path(config).parent / "flagged-configuration"
    subprocess.run(["cp", "-r", str(config), str(flagged)], check=True)
    machines = flagged / "cluster-configuration.yaml"
    machines.write_text(machines.read_text().replace("- hostname: worker2\n", "- hostname: worker2\n  rack: r7\n"))
    out = ok(openi("services.deploy", "-p", str(flagged), "--service", "zookeeper"))
    assert f"node labels: 1 of {len(NODES)} node(s) changed" in out, out
    assert kube.nodes()["worker2"]["labels"]["rack"] == "r7"
    out = ok(openi("services.deploy", "-p", str(config), "--service", "zookeeper"))
    assert f"node labels: 1 of {len(NODES)} node(s) changed" in out, out
    labels = kube.nodes()["worker2"]["labels"]
    assert "rack" not in labels and labels["pai-worker"] == "true", labels


def test_status_shows_each_workload_ready_and_where(bed):
    _, config, _ = bed
    out = ok(openi("services.status", "-p", str(config)))
    row = next(line for line in out.splitlines() if "zookeeper-1" in line)
    assert "1/1" in row and "master1" in row and "not ready" not in out, out


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
    no_pods_left(kube, "app in (zookeeper, cleaning, prometheus, node-exporter, pylon, rest-server, webportal, grafana, "
                       "hadoop-namenode, hadoop-datanode, hadoop-resourcemanager, hadoop-jobhistory, "
                       "hadoop-nodemanager, hadoop-nodemanager-gpu-2)")
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
    # The registry answered NotFound: the deploy fails at once, not after the patience other pull
    # errors get (a registry that is restarting comes back; a missing tag does not).
    assert "code = NotFound" in result.stderr and time.monotonic() - started < PULL_PATIENCE, \
        (time.monotonic() - started, result.stderr[-3000:])
    # Cleaned with the working configuration: the broken one names a cleaning image that does not exist either.
    ok(openi("services.clean", "-p", str(config), "--yes"))


# The whole catalog at once, on the real API server, scheduler and controllers, with GPU nodes that
# KWOK simulates (openi_tasks/testbed/kwok.py): their pods are played, not run. The testbed's own
# hosts lose their placement flags, so only the cleaning DaemonSet runs real pods there.
SIMULATED_SKUS = {"sim-gpu8": {"mem": 512, "cpu": {"vcore": 64}, "gpu": {"type": "a100", "count": 8}},
                  "sim-gpu4": {"mem": 256, "cpu": {"vcore": 32}, "gpu": {"type": "v100", "count": 4}},
                  "sim-cpu": {"mem": 128, "cpu": {"vcore": 32}}}
SIMULATED = [  # hostname, machine type, flags
    ("sim-master", "sim-cpu", {"pai-master": "true", "zkid": "1", "node-exporter": "true"}),
    ("sim-a1", "sim-gpu8", {"pai-worker": "true", "node-exporter": "true"}),
    ("sim-a2", "sim-gpu8", {"pai-worker": "true", "node-exporter": "true"}),
    ("sim-v1", "sim-gpu4", {"pai-worker": "true"}),
    ("sim-c1", "sim-cpu", {"pai-worker": "true", "node-exporter": "true"}),
]
# service.yaml's prerequisites, as the catalog's documentation lists them.
PREREQUISITES = {
    "cluster-configuration": [], "drivers": ["cluster-configuration"], "zookeeper": ["cluster-configuration"],
    "hadoop-service": ["cluster-configuration", "drivers", "zookeeper"],
    "frameworklauncher": ["cluster-configuration", "hadoop-service"],
    "rest-server": ["cluster-configuration", "frameworklauncher"], "webportal": ["cluster-configuration", "rest-server"],
    "prometheus": ["cluster-configuration"], "grafana": ["cluster-configuration", "prometheus"],
    "pylon": ["cluster-configuration", "rest-server", "webportal", "grafana", "prometheus"],
    "end-to-end-test": ["cluster-configuration", "frameworklauncher", "rest-server"],
}
# Where each workload's pods must land, written out by hand from the flags above.
PLACEMENT = {
    "zookeeper": {"sim-master"}, "hadoop-namenode": {"sim-master"}, "hadoop-resourcemanager": {"sim-master"},
    "hadoop-jobhistory": {"sim-master"}, "hadoop-datanode": {"sim-a1", "sim-a2", "sim-v1", "sim-c1"},
    "hadoop-nodemanager-gpu-8": {"sim-a1", "sim-a2"}, "hadoop-nodemanager-gpu-4": {"sim-v1"},
    "hadoop-nodemanager": {"sim-c1"}, "drivers": {"sim-a1", "sim-a2", "sim-v1"},
    "node-exporter": {"sim-master", "sim-a1", "sim-a2", "sim-c1"}, "prometheus": {"sim-master"},
    "frameworklauncher": {"sim-master"}, "rest-server": {"sim-master"}, "webportal": {"sim-master"},
    "grafana": {"sim-master"}, "pylon": {"sim-master"}, "end-to-end-test": {"sim-master"},
}


def test_the_whole_catalog_in_one_run_on_simulated_gpu_nodes(bed, tmp_path):
    """services.deploy with no service named: every service in dependency order, each waited for;
    every pod on exactly the nodes its flags and GPU count ask for (placed by the real scheduler);
    the end-to-end Job complete; a second deploy changes nothing; status all ready; clean removes
    everything (the cleaning DaemonSet on the real and the simulated nodes)."""
    from kubernetes import client

    from openi_tasks.services.api import KubernetesApi
    from openi_tasks.state import StateDir
    from openi_tasks.testbed import kwok

    from .test_hadoop import hadoop_tarball

    testbed, config, kube = bed
    cluster = load_cluster(config)
    admin = StateDir.of(cluster).admin_conf
    version = cluster.services.hadoop.hadoop_version
    machines = [{"hostname": name, "hostip": f"10.251.0.{i + 1}", "machine-type": sku, "k8s-role": "worker", **flags}
                for i, (name, sku, flags) in enumerate(SIMULATED)]
    simulated = kwok.with_simulated_machines(Path(config), tmp_path / "simulated", machines, SIMULATED_SKUS,
                                             hadoop_tarball(tmp_path / f"hadoop-{version}.tar.gz", version))
    no_pods_left(kube)  # the last test's clean (its cleaning DaemonSet's pods) is over
    with kwok.Simulator(admin, tmp_path / "kwok") as simulator:
        try:
            simulator.add([kwok.node(name, SIMULATED_SKUS[sku]["cpu"]["vcore"], SIMULATED_SKUS[sku]["mem"],
                                     SIMULATED_SKUS[sku].get("gpu", {}).get("count", 0)) for name, sku, _ in SIMULATED])
            ok(openi("hadoop.prepare", "-p", str(simulated)))
            out = ok(openi("services.deploy", "-p", str(simulated)))
            ready = [line.split(":")[0] for line in out.splitlines() if line.endswith(" object(s) changed)")]
            assert sorted(ready) == sorted(PREREQUISITES), out
            for service, before in PREREQUISITES.items():
                assert all(ready.index(b) < ready.index(service) for b in before), (service, ready)
            placed: dict[str, set[str]] = {}
            for pod in kube.core.list_namespaced_pod(NAMESPACE).items:
                placed.setdefault(pod.metadata.labels["app"], set()).add(pod.spec.node_name)
            assert placed == PLACEMENT, placed
            job = client.BatchV1Api(kube.api_client).read_namespaced_job("end-to-end-test", NAMESPACE)
            assert job.status.succeeded == 1, job.status  # its pod played by KWOK
            again = ok(openi("services.deploy", "-p", str(simulated)))
            assert "every service is already as configured: no changes" in again and \
                f"node labels: 0 of {len(NODES) + len(SIMULATED)} node(s) changed" in again, again
            status = ok(openi("services.status", "-p", str(simulated)))
            assert "not ready" not in status, status
            # hadoop.reconfigure: a new virtual cluster reaches the resource manager's configuration
            # map, and its pod is a new one (started after the map changed).
            old_pod = kube.core.list_namespaced_pod(NAMESPACE, label_selector="app=hadoop-resourcemanager").items[0]
            services = simulated / "services-configuration.yaml"
            settings = yaml.safe_load(services.read_text())
            settings["hadoop"]["virtualClusters"] = {"research": {"description": "a new team", "capacity": 30}}
            services.write_text(yaml.safe_dump(settings, sort_keys=False))
            ok(openi("hadoop.reconfigure", "-p", str(simulated)))
            scheduler = kube.core.read_namespaced_config_map("hadoop-resourcemanager-configuration",
                                                             NAMESPACE).data["capacity-scheduler.xml"]
            assert re.search(r"<name>yarn\.scheduler\.capacity\.root\.research\.capacity</name>\s*"
                             r"<value>30(\.0+)?</value>", scheduler), scheduler
            new_pod = kube.core.list_namespaced_pod(NAMESPACE, label_selector="app=hadoop-resourcemanager").items
            assert [p.metadata.uid for p in new_pod] != [old_pod.metadata.uid] and \
                new_pod[0].status.phase == "Running", new_pod
            cleaned = ok(openi("services.clean", "-p", str(simulated), "--yes"))
            assert "cleaning: wiping the platform's data on every node" in cleaned
            no_pods_left(kube)
        finally:
            simulator.remove()
            # The testbed's hosts get their flags back, as the other tests of this testbed expect.
            KubernetesApi(admin).label_nodes({m.hostname.lower(): m.node_labels for m in cluster.nodes})
