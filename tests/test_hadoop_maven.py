"""Hadoop's runtime assembled from Maven artifacts (hadoop-maven-repository): the tarball's layout,
when it is assembled again, and Maven's failures as one clear error. The real assembly from Maven
Central, with HDFS, YARN and a MapReduce job running from it, is in test_services_cluster.py."""

from __future__ import annotations

import base64
import http.server
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from openi_tasks.errors import OpenIError
from openi_tasks.hadoop import maven


def jars(directory: Path, names: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_bytes(b"PK\x03\x04 " + name.encode())
    return directory


@pytest.fixture
def resolved(monkeypatch):
    """Maven's part (copying the artifacts' jars) replaced by jars made here; records each call."""
    calls = []

    def copy_dependencies(mvn, work, lib, version, repository):
        settings = work / "settings.xml"
        calls.append((version, repository, (work / "pom.xml").read_text(),
                      (settings.read_text(), settings.stat().st_mode & 0o777)))
        jars(lib, ["hadoop-common-3.5.0.jar", "guava-27.0-jre.jar",
                   "hadoop-mapreduce-client-jobclient-3.5.0-tests.jar"])

    monkeypatch.setattr(maven, "_copy_dependencies", copy_dependencies)
    monkeypatch.setattr(maven.shutil, "which", lambda name: f"/usr/bin/{name}")
    return calls


def test_the_tarball_has_apaches_layout_and_one_script_for_every_command(tmp_path, resolved):
    target = tmp_path / "state" / "hadoop-3.5.0.tar.gz"
    assert maven.assemble("3.5.0", "https://mirror.example/maven2", target) is True
    with tarfile.open(target) as archive:
        members = {m.name: m for m in archive.getmembers()}
        archive.extractall(tmp_path / "out", filter="data")
    top = "hadoop-3.5.0"
    assert members[f"{top}/bin/hadoop"].mode == 0o755
    for command in ("hdfs", "yarn", "mapred"):
        assert members[f"{top}/bin/{command}"].issym() and members[f"{top}/bin/{command}"].linkname == "hadoop"
    assert f"{top}/share/hadoop/lib/hadoop-common-3.5.0.jar" in members
    assert f"{top}/share/hadoop/lib/guava-27.0-jre.jar" in members
    # The test jar is off the daemons' classpath (it carries its own log4j.properties).
    assert f"{top}/share/hadoop/mapreduce/hadoop-mapreduce-client-jobclient-3.5.0-tests.jar" in members
    assert not any(name.endswith("-tests.jar") for name in members if "/share/hadoop/lib/" in name)
    assert members[f"{top}/share/hadoop/hdfs/webapps/hdfs"].isdir()
    for name in ("core-site.xml", "hdfs-site.xml", "yarn-site.xml", "mapred-site.xml", "capacity-scheduler.xml",
                 "hadoop-env.sh", "log4j.properties"):
        assert f"{top}/etc/hadoop/{name}" in members, name
    assert "<value>$HADOOP_CONF_DIR,$HADOOP_HOME/share/hadoop/lib/*</value>" in \
        (tmp_path / "out" / top / "etc/hadoop/mapred-site.xml").read_text()
    assert (target.with_name(target.name + ".sha512")).is_file()
    version, repository, pom, _ = resolved[0]
    assert (version, repository) == ("3.5.0", "https://mirror.example/maven2")
    assert "<artifactId>hadoop-yarn-server-timelineservice</artifactId>" in pom and "<version>3.5.0</version>" in pom


def test_the_script_names_the_subcommands_it_knows(tmp_path, resolved):
    target = tmp_path / "hadoop-3.5.0.tar.gz"
    maven.assemble("3.5.0", "https://mirror.example/maven2", target)
    with tarfile.open(target) as archive:
        archive.extractall(tmp_path, filter="data")
    bin_dir = tmp_path / "hadoop-3.5.0" / "bin"
    result = subprocess.run([str(bin_dir / "hdfs"), "fsck"], capture_output=True, text=True)
    assert result.returncode == 2 and "subcommands here: namenode datanode dfs dfsadmin" in result.stderr
    classpath = subprocess.run([str(bin_dir / "hadoop"), "classpath"], capture_output=True, text=True,
                               env={"PATH": "/usr/bin:/bin", "HADOOP_CLASSPATH": "/job.jar"})
    home = bin_dir.parent
    assert classpath.stdout.strip() == f"{home}/etc/hadoop:{home}/share/hadoop/lib/*:{home}/share/hadoop/hdfs:/job.jar"


def test_the_same_inputs_are_not_assembled_again_and_the_bytes_are_the_same(tmp_path, resolved):
    target = tmp_path / "hadoop-3.5.0.tar.gz"
    assert maven.assemble("3.5.0", "https://mirror.example/maven2", target) is True
    first = target.read_bytes()
    assert maven.assemble("3.5.0", "https://mirror.example/maven2", target) is False
    assert len(resolved) == 1
    # Another repository is another input; the same jars make the same bytes (no timestamps).
    assert maven.assemble("3.5.0", "https://other.example/maven2", target) is True
    assert target.read_bytes() == first
    # A tarball damaged since is assembled again.
    target.write_bytes(first[:1000])
    assert maven.assemble("3.5.0", "https://other.example/maven2", target) is True
    assert len(resolved) == 3 and target.read_bytes() == first


def test_without_maven_the_error_says_what_to_install(tmp_path):
    with pytest.raises(OpenIError, match=r"assembling Hadoop 3\.5\.0 needs Maven \(no-such-mvn\) on this machine's PATH"):
        maven.assemble("3.5.0", "https://mirror.example/maven2", tmp_path / "hadoop-3.5.0.tar.gz", mvn="no-such-mvn")
    assert list(tmp_path.iterdir()) == []


def test_a_repository_without_the_artifacts_fails_with_mavens_error_and_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENI_CACHE", str(tmp_path / "cache"))
    empty = tmp_path / "empty-repository"
    empty.mkdir()
    target = tmp_path / "state" / "hadoop-3.5.0.tar.gz"
    with pytest.raises(OpenIError) as info:
        maven.assemble("3.5.0", empty.as_uri(), target)
    message = str(info.value)
    assert message.startswith(f"Maven could not resolve Hadoop 3.5.0's artifacts from {empty.as_uri()}:"), message
    assert "[ERROR]" in message and "maven-dependency-plugin" in message, message
    assert not target.exists() and not target.with_name(target.name + ".partial").exists()


def test_credentials_go_into_a_0600_settings_file_and_not_into_the_inputs_stamp(tmp_path, resolved):
    target = tmp_path / "state" / "hadoop-3.5.0.tar.gz"
    password = "s3cret-<&>-value"
    maven.assemble("3.5.0", "https://mirror.example/maven2", target,
                   credentials=maven.Credentials("reader", password))
    settings, mode = resolved[0][3]
    assert mode == 0o600
    assert "<username>reader</username>" in settings and "<password>s3cret-&lt;&amp;&gt;-value</password>" in settings
    assert "<id>hadoop-maven-repository</id>" in settings.split("<mirrors>")[1]  # the server is the mirror's
    stamp = target.with_name(target.name + ".inputs").read_text()
    # Other credentials, same inputs: nothing is assembled again.
    assert maven.assemble("3.5.0", "https://mirror.example/maven2", target,
                          credentials=maven.Credentials("reader", "another")) is False
    assert target.with_name(target.name + ".inputs").read_text() == stamp
    assert password not in repr(maven.Credentials("reader", password))


class AuthenticatingRepository(http.server.BaseHTTPRequestHandler):
    """A Maven repository that holds nothing and asks for Basic credentials, recording what it got."""
    seen: list[str | None] = []

    def do_GET(self):
        authorization = self.headers.get("Authorization")
        self.seen.append(authorization)
        if authorization is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="mirror"')
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


def test_real_maven_sends_the_configured_credentials_and_the_error_does_not_show_them(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENI_CACHE", str(tmp_path / "cache"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AuthenticatingRepository)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/maven2"
    password = "mirror-password-3141"
    try:
        with pytest.raises(OpenIError) as info:
            maven.assemble("3.5.0", url, tmp_path / "hadoop-3.5.0.tar.gz",
                           credentials=maven.Credentials("reader", password))
    finally:
        server.shutdown()
    expected = "Basic " + base64.b64encode(f"reader:{password}".encode()).decode()
    assert expected in AuthenticatingRepository.seen, AuthenticatingRepository.seen[:5]
    assert password not in str(info.value) and str(info.value).startswith("Maven could not resolve")
