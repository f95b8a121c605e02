"""Rendering: the files each host gets, strictness, quoting, and real validators."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from openi_tasks.config import load_cluster
from openi_tasks.state import StateDir
from openi_tasks.k8s.files import (
    ETCD_BOOTSTRAP,
    ETCD_CONTAINER,
    HAPROXY_CONFIG,
    HAPROXY_CONTAINER,
    MODULES_LOAD,
    SYSCTL_CONF,
    host_files,
    render_cluster,
)
from openi_tasks.render import TemplateError, render, shell_quote, write_tree

from .conftest import EXAMPLE, ORIGINAL


@pytest.fixture(scope="module")
def cluster():
    return load_cluster(EXAMPLE)


def test_each_role_gets_its_files(cluster):
    paths = {m.hostname: sorted(f.path for f in host_files(cluster, m)) for m in cluster.machines}
    common = [MODULES_LOAD, SYSCTL_CONF]
    for master in cluster.masters:
        assert paths[master.hostname] == sorted(common + [ETCD_CONTAINER, ETCD_BOOTSTRAP])
    assert paths["openi-proxy"] == sorted(common + [HAPROXY_CONFIG, HAPROXY_CONTAINER])
    assert paths["openi-worker-1"] == sorted(common)


def test_etcd_container_definition(cluster):
    master = cluster.by_name["openi-master-2"]
    file = next(f for f in host_files(cluster, master) if f.path == ETCD_CONTAINER)
    spec = yaml.safe_load(file.content)
    assert spec["name"] == "etcd-etcdid2"
    assert spec["image"] == "registry.k8s.io/etcd:3.7.3-0"
    assert (spec["network"], spec["restart"]) == ("host", "always")
    args = dict(a.split("=", 1) for a in spec["command"][1:])
    assert args["--name"] == "etcdid2" and args["--data-dir"] == "/var/lib/etcd/etcdid2"
    # How the member joins lives in the env file, read by etcd only on an empty data directory.
    assert spec["env_file"] == ETCD_BOOTSTRAP and not any(a.startswith("--initial-cluster") for a in args)
    bootstrap = next(f for f in host_files(cluster, master) if f.path == ETCD_BOOTSTRAP).content.splitlines()
    assert bootstrap == [
        "ETCD_INITIAL_CLUSTER=etcdid1=https://10.10.0.11:2380,etcdid2=https://10.10.0.12:2380,etcdid3=https://10.10.0.13:2380",
        "ETCD_INITIAL_CLUSTER_STATE=new",
        "ETCD_INITIAL_CLUSTER_TOKEN=openi-example",
    ]
    assert args["--advertise-client-urls"] == "https://10.10.0.12:2379"
    # TLS everywhere: clients and peers must present certificates signed by the cluster's CA.
    assert args["--client-cert-auth"] == "true" and args["--peer-client-cert-auth"] == "true"
    assert all(url.startswith("https://") for url in args["--listen-client-urls"].split(","))
    assert "/var/lib/openi/etcd:/var/lib/etcd" in spec["volumes"]


def test_haproxy_configuration_is_valid_for_haproxy_and_balances_every_master(cluster, tmp_path):
    proxy = cluster.by_name["openi-proxy"]
    config = next(f for f in host_files(cluster, proxy) if f.path == HAPROXY_CONFIG).content
    servers = [line.split()[1:3] for line in config.splitlines() if line.strip().startswith("server ")]
    assert servers == [[m.hostname, f"{m.address}:6443"] for m in cluster.masters]
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    result = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_haproxy_check_rejects_a_broken_configuration(tmp_path):
    """The validator used above does fail on bad input."""
    path = tmp_path / "haproxy.cfg"
    path.write_text("frontend x\n    bind *:6443\n    default_backend missing\n")
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True).returncode != 0


def test_undefined_values_are_errors_naming_template_and_line(tmp_path):
    (tmp_path / "t.j2").write_text("line one\n{{ present }}\n{{ absent }}\n")
    with pytest.raises(TemplateError) as info:
        render("t.j2", root=tmp_path, present=1)
    assert str(info.value).startswith("t.j2:3:") and "absent" in str(info.value)


def test_template_syntax_errors_name_the_line(tmp_path):
    (tmp_path / "bad.j2").write_text("ok\n{% if %}\n")
    with pytest.raises(TemplateError) as info:
        render("bad.j2", root=tmp_path)
    assert ":2:" in str(info.value)


@pytest.mark.parametrize("value", ["plain", "with space", "it's", "$(reboot)", "`id`", "a;b|c&d", "new\nline", "*", ""])
def test_shell_quote_survives_a_real_shell(tmp_path, value):
    (tmp_path / "q.j2").write_text("printf %s {{ value | sq }}")
    script = render("q.j2", root=tmp_path, value=value)
    assert subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout == value


def test_shell_quote_of_a_list():
    assert shell_quote(["a b", "c"]) == "'a b' c"


def test_render_tree_mirrors_target_paths(cluster, tmp_path):
    files = render_cluster(cluster, StateDir(tmp_path / "state"))
    count = write_tree(tmp_path / "out", files)
    # 2 files on every host (containerd's is made on the host, from its kubeadm), the etcd
    # definition, bootstrap file and 5 certificate files on each master, haproxy's 2 on the proxy,
    # and the operator's etcdctl.env
    assert count == 6 * 2 + 3 * 7 + 2 + 1
    key = tmp_path / "out" / "openi-master-2" / "etc/openi/etcd/pki/server.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "state").exists(), "render writes no state"
    assert (tmp_path / "out" / "openi-master-1" / "etc/openi/containers/etcd.yaml").is_file()
    assert (tmp_path / "out" / "openi-proxy" / "etc/openi/haproxy/haproxy.cfg").is_file()
    env = (tmp_path / "out" / "_operator" / "etcd/etcdctl.env").read_text()
    assert f"ETCDCTL_CACERT={tmp_path}/state/pki/etcd/ca.crt" in env
    assert "ETCDCTL_ENDPOINTS=https://10.10.0.11:2379,https://10.10.0.12:2379,https://10.10.0.13:2379" in env


def test_the_original_configuration_renders(tmp_path):
    cluster = load_cluster(ORIGINAL)
    files = render_cluster(cluster, StateDir(tmp_path))
    spec = yaml.safe_load(next(f for f in files["master1"] if f.path == ETCD_CONTAINER).content)
    assert spec["image"] == "gcr.io/google_containers/etcd:3.2.17"
    assert [f.path for f in files["worker1"]] == [MODULES_LOAD, SYSCTL_CONF]
