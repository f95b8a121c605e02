"""k8s.upgrade's plan: which clusters it refuses to upgrade and why, decided before any change."""

from __future__ import annotations

import pytest

from openi_tasks.errors import UsageError
from openi_tasks.k8s.versions import (NodeVersions, UpgradePlan, Version, etcd_refusals, etcd_version, refusals,
                                       target_version)

V = Version.parse
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def master(name: str, version: str, **changes) -> NodeVersions:
    node = NodeVersions(name, "master", V(version), V(version), {c: V(version) for c in CONTROL_PLANE},
                        ready=True, apiserver_answers=True)
    for key, value in changes.items():
        setattr(node, key, value)
    return node


def worker(name: str, version: str, **changes) -> NodeVersions:
    node = NodeVersions(name, "worker", V(version), V(version), ready=True)
    for key, value in changes.items():
        setattr(node, key, value)
    return node


def cluster(target: str, *nodes: NodeVersions, **extra) -> UpgradePlan:
    return UpgradePlan(V(target), list(nodes), **extra)


def test_versions_parse_and_order():
    assert V("v1.36.3") < V("v1.37.0") < V("v1.37.2") < V("v1.100.0")
    assert str(V("v1.37.2")) == "v1.37.2"
    assert Version.of("none") is None and Version.of("") is None
    for bad in ("1.37.2", "v1.37", "v1.37.2-rc.0", "latest"):
        with pytest.raises(UsageError, match="--to"):
            target_version(bad)


def test_the_next_minor_version_and_a_patch_version_are_allowed():
    assert refusals(cluster("v1.37.2", master("m1", "v1.36.3"), worker("w1", "v1.36.3"))) == []
    assert refusals(cluster("v1.36.3", master("m1", "v1.36.1"), worker("w1", "v1.36.1"))) == []


def test_a_cluster_at_the_target_is_not_refused_and_is_done():
    plan = cluster("v1.37.2", master("m1", "v1.37.2"), worker("w1", "v1.37.2"))
    assert refusals(plan) == [] and plan.done


def test_a_skipped_minor_version_is_refused_with_the_next_one_named():
    found = refusals(cluster("v1.38.0", master("m1", "v1.36.3"), worker("w1", "v1.36.3")))
    assert found == ["v1.38.0 skips a minor version: the API servers run v1.36.3, so the next upgrade is to v1.37.x "
                     "(kubeadm upgrades one minor version at a time)"]


def test_a_half_done_upgrade_may_complete_the_lowest_api_server_decides():
    plan = cluster("v1.37.2", master("m1", "v1.37.2"), master("m2", "v1.36.3"), worker("w1", "v1.36.3"))
    assert refusals(plan) == [] and not plan.done


def test_a_downgrade_is_refused():
    found = refusals(cluster("v1.36.3", master("m1", "v1.37.2"), worker("w1", "v1.37.2")))
    assert "v1.36.3 is older than the API server's v1.37.2: a downgrade is not supported" in found
    assert any("w1: kubelet v1.37.2 is newer than v1.36.3" in f for f in found)


def test_a_kubelet_newer_than_the_target_or_too_old_is_refused():
    found = refusals(cluster("v1.37.2", master("m1", "v1.36.3"), worker("new", "v1.38.0"), worker("old", "v1.33.5")))
    assert "new: kubelet v1.38.0 is newer than v1.37.2: it would end up newer than the API servers" in found
    assert any(f.startswith("old: kubelet v1.33.5 is more than 3 minor versions older") for f in found)
    assert refusals(cluster("v1.37.2", master("m1", "v1.36.3"), worker("ok", "v1.34.0"))) == []


def test_unhealthy_etcd_a_notready_node_and_a_silent_api_server_are_each_named():
    plan = cluster("v1.37.2", master("m1", "v1.36.3", apiserver_answers=False), master("m2", "v1.36.3", ready=False),
                   worker("w1", "v1.36.3", ready=None), etcd_unhealthy=["m3 is unhealthy: connection refused"])
    found = refusals(plan)
    assert "m1: its API server does not answer /readyz: the control plane is not ready" in found
    assert any(f.startswith("m2 is NotReady") for f in found)
    assert any(f.startswith("w1 has no Node in the Kubernetes API") for f in found)
    assert "etcd member m3 is unhealthy: connection refused" in found
    assert len(found) == 4


def test_a_bundle_for_another_version_and_no_api_server_are_refused():
    found = refusals(cluster("v1.37.2", worker("w1", "v1.36.3"), bundle_problem="the bundle is for v1.36.3"))
    assert found[0].startswith("no master runs an API server")
    assert found[-1] == "the bundle is for v1.36.3"


# etcd: to the configured version, one minor version at a time (etcd's rolling upgrade).
E = etcd_version


def test_etcd_versions_are_read_from_answers_and_image_tags():
    assert E("3.7.3") == E("3.7.3-0") == E("v3.7.3") == V("v3.7.3")
    assert E("latest") is None and E("") is None and E("3.7") is None


def test_etcd_to_the_next_minor_or_another_patch_is_allowed_and_not_done_until_every_member_runs_it():
    at_k8s = (master("m1", "v1.37.2"), worker("w1", "v1.37.2"))
    plan = cluster("v1.37.2", *at_k8s, etcd={"etcd1": E("3.6.16"), "etcd2": E("3.7.3")}, etcd_target=E("3.7.3"))
    assert refusals(plan) == [] and plan.done and not plan.etcd_done
    for running in ("3.7.0", "3.7.9"):
        assert refusals(cluster("v1.37.2", *at_k8s, etcd={"etcd1": E(running)}, etcd_target=E("3.7.3"))) == []
    done = cluster("v1.37.2", *at_k8s, etcd={"etcd1": E("3.7.3"), "etcd2": E("3.7.3")}, etcd_target=E("3.7.3"))
    assert done.etcd_done
    # An image whose tag names no version: replaced as configured, with no version rule to apply.
    assert cluster("v1.37.2", *at_k8s, etcd={"etcd1": E("3.7.3")}, etcd_target=None).etcd_done


def test_etcd_skipping_a_minor_or_going_back_one_is_refused_per_member_with_the_way_forward():
    found = refusals(cluster("v1.37.2", master("m1", "v1.37.2"), etcd_target=E("3.7.3"),
                             etcd={"etcd1": E("3.5.21"), "etcd2": E("3.6.16"), "etcd3": E("3.8.0")}))
    assert found == [
        "etcd member etcd1 runs etcd 3.5.21; etcd-version asks for 3.7.3: that skips a minor version; etcd upgrades "
        "one minor version at a time, so to 3.6.x first",
        "etcd member etcd3 runs etcd 3.8.0; etcd-version asks for 3.7.3: an older minor (or another major) version is "
        "etcd's downgrade procedure, which k8s.upgrade does not do",
    ]
    assert len(etcd_refusals({"etcd1": E("3.7.3")}, E("4.0.0"))) == 1


def test_a_node_whose_pods_run_on_another_runtime_is_not_done_though_at_the_target():
    moving = worker("w1", "v1.37.2", runtime_from="unix:///run/containerd/containerd.sock")
    assert moving.versions_at(V("v1.37.2")) and not moving.at(V("v1.37.2"))
    plan = cluster("v1.37.2", master("m1", "v1.37.2"), moving)
    assert not plan.done and refusals(plan) == []
    assert cluster("v1.37.2", master("m1", "v1.37.2"), worker("w1", "v1.37.2")).done
