"""Configuration directories written for the original load unchanged, with the original's meaning.

The fixtures under tests/data are ours, in the shape of the two published examples: OpenPAI's
`cluster-configuration/` of 2018 (a relative `custom-hadoop-binary-path`, an explicit `default`
virtual cluster, hyperkube-era versions, etcd 3.2, a link-local service range) and OpenI-Octopus's
(the same, plus its own services and a blank line holding a tab).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from openi_tasks.config import load_cluster
from openi_tasks.hadoop.prepare import prepare

from .test_hadoop import hadoop_tarball

DATA = Path(__file__).parent / "data"
FIXTURES = ("openpai-2018", "openi-octopus")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """The state directory (~/.openi) of these configurations, in the test's own directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def copy(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(DATA / name, tmp_path / name))


def warned(cluster) -> dict[str, str]:
    return {f"{Path(w.file).name}:{w.path}": w.message for w in cluster.warnings}


@pytest.mark.parametrize("name", FIXTURES)
def test_loads_with_a_warning_for_each_meaning_that_changed(name, tmp_path):
    cluster = load_cluster(copy(name, tmp_path))
    warnings = warned(cluster)
    for key in ("hyperkube-version", "apiserver-version", "kube-scheduler-version", "kube-controller-manager-version"):
        assert "ignored" in warnings[f"kubernetes-configuration.yaml:kubernetes.{key}"]
    assert "older than 3.5" in warnings["kubernetes-configuration.yaml:kubernetes.etcd-version"]
    assert "link-local" in warnings["kubernetes-configuration.yaml:kubernetes.service-cluster-ip-range"]
    assert "frozen" in warnings["kubernetes-configuration.yaml:kubernetes.docker-registry"]
    assert all(w.severity == "warning" and w.line for w in cluster.warnings)
    assert len(cluster.masters) == 3 and len(cluster.workers) == 2


def test_openpai_default_virtual_cluster_keeps_its_capacity(tmp_path, home):
    """The original wrote each virtual cluster's capacity, `default` included, into YARN's queues."""
    config = copy("openpai-2018", tmp_path)
    hadoop_tarball((config / "customhadoop").mkdir() or config / "customhadoop" / "hadoop-2.7.2.tar.gz", "2.7.2")
    cluster = load_cluster(config)
    _, written = prepare(cluster)
    root = ET.parse(written["resourcemanager"] / "capacity-scheduler.xml").getroot()
    properties = {p.findtext("name"): p.findtext("value") for p in root.iter("property")}
    assert properties["yarn.scheduler.capacity.root.queues"] == "default,vc1,vc2,vc3"
    assert [properties[f"yarn.scheduler.capacity.root.{q}.capacity"] for q in ("default", "vc1", "vc2", "vc3")] == [
        "40.00", "20.00", "20.00", "20.00"]


def test_openpai_relative_hadoop_path_is_read_from_the_configuration_directory(tmp_path, home, monkeypatch):
    config = copy("openpai-2018", tmp_path)
    (config / "customhadoop").mkdir()
    hadoop_tarball(config / "customhadoop" / "hadoop-2.7.2.tar.gz", "2.7.2")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not where the configuration is
    cluster = load_cluster(config)
    assert f"read from {config.resolve()}/customhadoop" in warned(cluster)[
        "services-configuration.yaml:hadoop.custom-hadoop-binary-path"]
    tarball, _ = prepare(cluster)
    assert tarball.read_bytes() == (config / "customhadoop" / "hadoop-2.7.2.tar.gz").read_bytes()


def test_octopus_blank_line_with_a_tab_is_read_as_empty(tmp_path):
    config = copy("openi-octopus", tmp_path)
    assert "\n\t\n" in (config / "services-configuration.yaml").read_text()
    cluster = load_cluster(config)
    assert warned(cluster)["services-configuration.yaml:"].startswith("a blank line holds a tab")
    assert [w.line for w in cluster.warnings if w.path == ""] == [67]
    # The keys on both sides of the blank line are read as written.
    raw = cluster.services.model_extra
    assert raw["model-exchange"]["volumes"][0]["hostPath"]["path"] == "/gmodel"
    assert raw["model-hub"]["server_port"] == 6024


def test_a_tab_that_is_not_on_a_blank_line_is_still_an_error(tmp_path):
    config = copy("openi-octopus", tmp_path)
    services = config / "services-configuration.yaml"
    services.write_text(services.read_text().replace("model-hub:\n  server_port", "model-hub:\n\tserver_port"))
    with pytest.raises(Exception) as info:
        load_cluster(config)
    assert "services-configuration.yaml:69: YAML syntax error" in str(info.value)


@pytest.mark.parametrize("task", ["k8s.deploy", "k8s.deploy --dry-run"])
def test_deploy_refuses_etcd_too_old_before_any_host(task, tmp_path, home):
    """The fixtures' hosts (10.1.0.x) are never contacted: the refusal comes first, exit 2."""
    config = copy("openpai-2018", tmp_path)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "invoke", *task.split(), "-p", str(config)],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HOME": str(home)})
    assert result.returncode == 2, result.stderr
    assert "error: kubernetes.etcd-version: etcd 3.2.17 is older than 3.5" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (home / ".openi").exists() or not any((home / ".openi").rglob("*.log")), "a run was started"
    assert time.monotonic() - started < 60


def test_deploy_accepts_the_fixture_once_etcd_is_new_enough(tmp_path):
    config = copy("openpai-2018", tmp_path)
    kube = config / "kubernetes-configuration.yaml"
    kube.write_text(kube.read_text().replace("etcd-version: 3.2.17", "etcd-version: 3.5.21-0"))
    cluster = load_cluster(config)
    cluster.require_supported_versions()
    assert "kubernetes.etcd-version" not in {w.path for w in cluster.warnings}


def test_rendered_secrets_of_the_original_are_private(tmp_path, home):
    """rest-server's JWT secret and admin password land in files only the operator can read."""
    config = copy("openpai-2018", tmp_path)
    (config / "customhadoop").mkdir()
    hadoop_tarball(config / "customhadoop" / "hadoop-2.7.2.tar.gz", "2.7.2")
    prepare(load_cluster(config))
    out = tmp_path / "rendered"
    result = subprocess.run([sys.executable, "-m", "invoke", "services.render", "-p", str(config), "--out", str(out)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": str(home)})
    assert result.returncode == 0, result.stderr
    holding = [f for f in out.rglob("*") if f.is_file() and "pai-Admin-Secret" in f.read_text(errors="replace")]
    assert holding, "the admin password should reach rest-server's configuration"
    for path in holding:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert "pai-Admin-Secret" not in result.stdout + result.stderr
