"""Cluster maintenance on a real testbed: nodes files, backup/restore, etcdfix, add, remove, repair.

The tests run in order on one testbed whose etcd and endpoint are deployed first.
"""

from __future__ import annotations

import io
import shutil
import threading
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from openi_tasks.config import load_cluster
from openi_tasks.config.edit import remove_machines
from openi_tasks.config.nodes import load_nodes
from openi_tasks.errors import ConfigError, OpenIError, RunFailed, UsageError
from openi_tasks.k8s.backup import backup, restore
from openi_tasks.k8s.deploy import deploy
from openi_tasks.k8s.etcd_client import client, member_health, members
from openi_tasks.k8s.etcdfix import EtcdfixRefused, etcdfix
from openi_tasks.k8s.maintenance import add, extended, remove, repair
from openi_tasks.k8s.phases.lock import LOCK
from openi_tasks.k8s.pki import ClusterPki
from openi_tasks.report import Reporter
from openi_tasks.state import StateDir

pytestmark = pytest.mark.testbed

PHASES = ["connect", "facts", "lock", "prepare", "docker", "etcd", "endpoint", "unlock"]


def reporter() -> tuple[Reporter, io.StringIO]:
    buffer = io.StringIO()
    return Reporter(Console(file=buffer, width=400, highlight=False)), buffer


@pytest.fixture(scope="module")
def cluster(testbed):
    cluster = load_cluster(testbed.config_dir)
    deploy(cluster, reporter()[0], only=PHASES)
    return cluster


@pytest.fixture(scope="module")
def pki(cluster):
    return ClusterPki(cluster, StateDir.of(cluster))


def nodes_file(tmp_path: Path, *entries: dict) -> Path:
    path = tmp_path / "nodes.yaml"
    path.write_text(yaml.safe_dump({"machine-list": list(entries)}, sort_keys=False))
    return path


def entry(cluster, hostname: str, **changes) -> dict:
    machine = cluster.by_name[hostname]
    data = {"hostname": hostname, "hostip": machine.address, "machine-type": machine.sku_name, "k8s-role": machine.role}
    if machine.etcdid:
        data["etcdid"] = machine.etcdid
    data.update(changes)
    return data


def keys(pki, url: str, prefix: str) -> list[str]:
    return sorted(meta["key"].decode() for _, meta in client(pki, url).get_prefix(prefix))


def healthy_members(cluster, pki) -> list[str]:
    return sorted(h.name for h in member_health(cluster, pki) if h.healthy)


# --- nodes files --------------------------------------------------------------------------


def test_a_nodes_file_that_disagrees_with_the_configuration_names_the_field(cluster, tmp_path):
    path = nodes_file(tmp_path, entry(cluster, "master2", etcdid="etcd9"), entry(cluster, "worker1", hostip="10.9.9.9"))
    with pytest.raises(ConfigError) as info:
        load_nodes(path, cluster)
    text = str(info.value)
    assert "nodes.yaml:6: machine-list[0].etcdid: is etcd9 here but etcd2 in the cluster configuration" in text
    assert "machine-list[1].hostip: is 10.9.9.9 here but" in text


def test_a_host_the_configuration_does_not_have(cluster, tmp_path):
    path = nodes_file(tmp_path, {"hostname": "stranger", "hostip": "172.30.99.1", "machine-type": "testbed", "k8s-role": "worker"})
    with pytest.raises(ConfigError, match="stranger is not in the cluster configuration"):
        load_nodes(path, cluster)


def test_a_password_that_differs_is_named_but_not_shown(cluster, tmp_path):
    path = nodes_file(tmp_path, entry(cluster, "worker1", username="openi", password="WRONG-secret-1"))
    with pytest.raises(ConfigError) as info:
        load_nodes(path, cluster)
    assert "machine-list[0].password: differs from the one in the cluster configuration" in str(info.value)
    assert "WRONG-secret-1" not in str(info.value)


def test_etcdfix_takes_exactly_one_node_and_repair_refuses_masters(cluster, tmp_path):
    two = load_nodes(nodes_file(tmp_path, entry(cluster, "master1"), entry(cluster, "master2")), cluster)
    with pytest.raises(UsageError, match="exactly one member per run; the nodes file names 2"):
        etcdfix(cluster, reporter()[0], two)
    with pytest.raises(UsageError, match="repair is for workers only; master1 run etcd"):
        repair(cluster, reporter()[0], two[:1])


