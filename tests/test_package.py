"""openi-tasks as an installed tool: the wheel, in a fresh virtualenv, run from a directory that has
neither a checkout nor a tasks.py."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .conftest import EXAMPLE, ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("package")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "wheel"), str(ROOT)],
                   check=True, cwd=work)
    (wheel,) = (work / "wheel").glob("openi_tasks-*.whl")
    venv.EnvBuilder(with_pip=True).create(work / "venv")
    python = work / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, cwd=work)
    return work / "venv" / "bin"


def openi(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "openi"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_installed_command_lists_the_same_tasks_as_inv(installed, tmp_path):
    listed = openi(installed, tmp_path, "--list")
    assert listed.returncode == 0, listed.stderr
    in_checkout = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True,
                                 text=True, timeout=120)
    names = lambda text: sorted(line.split()[0] for line in text.splitlines() if line.startswith("  "))  # noqa: E731
    assert names(listed.stdout) == names(in_checkout.stdout)
    assert "k8s.deploy" in names(listed.stdout)


def test_check_and_render_run_from_an_unrelated_directory(installed, tmp_path):
    checked = openi(installed, tmp_path, "cluster.check", "-p", str(EXAMPLE))
    assert checked.returncode == 0 and "valid" in checked.stdout, checked.stdout + checked.stderr
    rendered = openi(installed, tmp_path, "cluster.render", "-p", str(EXAMPLE), "--out", str(tmp_path / "hosts"))
    assert rendered.returncode == 0, rendered.stderr
    assert (tmp_path / "hosts" / "openi-master-1" / "etc/openi/containers/etcd.yaml").is_file()
    services = openi(installed, tmp_path, "services.render", "-p", str(EXAMPLE), "--service", "zookeeper",
                     "--out", str(tmp_path / "services"))
    assert services.returncode == 0, services.stderr
    assert (tmp_path / "services" / "zookeeper" / "objects.yaml").is_file()


def test_a_configuration_error_exits_2_without_a_traceback(installed, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "cluster-configuration.yaml").write_text("machine-list: [\n")
    result = openi(installed, tmp_path, "cluster.check", "-p", str(broken))
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout
