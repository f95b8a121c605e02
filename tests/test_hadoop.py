"""hadoop.prepare: Hadoop's own defaults, per-role properties set from the cluster, YARN queues."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openi_tasks.config import load_cluster
from openi_tasks.config.generate import write_configuration
from openi_tasks.errors import OpenIError
from openi_tasks.hadoop.prepare import prepare
from openi_tasks.hadoop.queues import queue_capacities

LICENSE = "<!-- Licensed under the Apache License, Version 2.0 -->\n"
STYLESHEET = '<?xml-stylesheet type="text/xsl" href="configuration.xsl"?>\n'


def hadoop_tarball(path: Path, version: str) -> Path:
    """A tarball with Hadoop's real etc/hadoop layout (file names, formats, 2.x vs 3.x)."""
    empty = f'<?xml version="1.0" encoding="UTF-8"?>\n{STYLESHEET}{LICENSE}<configuration>\n</configuration>\n'
    files = {
        "core-site.xml": empty,
        "hdfs-site.xml": empty,
        "yarn-site.xml": f'<?xml version="1.0"?>\n{LICENSE}<configuration>\n</configuration>\n',
        "capacity-scheduler.xml": (
            f"{LICENSE}<configuration>\n"
            "  <property><name>yarn.scheduler.capacity.maximum-applications</name><value>10000</value></property>\n"
            "  <property><name>yarn.scheduler.capacity.root.queues</name><value>default</value></property>\n"
            "  <property><name>yarn.scheduler.capacity.root.default.capacity</name><value>100</value></property>\n"
            "</configuration>\n"
        ),
        "hadoop-env.sh": "# Set Hadoop-specific environment variables here.\nexport JAVA_HOME=${JAVA_HOME}\n",
        "yarn-env.sh": "# User for YARN daemons\n",
        "log4j.properties": "hadoop.root.logger=INFO,console\n",
    }
    if version.startswith("2."):
        files["mapred-site.xml.template"] = empty
        files["slaves"] = "localhost\n"
    else:
        files["mapred-site.xml"] = empty
        files["workers"] = "localhost\n"
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"hadoop-{version}/etc/hadoop/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        bin_info = tarfile.TarInfo(f"hadoop-{version}/bin/hadoop")
        bin_info.size = 0
        archive.addfile(bin_info, io.BytesIO(b""))
    return path


MACHINES = [
    {"hostname": "m1", "hostip": "10.3.0.1", "machine-type": "small", "k8s-role": "master", "etcdid": "e1",
     "pai-master": "true", "zkid": "1"},
    {"hostname": "w1", "hostip": "10.3.0.11", "machine-type": "gpu", "k8s-role": "worker", "pai-worker": "true", "zkid": "2"},
    {"hostname": "w2", "hostip": "10.3.0.12", "machine-type": "gpu", "k8s-role": "worker", "pai-worker": "true"},
]
SKUS = {"small": {"mem": 16, "cpu": {"vcore": 4}}, "gpu": {"mem": 64, "cpu": {"vcore": 24}, "gpu": {"type": "v100", "count": 4}}}


def cluster_with(tmp_path: Path, version: str, machines=MACHINES, **hadoop) -> object:
    services = {"hadoop": {"hadoop-version": version, "virtualClusters": {"vc1": {"capacity": 30}, "vc2": {"capacity": 20}},
                           **hadoop}}
    return load_cluster(write_configuration(tmp_path / "config", machines, skus=SKUS, services=services,
                                            operator={"state-dir": str(tmp_path / "state")}))


def properties(path: Path) -> dict[str, str]:
    return {p.findtext("name"): p.findtext("value") for p in ET.parse(path).getroot().findall("property")}