def test_an_unreachable_host_stops_repair_before_any_change(testbed, cluster, tmp_path):
    node = testbed.node("worker1")
    node.disconnect()
    try:
        report, out = reporter()
        with pytest.raises(RunFailed, match="phase connect failed"):
            repair(cluster, report, load_nodes(nodes_file(tmp_path, entry(cluster, "worker1")), cluster))
    finally:
        node.connect()
    row = next(line for line in out.getvalue().splitlines() if "worker1" in line and "failed" in line)
    assert "cannot connect" in row or "timed out" in row
    assert testbed.node("master1").exec(f"test -e {LOCK}")[0] != 0, "the lock was never taken"


def test_repair_dry_run_shows_every_step(cluster, tmp_path):
    report, out = reporter()
    repair(cluster, report, load_nodes(nodes_file(tmp_path, entry(cluster, "worker1")), cluster), dry_run=True)
    text = out.getvalue()
    assert "worker1: would cordon Node worker1, evict its pods (all but DaemonSets' and static ones), delete the Node" in text
    assert "worker1: would reset the node: rm -rf /etc/kubernetes /var/lib/kubelet" in text
    assert "worker1: would join the cluster: kubeadm join --config /etc/openi/kubeadm/join.yaml" in text
    # Only the named worker is changed; the masters only take the cluster lock (on a majority of them).
    touching = [line for line in text.splitlines() if line.strip().startswith("master2:")]
    assert touching == ["  master2: would take the cluster lock"], touching


# --- backup and restore -------------------------------------------------------------------


def test_restore_brings_back_exactly_the_keys_of_the_snapshot(cluster, pki, tmp_path):
    first = client(pki, cluster.etcd_members[0].client_url)
    for i in range(5):
        first.put(f"/backup-test/kept-{i}", str(i))
    snapshot = backup(cluster, out=tmp_path)
    assert (tmp_path / snapshot.name).is_file() and Path(f"{snapshot}.sha256").is_file()
    assert snapshot.stat().st_mode & 0o077 == 0
    second = client(pki, cluster.etcd_members[1].client_url)
    second.put("/backup-test/added-later", "x")
    second.delete("/backup-test/kept-0")
    report, _ = reporter()
    restore(cluster, report, snapshot)
    wanted = [f"/backup-test/kept-{i}" for i in range(5)]
    for member in cluster.etcd_members:
        assert keys(pki, member.client_url, "/backup-test/") == wanted


def test_restore_refuses_a_snapshot_that_does_not_match_its_checksum(cluster, tmp_path):
    snapshot = backup(cluster)
    copy = tmp_path / snapshot.name
    shutil.copyfile(snapshot, copy)
    Path(f"{copy}.sha256").write_text("0" * 64 + "  x\n")
    with pytest.raises(OpenIError, match="does not match its checksum"):
        restore(cluster, reporter()[0], copy)


# --- etcdfix ------------------------------------------------------------------------------


class Writer(threading.Thread):
    """Writes numbered keys through whichever member answers; remembers what was acknowledged."""

    def __init__(self, cluster, pki):
        super().__init__(daemon=True)
        self.urls = [m.client_url for m in cluster.etcd_members]
        self.pki = pki
        self.acknowledged: list[str] = []
        self.done = threading.Event()

    def run(self):
        n = 0
        while not self.done.is_set():
            key = f"/writer/{n:06d}"
            for i in range(len(self.urls)):
                try:
                    client(self.pki, self.urls[(n + i) % len(self.urls)], timeout=2).put(key, str(n))
                    self.acknowledged.append(key)
                    break
                except Exception:
                    continue
            n += 1
            time.sleep(0.01)


def test_etcdfix_rebuilds_a_member_whose_data_was_destroyed_while_writes_go_on(testbed, cluster, pki, tmp_path):
    writer = Writer(cluster, pki)
    writer.start()
    try:
        time.sleep(1)
        testbed.node("master2").exec(
            "docker stop etcd-etcd2 >/dev/null; rm -rf /var/lib/openi/etcd/etcd2; docker start etcd-etcd2 >/dev/null"
        )
        time.sleep(2)
        report, out = reporter()
        etcdfix(cluster, report, load_nodes(nodes_file(tmp_path, entry(cluster, "master2")), cluster))
        time.sleep(1)
    finally:
        writer.done.set()
        writer.join()
    assert len(writer.acknowledged) > 50
    assert healthy_members(cluster, pki) == ["etcd1", "etcd2", "etcd3"]
    for member in cluster.etcd_members:
        present = set(keys(pki, member.client_url, "/writer/"))
        missing = [k for k in writer.acknowledged if k not in present]
        assert not missing, f"{member.name} lacks {len(missing)} acknowledged writes, e.g. {missing[:3]}"
    text = out.getvalue()
    assert "etcd members before" in text and "etcd members after" in text and "snapshot:" in text


