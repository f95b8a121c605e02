"""Nodes files (`--nodes FILE` of add, remove, repair, etcdfix) checked as the configuration they
would produce, before any host is contacted; `--update-config` writes only a result that loads."""

from __future__ import annotations


import pytest
import yaml

from openi_tasks.config import load_cluster
from openi_tasks.config.edit import add_machines
from openi_tasks.config.nodes import load_nodes
from openi_tasks.errors import ConfigError


NEW_WORKER = {"hostname": "openi-worker-9", "hostip": "10.10.0.99", "machine-type": "NC24R", "k8s-role": "worker"}


def nodes(tmp_path, *entries):
    path = tmp_path / "nodes.yaml"
    path.write_text(yaml.safe_dump({"machine-list": list(entries)}, sort_keys=False))
    return path


@pytest.fixture
def cluster(example_dir):
    return load_cluster(example_dir)


@pytest.mark.parametrize("changes, message", [
    ({"hostip": "10.10.0.11"}, r"nodes.yaml:\d+: machine-list\[0\].hostip: duplicate hostip '10.10.0.11'"),
    ({"k8s-role": "master", "etcdid": "etcdid1"}, r"machine-list\[0\].etcdid: duplicate etcdid 'etcdid1'"),
    ({"etcdid": "etcd7"}, r"machine-list\[0\].etcdid: .*only masters"),
    ({"k8s-role": "proxy"}, r"(more than one|second|one proxy)"),
    ({"bad label!": "true"}, r"machine-list\[0\].bad label!:"),
])
def test_a_new_host_that_would_break_the_configuration_is_refused(tmp_path, cluster, changes, message):
    with pytest.raises(ConfigError) as info:
        load_nodes(nodes(tmp_path, {**NEW_WORKER, **changes}), cluster, allow_new=True)
    assert info.value.exit_code == 2
    assert any(__import__("re").search(message, str(p)) for p in info.value.problems), str(info.value)


def test_the_same_host_twice_in_a_nodes_file(tmp_path, cluster):
    with pytest.raises(ConfigError, match=r"machine-list\[1\].hostname: openi-worker-9 is already machine-list\[0\]"):
        load_nodes(nodes(tmp_path, NEW_WORKER, NEW_WORKER), cluster, allow_new=True)


def test_a_good_new_host_loads(tmp_path, cluster):
    (machine,) = load_nodes(nodes(tmp_path, NEW_WORKER), cluster, allow_new=True)
    assert (machine.hostname, machine.address) == ("openi-worker-9", "10.10.0.99")


def test_update_config_writes_only_a_configuration_that_loads(example_dir):
    before = (example_dir / "cluster-configuration.yaml").read_text()
    with pytest.raises(ConfigError):
        add_machines(example_dir, [{**NEW_WORKER, "hostip": "10.10.0.11"}])
    assert (example_dir / "cluster-configuration.yaml").read_text() == before
    assert not list(example_dir.glob(".cluster-configuration.yaml.*")), "no temporary file left behind"
    add_machines(example_dir, [NEW_WORKER])
    assert "openi-worker-9" in load_cluster(example_dir).by_name
    assert "# " in (example_dir / "cluster-configuration.yaml").read_text(), "comments kept"