@pytest.mark.parametrize("version", ["2.9.0", "3.3.6"])
def test_every_role_gets_its_properties_in_hadoops_own_files(tmp_path, version):
    tarball = hadoop_tarball(tmp_path / f"hadoop-{version}.tar.gz", version)
    cluster = cluster_with(tmp_path, version, **{"custom-hadoop-binary-path": str(tarball)})
    kept, written = prepare(cluster)
    assert kept == tmp_path / "state" / "hadoop" / f"hadoop-{version}.tar.gz" and kept.read_bytes() == tarball.read_bytes()
    assert sorted(written) == ["datanode", "jobhistory", "namenode", "nodemanager", "resourcemanager"]
    for role, directory in written.items():
        core = properties(directory / "core-site.xml")
        assert core["fs.defaultFS"] == "hdfs://10.3.0.1:9000", role
        assert core["ha.zookeeper.quorum"] == "10.3.0.1:2181,10.3.0.11:2181"
        hdfs = properties(directory / "hdfs-site.xml")
        assert hdfs["dfs.replication"] == "2"
        assert hdfs["dfs.namenode.http-address"] == ("10.3.0.1:50070" if version.startswith("2.") else "10.3.0.1:9870")
        yarn = properties(directory / "yarn-site.xml")
        assert yarn["yarn.resourcemanager.hostname"] == "10.3.0.1"
        zk_key = "yarn.resourcemanager.zk-address" if version.startswith("2.") else "hadoop.zk.address"
        assert yarn[zk_key] == "10.3.0.1:2181,10.3.0.11:2181"
        assert properties(directory / "mapred-site.xml")["mapreduce.framework.name"] == "yarn"
        env = (directory / "hadoop-env.sh").read_text()
        assert "export JAVA_HOME=/usr/lib/jvm/openi-java" in env and "JAVA_HOME=${JAVA_HOME}" not in env
        assert "export HADOOP_LOG_DIR=/datastorage/hadoop-logs" in env
        assert "Licensed under the Apache License" in (directory / "core-site.xml").read_text()  # comments kept
        assert (directory / "log4j.properties").read_text() == "hadoop.root.logger=INFO,console\n"
    assert properties(written["namenode"] / "hdfs-site.xml")["dfs.namenode.name.dir"] == "file:///datastorage/hdfs/name"
    assert "dfs.namenode.name.dir" not in properties(written["datanode"] / "hdfs-site.xml")
    assert properties(written["datanode"] / "hdfs-site.xml")["dfs.datanode.data.dir"] == "file:///datastorage/hdfs/data"
    nodemanager = properties(written["nodemanager"] / "yarn-site.xml")
    assert nodemanager["yarn.nodemanager.resource.memory-mb"] == str(int(64 * 1024 * 0.8))
    assert nodemanager["yarn.nodemanager.resource.cpu-vcores"] == "24"
    # YARN's own disk-check defaults, written out (the testbed writes bytes instead: test_testbed.py).
    assert nodemanager["yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage"] == "90.0"
    assert nodemanager["yarn.nodemanager.disk-health-checker.min-free-space-per-disk-mb"] == "0"
    scheduler = properties(written["resourcemanager"] / "capacity-scheduler.xml")
    assert scheduler["yarn.scheduler.capacity.root.queues"] == "default,vc1,vc2"
    assert [scheduler[f"yarn.scheduler.capacity.root.{q}.capacity"] for q in ("default", "vc1", "vc2")] == \
        ["50.00", "30.00", "20.00"]
    assert scheduler["yarn.scheduler.capacity.maximum-applications"] == "10000"  # Hadoop's own default kept


def test_preparing_twice_gives_the_same_files(tmp_path):
    tarball = hadoop_tarball(tmp_path / "hadoop-3.3.6.tar.gz", "3.3.6")
    cluster = cluster_with(tmp_path, "3.3.6", **{"custom-hadoop-binary-path": str(tarball)})
    _, first = prepare(cluster)
    snapshot = {p: p.read_bytes() for p in first["resourcemanager"].rglob("*") if p.is_file()}
    _, again = prepare(cluster)
    assert {p: p.read_bytes() for p in again["resourcemanager"].rglob("*") if p.is_file()} == snapshot


def test_a_tarball_member_that_points_outside_etc_hadoop_is_refused(tmp_path):
    """Hadoop's defaults are read from the tarball file by file (no extraction filter on Debian 12's
    Python 3.11.2, the operator image's): a name that climbs out of etc/hadoop is refused."""
    tarball = hadoop_tarball(tmp_path / "hadoop-3.3.6.tar.gz", "3.3.6")
    with tarfile.open(tarball) as original:
        members = [(m, original.extractfile(m).read() if m.isfile() else b"") for m in original.getmembers()]
    evil = tmp_path / "evil" / "hadoop-3.3.6.tar.gz"
    evil.parent.mkdir()
    with tarfile.open(evil, "w:gz") as archive:
        for member, data in members:
            archive.addfile(member, io.BytesIO(data))
        info = tarfile.TarInfo("hadoop-3.3.6/etc/hadoop/../../../../escaped")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    cluster = cluster_with(tmp_path, "3.3.6", **{"custom-hadoop-binary-path": str(evil)})
    with pytest.raises(OpenIError, match=r"etc/hadoop/\.\./\.\./\.\./\.\./escaped points outside"):
        prepare(cluster)
    assert not list(tmp_path.parent.glob("escaped")) and not list(tmp_path.rglob("escaped"))


