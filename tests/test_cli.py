"""The command line as a user meets it: `inv` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import EXAMPLE, ORIGINAL, ROOT

NAMESPACES = {"cluster", "k8s", "hadoop", "services", "images", "testbed"}


def inv(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def task_names() -> list[str]:
    result = inv("--list", "--list-format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    names = []
    for collection in data["collections"]:
        for t in collection["tasks"]:
            names.append(f"{collection['name']}.{t['name']}")
    return names


def test_list_shows_every_namespace_with_one_line_descriptions():
    result = inv("--list")
    assert result.returncode == 0
    listed = {m.group(1) for m in re.finditer(r"^  (\S+)", result.stdout, re.M)}
    assert {name.split(".")[0] for name in listed} == NAMESPACES
    data = json.loads(inv("--list", "--list-format", "json").stdout)
    for collection in data["collections"]:
        for t in collection["tasks"]:
            assert t["help"], f"{collection['name']}.{t['name']} has no description"


def test_every_parameter_of_every_task_is_explained():
    for name in task_names():
        result = inv("-h", name)
        assert result.returncode == 0, name
        options = result.stdout.split("Options:", 1)[1] if "Options:" in result.stdout else ""
        for line in options.splitlines():
            if line.strip().startswith("-"):
                flag, _, explanation = line.strip().partition("  ")
                assert explanation.strip(), f"{name}: {flag} has no help"
                # Invoke gives a flag the first free character of its name as its short flag, a dash
                # too (`--=STRING, --to-s3=STRING` once): a short flag is a letter or a digit.
                assert not re.match(r"--=|-[^A-Za-z0-9-]", flag), f"{name}: {flag} has a short flag of punctuation"


def test_check_prints_the_summary():
    result = inv("cluster.check", "-p", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for fragment in ("hosts", "6", "3 master, 2 worker, 1 proxy", "proxy: https://10.10.0.10:6443",
                     "etcdid1=https://10.10.0.11:2380", "NC24R", "openi-worker-2", "valid"):
        assert fragment in out, fragment


def test_check_never_shows_secrets():
    result = inv("cluster.check", "-p", str(ORIGINAL))
    assert result.returncode == 0
    for secret in ("secret-ssh-pw", "other-pw", "registry-pw-123", "admin-pw-456", "your_jwt_secret"):
        assert secret not in result.stdout + result.stderr


def test_bad_configuration_exits_2_with_every_problem_and_no_traceback(example_dir):
    text = (example_dir / "kubernetes-configuration.yaml").read_text().replace("api-port:", "api-prot:")
    (example_dir / "kubernetes-configuration.yaml").write_text(text)
    (example_dir / "services-configuration.yaml").unlink()
    result = inv("cluster.check", "-p", str(example_dir))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "api-prot: unknown key (did you mean 'api-port'?)" in result.stderr
    assert "services-configuration.yaml: file is missing" in result.stderr
    assert "2 problems in the configuration" in result.stderr


def test_configuration_path_from_environment_and_invoke_config(tmp_path):
    assert inv("cluster.check", cwd=tmp_path).returncode == 2  # ./cluster-configuration is absent
    by_env = inv("cluster.check", cwd=tmp_path, env={"OPENI_CONFIG": str(EXAMPLE)})
    assert by_env.returncode == 0 and "openi-example" in by_env.stdout
    config = tmp_path / "invoke.yaml"
    config.write_text(f"openi:\n  config_path: {ORIGINAL}\n")
    by_invoke = inv("-f", str(config), "cluster.check", cwd=tmp_path, env={"OPENI_CONFIG": str(EXAMPLE)})
    assert by_invoke.returncode == 0 and "master1" in by_invoke.stdout


def test_render_writes_every_host_file_offline(tmp_path):
    out = tmp_path / "out"
    result = inv("cluster.render", "-p", str(EXAMPLE), "--out", str(out), env={"OPENI_STATE_DIR": str(tmp_path / "s")})
    assert result.returncode == 0, result.stderr
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {f"openi-master-{i}/etc/openi/containers/etcd.yaml" for i in (1, 2, 3)} <= written
    assert {f"openi-master-{i}/etc/openi/etcd/pki/server.key" for i in (1, 2, 3)} <= written
    assert {"openi-proxy/etc/openi/containers/haproxy.yaml", "openi-proxy/etc/openi/haproxy/haproxy.cfg",
            "_operator/etcd/etcdctl.env"} <= written
    assert not any(name.startswith("openi-worker-1/etc/openi") for name in written)


@pytest.mark.parametrize("args, message", [
    (("cluster.render",), "--out DIR is required"),
    (("cluster.exec",), "--cmd COMMAND is required"),
    (("cluster.exec", "--cmd", "true", "--role", "boss"), "unknown role 'boss'"),
    (("cluster.exec", "--cmd", "true", "--hosts", "openi-master-1,nohost"), "not in the configuration: nohost"),
    (("k8s.certs", "--within", "abc"), "--within must be a whole number, not 'abc'"),
    (("k8s.certs", "--within", "-3"), "--within must be at least 0, not -3"),
    (("k8s.upgrade",), "--to VERSION is required"),
    (("k8s.upgrade", "--to", "1.37"), "--to: not a Kubernetes release version (vMAJOR.MINOR.PATCH): '1.37'"),
    (("k8s.upgrade", "--to", "v9.9.9"), "--to v9.9.9, but kubernetes-configuration says kubernetes-version: "),
    (("k8s.upgrade", "--to", "v9.9.9", "--batch", "many"), "--batch must be a whole number, not 'many'"),
    (("k8s.bundle", "--out", "/nonexistent/b", "--from-source", "--mirror", "127.0.0.1:1"),
     "--release-url, --cni-url, --containerd-url, --runc-url and --mirror are where released artifacts come from; --from-source builds them"),
    (("k8s.bundle", "--out", "/nonexistent/b", "--base-image", "debian:12"), "--base-image is the base of images built"),
])
def test_usage_errors_exit_2_before_contacting_anything(args, message):
    result = inv(*args, "-p", str(EXAMPLE))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.sshd
def test_exec_prints_a_row_per_host_and_fails_when_one_host_fails(ssh_config, ssh_hosts):
    directory = ssh_config()
    ok = inv("cluster.exec", "-p", str(directory), "--cmd", "echo hello from $(id -un)")
    assert ok.returncode == 0, ok.stderr
    rows = [line for line in ok.stdout.splitlines() if "hello from root" in line]
    assert len(rows) == len(ssh_hosts.addresses)
    only = inv("cluster.exec", "-p", str(directory), "--cmd", "true", "--hosts", "node2,node3")
    assert only.returncode == 0 and "node2" in only.stdout and "node4" not in only.stdout
    bad = inv("cluster.exec", "-p", str(directory), "--role", "worker", "--cmd",
              'case "$SSH_CONNECTION" in *127.0.0.4*) echo nope; exit 7;; esac; echo ok')
    assert bad.returncode == 1
    row = next(line for line in bad.stdout.splitlines() if "node3" in line)
    assert "7" in row and "nope" in row and "node1" not in bad.stdout
    assert "1 of 3 host(s) failed: node3" in bad.stdout


def test_services_render_writes_files_offline_and_keeps_secrets_private(tmp_path):
    out = tmp_path / "rendered"
    result = inv("services.render", "-p", str(EXAMPLE), "--service", "cluster-configuration", "--out", str(out),
                 env={"OPENI_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in (out / "cluster-configuration").iterdir())
    assert files == ["gpu-configuration.json", "host-configuration.yaml", "objects.yaml"]
    assert (out / "cluster-configuration" / "objects.yaml").stat().st_mode & 0o077 == 0
    hosts = yaml.safe_load((out / "cluster-configuration" / "host-configuration.yaml").read_text())
    assert hosts["openi-worker-2"]["flags"] == {"pai-worker": "true", "node-exporter": "true"}
    assert "change-me" not in (out / "cluster-configuration" / "host-configuration.yaml").read_text()
