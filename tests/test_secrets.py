"""No secret of the configuration in any output: the commands' stdout and stderr (with Invoke's
debug output on), the run log, files written here, node labels. Secrets are the SSH/sudo password,
the JWT secret, the platform admin's password and the registry password."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from openi_tasks.config import load_cluster
from openi_tasks.config.generate import write_configuration
from openi_tasks.k8s.addon_objects import addon_objects

from .conftest import ROOT
from .sshd import SUDO_USER

pytestmark = pytest.mark.sshd

JWT, ADMIN, REGISTRY = "jwt-Secret-8c1f2e", "admin-Secret-77ad0b", "registry-Secret-51e9aa"


@pytest.fixture
def configured(tmp_path, ssh_hosts):
    machines = ssh_hosts.machines()
    machines[1].update({"username": SUDO_USER, "password": ssh_hosts.sudo_password})
    machines[0]["pai-master"] = "true"  # where rest-server (which holds the JWT secret) runs
    directory = write_configuration(
        tmp_path / "config", machines, defaults=ssh_hosts.defaults(),
        operator=ssh_hosts.operator(**{"state-dir": str(tmp_path / "state" / "deep" / "dir")}),
        services={"restserver": {"jwt-secret": JWT, "default-pai-admin-username": "admin",
                                 "default-pai-admin-password": ADMIN},
                  "cluster": {"clusterid": "openi-test", "docker-registry-info": {
                      "docker-namespace": "openi", "docker-registry-domain": "registry.example.com:5000",
                      "docker-username": "ci", "docker-password": REGISTRY, "docker-tag": "v1",
                      "secret-name": "openi-regsecret"}}})
    return directory, [ssh_hosts.sudo_password, JWT, ADMIN, REGISTRY]


def inv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "-d", *args],
                          capture_output=True, text=True, timeout=180)


def test_no_secret_reaches_any_output(configured, tmp_path):
    directory, secrets = configured
    outputs = [
        inv("cluster.exec", "-p", str(directory), "--sudo", "--cmd", "id -u"),
        inv("cluster.check", "-p", str(directory)),
        inv("cluster.render", "-p", str(directory), "--out", str(tmp_path / "hosts")),
        inv("services.render", "-p", str(directory), "--service", "rest-server", "--out", str(tmp_path / "services")),
    ]
    for result in outputs:
        assert result.returncode == 0, (result.args, result.stdout[-2000:], result.stderr[-2000:])
    assert "invoke.config" in outputs[0].stderr, "Invoke's debug output is on"
    for result in outputs:
        for secret in secrets:
            assert secret not in result.stdout and secret not in result.stderr, (result.args, secret)
    # The run log records every command, with every secret replaced by ***.
    logs = list((tmp_path / "state").rglob("*.log"))
    assert logs and "id -u" in logs[0].read_text()
    for secret in secrets:
        assert secret not in logs[0].read_text()
    # The state directory and every directory made for it are private.
    for directory_made in (tmp_path / "state", tmp_path / "state" / "deep", tmp_path / "state" / "deep" / "dir"):
        assert stat.S_IMODE(directory_made.stat().st_mode) == 0o700, directory_made
    # A rendered file that holds a secret is readable by its owner only.
    holding = []
    for root in (tmp_path / "hosts", tmp_path / "services"):
        for path in (p for p in root.rglob("*") if p.is_file()):
            text = path.read_text(errors="replace")
            if any(secret in text for secret in secrets):
                holding.append(path)
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert holding, "the rest-server's files hold the JWT secret (so this test looks at something)"
    # No node label carries a secret.
    labels = [o["metadata"]["labels"] for o in addon_objects(load_cluster(directory)) if o["kind"] == "Node"]
    assert not [value for label in labels for value in label.values() if value in secrets]


def test_a_machine_key_that_looks_like_a_secret_is_refused(configured, tmp_path):
    directory, _ = configured
    text = (directory / "cluster-configuration.yaml").read_text()
    (directory / "cluster-configuration.yaml").write_text(text.replace("- hostname: node3", "- hostname: node3\n  ssh-pass: hunter2", 1))
    result = inv("cluster.check", "-p", str(directory))
    assert result.returncode == 2
    assert "ssh-pass: looks like a secret" in result.stderr and "hunter2" not in result.stdout + result.stderr