def test_without_a_master_flag_hadoop_cannot_be_placed(tmp_path):
    machines = [dict(m) for m in MACHINES]
    del machines[0]["pai-master"]
    tarball = hadoop_tarball(tmp_path / "hadoop-3.3.6.tar.gz", "3.3.6")
    cluster = cluster_with(tmp_path, "3.3.6", machines=machines, **{"custom-hadoop-binary-path": str(tarball)})
    with pytest.raises(OpenIError, match='no host is flagged pai-master: "true"') as info:
        prepare(cluster)
    assert info.value.exit_code == 2


@pytest.fixture
def mirror(tmp_path):
    """An HTTP server on loopback serving <root>/hadoop-<v>/hadoop-<v>.tar.gz(.sha512)."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def publish(root: Path, version: str, sha512_text: str | None = None) -> Path:
    directory = root / f"hadoop-{version}"
    directory.mkdir()
    tarball = hadoop_tarball(directory / f"hadoop-{version}.tar.gz", version)
    digest = hashlib.sha512(tarball.read_bytes()).hexdigest().upper()
    grouped = " ".join(digest[i:i + 8] for i in range(0, len(digest), 8))
    (directory / f"hadoop-{version}.tar.gz.sha512").write_text(sha512_text or f"hadoop-{version}.tar.gz: SHA512 = {grouped}\n")
    return tarball


def test_download_is_checked_against_its_published_sha512(tmp_path, mirror):
    root, url = mirror
    tarball = publish(root, "3.3.6")
    cluster = cluster_with(tmp_path, "3.3.6", **{"hadoop-download-url": url})
    kept, written = prepare(cluster)
    assert kept.read_bytes() == tarball.read_bytes() and len(written) == 5
    prepare(cluster)  # kept, not downloaded again
    assert Path(f"{kept}.sha512").read_text().strip() == hashlib.sha512(kept.read_bytes()).hexdigest()


def test_a_download_that_does_not_match_its_checksum_is_not_kept(tmp_path, mirror):
    root, url = mirror
    publish(root, "3.3.6", sha512_text="0" * 128 + "  hadoop-3.3.6.tar.gz\n")
    cluster = cluster_with(tmp_path, "3.3.6", **{"hadoop-download-url": url})
    with pytest.raises(OpenIError, match="does not match its published sha512"):
        prepare(cluster)
    assert not list((tmp_path / "state" / "hadoop").glob("hadoop-3.3.6.tar.gz*"))


capacities = st.dictionaries(
    # `default` may be named (the original's example did): it gets its capacity and what is left.
    st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True).filter(lambda n: n != "root") | st.just("default"),
    st.decimals(min_value=0, max_value=150, places=3, allow_nan=False, allow_infinity=False).map(float),
    max_size=8,
)


@settings(max_examples=500, deadline=None)
@given(capacities)
def test_queue_capacities_always_sum_to_100(virtual_clusters):
    result = queue_capacities(virtual_clusters)
    assert set(result) == set(virtual_clusters) | {"default"}
    assert sum(result.values()) == Decimal("100.00")
    assert all(value >= 0 and value == value.quantize(Decimal("0.01")) for value in result.values())
    total = sum(Decimal(str(v)) for v in virtual_clusters.values())
    for name, wanted in virtual_clusters.items():
        expected = Decimal(str(wanted)) * (100 / total if total > 100 else 1)
        if name == "default":
            expected += max(Decimal(0), 100 - total)
        assert abs(result[name] - expected) <= Decimal("0.06"), (name, wanted, result[name])
    if total > 100:
        assert result["default"] <= Decimal(str(virtual_clusters.get("default", 0))) * 100 / total + Decimal("0.06")
