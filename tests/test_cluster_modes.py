"""The two other API endpoint modes, each with one full deploy on a testbed of its own: a single
master (the endpoint is the master itself), and an external load balancer (a haproxy the test
runs as a cloud load balancer would be, in front of two masters)."""

from __future__ import annotations

import pytest
import yaml

from openi_tasks.config import load_cluster
from openi_tasks.state import StateDir
from openi_tasks.testbed.testbed import Testbed

from .cluster import Kube, deployed

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


def test_a_single_master_cluster(tmp_path):
    bed = Testbed(tmp_path / "single", say=lambda message: None)
    try:
        config = bed.up(masters=1, workers=1, proxy=False)
        cluster = deploy_and_check(config, ["master1", "worker1"])
        assert cluster.endpoint.mode == "single" and cluster.endpoint.address == cluster.masters[0].address
    finally:
        bed.down()


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
