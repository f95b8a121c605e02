"""The two other API endpoint modes, each with one full deploy: a single master (the endpoint is
the master itself; the testbed conftest.single_master), and an
external load balancer (a haproxy the test runs as a cloud load balancer would be, in front of
two masters, on a testbed of its own).

The single master's testbed also has a GPU worker made of STAND-INS (an nvidia-smi reporting two
GPUs, an nvidia-container-runtime that records its use and runs runc): no GPU is reachable here."""

from __future__ import annotations

import re
import shutil
import tomllib

import pytest
import yaml

from openi_tasks.config import load_cluster
from openi_tasks.errors import RunFailed
from openi_tasks.k8s.deploy import deploy
from openi_tasks.k8s.runtime import BIN_DIR, OWN
from openi_tasks.state import StateDir
from openi_tasks.testbed.testbed import Testbed

from .cluster import Kube, deployed, reporter, wait_for

pytestmark = pytest.mark.testbed


def deploy_and_check(config_dir, expected_nodes: list[str]) -> None:
    cluster = load_cluster(config_dir)
    deployed(cluster)
    admin = StateDir.of(cluster).admin_conf
    server = yaml.safe_load(admin.read_text())["clusters"][0]["cluster"]["server"]
    assert server == cluster.endpoint.url
    kube = Kube(admin)
    kube.wait_ready(expected_nodes, cluster.kubernetes.kubernetes_version)
    kube.wait_running("kube-system")
    return cluster


STAND_IN_LOG = "/var/log/nvidia-container-runtime-stand-in.log"
# The live configuration of kubelet's runtime, openi-tasks' own containerd (containerd-source: bundle).
CONFIG_DUMP = f"{BIN_DIR}/containerd --config {OWN.config} config dump"


def live_runtimes(node) -> dict:
    """The CRI runtimes containerd runs with, as it parsed its configuration (not as written)."""
    code, dump = node.exec(f"{CONFIG_DUMP} 2>/dev/null")
    assert code == 0, dump
    # Nothing we wrote is ignored: a key containerd does not know is a setting that is not in force.
    warnings = node.exec(f"{CONFIG_DUMP} 2>&1 >/dev/null")[1]
    assert "unknown key" not in warnings, warnings
    return tomllib.loads(dump)["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]


def test_a_single_master_cluster_with_a_stand_in_gpu_worker(single_master):
    bed, config, _ = single_master  # deployed, every node Ready and kube-system running
    cluster = load_cluster(config)
    admin = StateDir.of(cluster).admin_conf
    assert yaml.safe_load(admin.read_text())["clusters"][0]["cluster"]["server"] == cluster.endpoint.url
    assert cluster.endpoint.mode == "single" and cluster.endpoint.address == cluster.masters[0].address
    check_gpu_worker(bed, cluster)


def gpu_pod(cluster, name: str, gpus: int):
    from kubernetes import client

    resources = client.V1ResourceRequirements(limits={"nvidia.com/gpu": str(gpus)}) if gpus else None
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=client.V1PodSpec(
        runtime_class_name="nvidia", termination_grace_period_seconds=1,
        containers=[client.V1Container(name="main", image=cluster.etcd_image, command=["sleep", "3600"],
                                       resources=resources)]))


