"""Add-on manifests against the official schema of the configured Kubernetes version."""

from __future__ import annotations

import kubernetes_validate
import pytest

from openi_tasks.config import load_cluster
from openi_tasks.k8s.addon_objects import addon_objects
from openi_tasks.kube import NodeState

from .conftest import EXAMPLE


@pytest.fixture(scope="module")
def cluster():
    return load_cluster(EXAMPLE)


def _schema_version(cluster) -> str:
    return cluster.kubernetes.kubernetes_version.lstrip("v")


def test_every_addon_object_validates_against_the_official_schema(cluster):
    objects = addon_objects(cluster)
    kinds = {o["kind"] for o in objects}
    assert {"DaemonSet", "Deployment", "Namespace", "ClusterRole", "ConfigMap", "Node"} <= kinds
    for obj in objects:
        kubernetes_validate.validate(obj, _schema_version(cluster), strict=True)


def test_the_validator_rejects_a_broken_object(cluster):
    broken = next(o for o in addon_objects(cluster) if o["kind"] == "DaemonSet")
    broken = {**broken, "spec": {**broken["spec"], "template": {"spec": {"containers": "not a list"}}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, _schema_version(cluster), strict=True)


def test_flannel_uses_the_pod_network_and_configured_images(cluster):
    objects = addon_objects(cluster)
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "kube-flannel-cfg")
    assert '"Network": "10.244.0.0/16"' in config["data"]["net-conf.json"]
    daemonset = next(o for o in objects if o["kind"] == "DaemonSet")
    images = {c["image"] for c in daemonset["spec"]["template"]["spec"]["containers"] + daemonset["spec"]["template"]["spec"]["initContainers"]}
    assert images == {cluster.kubernetes.flannel_image, cluster.kubernetes.flannel_cni_plugin_image}


def test_dashboard_is_placed_by_the_dashboard_flag(cluster):
    deployments = [o for o in addon_objects(cluster) if o["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {"kubernetes-dashboard", "dashboard-metrics-scraper"}
    for deployment in deployments:
        assert deployment["spec"]["template"]["spec"]["nodeSelector"]["dashboard"] == "true"
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert container["readinessProbe"]
    flagged = [m.hostname for m in cluster.machines if m.labels.get("dashboard") == "true"]
    assert flagged == ["openi-master-1"]


def test_node_labels_come_from_machine_flags(cluster):
    nodes = {o["metadata"]["name"]: o["metadata"]["labels"] for o in addon_objects(cluster) if o["kind"] == "Node"}
    assert nodes["openi-master-1"] == {"dashboard": "true", "zkid": "1", "pai-master": "true"}
    assert nodes["openi-worker-2"] == {"pai-worker": "true", "node-exporter": "true", "openi-gpu": "true",
                                       "openi-gpu-type": "teslak80", "openi-gpu-count": "4"}
    assert nodes["openi-master-2"] == {"node-exporter": "true"}
    assert nodes["openi-master-3"] == {"node-exporter": "true"}
    assert nodes["openi-proxy"] == {}  # a Kubernetes node too (it runs kubelet), with no flags


def test_gpu_nodes_get_the_nvidia_runtime_class_and_device_plugin_and_others_nothing(cluster):
    import dataclasses

    objects = {(o["kind"], o["metadata"]["name"]): o for o in addon_objects(cluster)}
    runtime_class = objects[("RuntimeClass", "nvidia")]
    assert runtime_class["handler"] == "nvidia"
    assert runtime_class["scheduling"]["nodeSelector"] == {"openi-gpu": "true"}
    plugin = objects[("DaemonSet", "nvidia-device-plugin")]["spec"]["template"]["spec"]
    assert plugin["nodeSelector"] == {"openi-gpu": "true"} and plugin["runtimeClassName"] == "nvidia"
    assert plugin["containers"][0]["image"] == cluster.kubernetes.nvidia_device_plugin_image
    without_gpus = dataclasses.replace(cluster, machines=tuple(m for m in cluster.machines if not m.gpu_count))
    names = {(o["kind"], o["metadata"]["name"]) for o in addon_objects(without_gpus)}
    assert ("RuntimeClass", "nvidia") not in names and ("DaemonSet", "nvidia-device-plugin") not in names


class CountingApi:
    """A stand-in for KubeApi that counts requests: one `nodes()` list, applies, dry runs."""

    def __init__(self, nodes):
        self.live = nodes
        self.requests = {"list": 0, "would_change": 0, "apply": 0}

    def nodes(self):
        self.requests["list"] += 1
        return self.live

    def would_change(self, obj, field_manager=None):
        self.requests["would_change"] += 1
        return False

    def apply(self, obj, field_manager=None):
        self.requests["apply"] += 1
        name, labels = obj["metadata"]["name"], obj["metadata"]["labels"]
        self.live[name] = NodeState(name, True, "v1.37.2", False, {}, labels=labels, applied_labels=frozenset(labels))


def test_node_labels_cost_one_list_and_one_apply_per_node_that_differs(tmp_path):
    """500 nodes: the phase lists the Nodes once and applies only those whose labels differ, in
    one change; nothing is read or dry-run per node (before: a read, a dry run and an apply for
    each, about 1,500 requests). A second plan applies nothing."""
    import types

    from openi_tasks.config.generate import write_configuration
    from openi_tasks.k8s.phases.addons import Addons
    from openi_tasks.phase import apply_changes

    machines = [{"hostname": "m1", "hostip": "10.1.0.1", "machine-type": "cpu", "k8s-role": "master", "etcdid": "e1"}]
    machines += [{"hostname": f"w{n}", "hostip": f"10.1.{n // 200 + 1}.{n % 200 + 2}", "machine-type": "cpu",
                  "k8s-role": "worker", "pai-worker": "true"} for n in range(499)]
    settings = {"load-balance-ip": "10.1.0.1", "network-plugin": "none", "pod-network-cidr": "172.16.0.0/14"}
    cluster = load_cluster(write_configuration(tmp_path / "c", machines, skus={"cpu": {"mem": 4, "cpu": {"vcore": 2}}},
                                               kubernetes=settings))
    api = CountingApi({m.hostname: NodeState(m.hostname, True, "v1.37.2", False, {}) for m in cluster.nodes})
    logged = []
    run = types.SimpleNamespace(cluster=cluster, facts={}, dry_run=False, api=lambda: api,
                                log=types.SimpleNamespace(write=logged.append))
    changes = Addons().plan(run, host=None)
    assert [c.description for c in changes] == \
        ["label 499 of 500 node(s) with their machines' flags: w0, w1, w10, w100, w101, w102, w103, w104, w105, "
         "w106 and 489 more"]  # m1 has no flag: nothing to apply
    apply_changes(None, changes)
    assert api.requests == {"list": 1, "would_change": 0, "apply": 499}
    assert api.live["w7"].labels["pai-worker"] == "true" and "499 node(s) applied" in logged[0]
    assert Addons().plan(run, host=None) == []  # a second deploy: one more list, nothing applied
    assert api.requests == {"list": 2, "would_change": 0, "apply": 499}