def test_etcdfix_leaves_a_healthy_member_alone_unless_forced(cluster, tmp_path):
    nodes = load_nodes(nodes_file(tmp_path, entry(cluster, "master3")), cluster)
    with pytest.raises(EtcdfixRefused, match="etcd3 is a healthy member: nothing to repair"):
        etcdfix(cluster, reporter()[0], nodes)


def test_etcdfix_refuses_without_quorum_and_changes_nothing(testbed, cluster, pki, tmp_path):
    before = sorted(m.id for m in members(pki, cluster.etcd_members[2].client_url))
    for name in ("master1", "master2"):
        testbed.node(name).exec(f"docker stop etcd-etcd{name[-1]}")
    try:
        nodes = load_nodes(nodes_file(tmp_path, entry(cluster, "master1")), cluster)
        with pytest.raises(EtcdfixRefused) as info:
            etcdfix(cluster, reporter()[0], nodes)
        assert "only 1 of the 2 other members answer (etcd3); repairing etcd1 needs 2 (a quorum of 3 members)" in str(info.value)
        assert testbed.node("master1").exec("test -d /var/lib/openi/etcd/etcd1")[0] == 0, "data left alone"
    finally:
        for name in ("master1", "master2"):
            testbed.node(name).exec(f"docker start etcd-etcd{name[-1]}")
    deadline = time.monotonic() + 60
    while healthy_members(cluster, pki) != ["etcd1", "etcd2", "etcd3"] and time.monotonic() < deadline:
        time.sleep(1)
    assert sorted(m.id for m in members(pki, cluster.etcd_members[0].client_url)) == before


def test_etcdfix_removes_an_unreachable_member_and_brings_it_back_later(testbed, cluster, pki, tmp_path):
    node = testbed.node("master3")
    nodes = load_nodes(nodes_file(tmp_path, entry(cluster, "master3")), cluster)
    node.stop()
    try:
        report, out = reporter()
        with pytest.raises(OpenIError, match="etcd is healthy on 2 members without etcd3, but master3 could not be wiped"):
            etcdfix(cluster, report, nodes)
        names = sorted(m.name for m in members(pki, cluster.etcd_members[0].client_url))
        assert names == ["etcd1", "etcd2"]
        client(pki, cluster.etcd_members[1].client_url).put("/two-members/write", "ok")
        assert client(pki, cluster.etcd_members[0].client_url).get("/two-members/write") == [b"ok"]
    finally:
        node.start()
    etcdfix(cluster, reporter()[0], nodes)
    assert healthy_members(cluster, pki) == ["etcd1", "etcd2", "etcd3"]
    assert client(pki, cluster.etcd_members[2].client_url).get("/two-members/write") == [b"ok"]


# --- add and remove -----------------------------------------------------------------------


def test_add_and_remove_a_master_changes_etcd_membership(testbed, cluster, pki, tmp_path):
    # A cluster without worker1, which then comes in as a fourth master.
    directory = Path(shutil.copytree(testbed.config_dir, tmp_path / "config"))
    remove_machines(directory, ["worker1"])
    smaller = load_cluster(directory)
    newcomer = {"hostname": "worker1", "hostip": cluster.by_name["worker1"].address, "machine-type": "testbed",
                "k8s-role": "master", "etcdid": "etcd4"}
    nodes = nodes_file(tmp_path, newcomer)
    report, out = reporter()
    add(smaller, report, load_nodes(nodes, smaller, allow_new=True),
        only=["connect", "facts", "check-new", "lock", "prepare", "docker", "etcd-join", "etcd", "endpoint", "unlock"])
    assert sorted(m.name for m in members(pki, cluster.etcd_members[0].client_url)) == ["etcd1", "etcd2", "etcd3", "etcd4"]
    haproxy = testbed.node("proxy").exec("cat /etc/openi/haproxy/haproxy.cfg")[1]
    assert "server worker1 " in haproxy
    with pytest.raises(RunFailed, match="phase check-new failed"):  # it is in the cluster now
        add(smaller, reporter()[0], load_nodes(nodes, smaller, allow_new=True), only=["connect", "facts", "check-new"])

    grown = extended(smaller, load_nodes(nodes, smaller, allow_new=True))
    remove(grown, reporter()[0], [grown.by_name["worker1"]])
    assert sorted(m.name for m in members(pki, cluster.etcd_members[0].client_url)) == ["etcd1", "etcd2", "etcd3"]
    assert testbed.node("worker1").exec("docker ps -aq --filter label=openi.managed=true")[1].strip() == ""
    assert healthy_members(cluster, pki) == ["etcd1", "etcd2", "etcd3"]


def test_remove_refuses_to_leave_no_master(cluster):
    with pytest.raises(UsageError, match="without a master"):
        remove(cluster, reporter()[0], list(cluster.masters))