def check_gpu_worker(bed, cluster) -> None:
    from openi_tasks.k8s.status import show_status

    gpu, cpu = bed.node("worker1"), bed.node("worker2")
    # containerd's live configuration has the nvidia runtime on the GPU worker only.
    live = live_runtimes(gpu)
    assert live["nvidia"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime", live
    assert live["nvidia"]["options"]["SystemdCgroup"] is True, live
    other = live_runtimes(cpu)
    assert "runc" in other and "nvidia" not in other, other
    kube = Kube(StateDir.of(cluster).admin_conf)
    assert kube.nodes()["worker1"]["labels"]["openi-gpu-count"] == "2"
    # The (stand-in) device plugin advertises the two stand-in GPUs of worker1, and only there.
    def allocatable():
        nodes = {n.metadata.name: (n.status.allocatable or {}).get("nvidia.com/gpu")
                 for n in kube.core.list_node().items}
        return nodes if nodes["worker1"] == "2" else None
    nodes = wait_for("worker1 advertising 2 nvidia.com/gpu", allocatable, 180)
    assert nodes["worker2"] is None and nodes["master1"] is None
    # A pod of RuntimeClass nvidia asking for a GPU lands on the GPU worker, gets one, and runs
    # through its (stand-in) runtime, which gave it nvidia-smi; one without a GPU request too.
    kube.core.create_namespaced_pod("default", gpu_pod(cluster, "one-gpu", 1))
    kube.core.create_namespaced_pod("default", gpu_pod(cluster, "runtime-only", 0))
    pods = [wait_for(f"pod {n} Running", lambda n=n: kube._running(n, "default"), 180) for n in ("one-gpu", "runtime-only")]
    assert {p.spec.node_name for p in pods} == {"worker1"}
    assert re.fullmatch(r"stand-in-gpu-[01]", kube.exec("one-gpu", ["sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES"]).strip())
    assert "2 stand-in GPUs" in kube.exec("one-gpu", ["nvidia-smi"])
    record = gpu.exec(f"cat {STAND_IN_LOG}")[1]
    for pod in pods:
        container_id = pod.status.container_statuses[0].container_id.split("://")[1]
        assert re.search(rf"create --bundle \S*{container_id}", record), (container_id, record[-2000:])
    assert cpu.exec(f"test -e {STAND_IN_LOG}")[0] != 0
    # Asking for three GPUs: Pending, with the scheduler's reason.
    kube.core.create_namespaced_pod("default", gpu_pod(cluster, "three-gpus", 3))

    def unschedulable():
        pod = kube.core.read_namespaced_pod("three-gpus", "default")
        return next((c.message for c in pod.status.conditions or [] if c.reason == "Unschedulable"), None)
    assert "Insufficient nvidia.com/gpu" in wait_for("three-gpus unschedulable", unschedulable, 60)
    assert kube.core.read_namespaced_pod("three-gpus", "default").status.phase == "Pending"
    # A second deploy keeps the runtime (containerd's configuration is not rewritten).
    again = deployed(cluster)
    assert "everything is already as configured: no changes" in again, again[-3000:]
    assert live_runtimes(gpu)["nvidia"] == live["nvidia"]
    # k8s.status: 2 expected, 2 found, 2 allocatable.
    report, out = reporter()
    healthy = show_status(cluster, report)
    assert re.search(r"worker1\s.*2 stand-in\s.*2 \(nvidia-smi, driver 999\.99\.99\)\s.*2\s.*ok", out.getvalue()), \
        out.getvalue()[-3000:]
    assert healthy is True, out.getvalue()[-3000:]
    # A host whose nvidia-smi reports another count than its machine type is refused before anything changes.
    gpu.exec("echo 3 > /etc/openi-testbed/gpu-count")
    report, out = reporter()
    with pytest.raises(RunFailed):
        deploy(cluster, report)
    assert "machine type testbed-gpu says 2 GPUs, 3 found by nvidia-smi" in out.getvalue(), out.getvalue()[-3000:]
    gpu.exec("echo 2 > /etc/openi-testbed/gpu-count")
    check_gpu_taint(cluster, kube)
    for name in ("one-gpu", "runtime-only", "three-gpus", "gpu-on-tainted", "no-gpu-on-tainted"):
        kube.delete_pod(name)  # the shared testbed is left as it was found


def taints(kube, node: str) -> list[tuple[str, str]]:
    return [(t.key, t.effect) for t in kube.core.read_node(node).spec.taints or []]


def check_gpu_taint(cluster, kube) -> None:
    """kubernetes.gpu-taint: true taints the GPU worker; a pod that asks for a GPU still runs there
    (the API server gave it the toleration), one that does not stays Pending; false removes it."""
    tainting = cluster.path.parent / "gpu-taint-configuration"
    shutil.copytree(cluster.path, tainting, dirs_exist_ok=True)
    settings = tainting / "kubernetes-configuration.yaml"
    data = yaml.safe_load(settings.read_text())
    data["kubernetes"]["gpu-taint"] = True
    settings.write_text(yaml.safe_dump(data))
    out = deployed(load_cluster(tainting))
    assert "taint Node worker1 nvidia.com/gpu:NoSchedule" in out, out[-3000:]
    assert ("nvidia.com/gpu", "NoSchedule") in taints(kube, "worker1") and taints(kube, "worker2") == []
    kube.core.create_namespaced_pod("default", gpu_pod(cluster, "gpu-on-tainted", 1))
    plain = gpu_pod(cluster, "no-gpu-on-tainted", 0)
    plain.spec.runtime_class_name = None
    plain.spec.node_selector = {"kubernetes.io/hostname": "worker1"}
    kube.core.create_namespaced_pod("default", plain)
    pod = wait_for("gpu-on-tainted Running", lambda: kube._running("gpu-on-tainted", "default"), 180)
    assert pod.spec.node_name == "worker1"
    assert any(t.key == "nvidia.com/gpu" for t in pod.spec.tolerations), pod.spec.tolerations

    def untolerated():
        found = kube.core.read_namespaced_pod("no-gpu-on-tainted", "default")
        return next((c.message for c in found.status.conditions or [] if c.reason == "Unschedulable"), None)
    assert "untolerated taint" in wait_for("no-gpu-on-tainted unschedulable", untolerated, 60)
    again = deployed(cluster)  # the configuration without gpu-taint
    assert "remove the taint of Node worker1 nvidia.com/gpu:NoSchedule" in again, again[-3000:]
    assert ("nvidia.com/gpu", "NoSchedule") not in taints(kube, "worker1")


def test_an_external_load_balancer_in_front_of_two_masters(tmp_path):
    bed = Testbed(tmp_path / "external", say=lambda message: None)
    try:
        config = bed.up(masters=2, workers=1, proxy=False, load_balancer=True)
        endpoint = bed.start_load_balancer()
        cluster = deploy_and_check(config, ["master1", "master2", "worker1"])
        assert cluster.endpoint.mode == "external" and f"{cluster.endpoint.address}:6443" == endpoint
        # No endpoint of openi-tasks' own: nothing runs haproxy on the cluster's hosts.
        for name in ("master1", "master2", "worker1"):
            assert "openi-haproxy" not in bed.node(name).exec("docker ps --format '{{.Names}}'")[1]
    finally:
        bed.down()
