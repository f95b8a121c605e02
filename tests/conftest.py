"""Shared fixtures: configuration directories, real sshd hosts, captured reporters."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from openi_tasks.config.generate import write_configuration
from openi_tasks.report import Reporter

from .sshd import SshHosts

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "cluster-configuration"
ORIGINAL = Path(__file__).resolve().parent / "data" / "original-config"
# The first testbed test's set-up builds the testbed's images and the Kubernetes bundle from its Go
# modules when the cache (/var/cache/openi-tasks) is empty: 13 minutes on a new 2-core machine, on
# top of the test. Every other test keeps pyproject's 900 s.
FIRST_TESTBED_TIMEOUT = 2400
PREBUILD = pytest.StashKey[subprocess.Popen]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that need no testbed first (the order is otherwise kept): on a new machine they
    run while tests/prebuild.py builds Kubernetes, instead of after the first testbed waited for it."""
    items.sort(key=lambda item: item.get_closest_marker("testbed") is not None)


def pytest_collection_finish(session: pytest.Session) -> None:
    first = next((item for item in session.items if item.get_closest_marker("testbed")), None)
    if first is not None and first.get_closest_marker("timeout") is None:
        first.add_marker(pytest.mark.timeout(FIRST_TESTBED_TIMEOUT))
    if first is not None and shutil.which("go") and not session.config.option.collectonly:
        _start_prebuild(session)


def _start_prebuild(session: pytest.Session) -> None:
    """tests/prebuild.py in the background, at the idle scheduling priority (inherited by go and
    its compilers), logging to the session's temporary directory; stopped with the session."""
    log = session.config._tmp_path_factory.getbasetemp() / "prebuild.log"  # type: ignore[attr-defined]
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "tests.prebuild"], cwd=ROOT, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=lambda: os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0)))
    session.config.stash[PREBUILD] = process


def pytest_unconfigure(config: pytest.Config) -> None:
    """Last in the output, each failure's own message: CI keeps only the tail of a long log, and
    pytest's summary lists failures before errors (a failed demo's errors hid its reason)."""
    terminalreporter = config.pluginmanager.get_plugin("terminalreporter")
    if terminalreporter is None:
        return
    failed = [r for key in ("failed", "error") for r in terminalreporter.stats.get(key, [])
              if getattr(r, "longrepr", None) is not None]
    if not failed:
        return
    terminalreporter.section("why each failed (the last lines of its error)")
    for report in failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(report.longrepr)
        lines = [line for line in text.strip().splitlines() if line.strip()]
        terminalreporter.write_line(f"{report.nodeid} ({report.when}):")
        for line in lines[-6:]:
            terminalreporter.write_line(f"    {line[:300]}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    process = session.config.stash.get(PREBUILD, None)
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    """A writable copy of the bundled example configuration."""
    return Path(shutil.copytree(EXAMPLE, tmp_path / "cluster-configuration"))


@pytest.fixture
def capture() -> tuple[Reporter, io.StringIO]:
    """A reporter whose output can be read back."""
    buffer = io.StringIO()
    return Reporter(Console(file=buffer, width=200, highlight=False)), buffer


@pytest.fixture
def ctrl_c():
    """Python's own Ctrl-C handler while the test runs, for tests that press Ctrl-C with
    `_thread.interrupt_main()`: a run started in the background (nohup, &) inherits SIGINT
    ignored, and interrupt_main() then does nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session")
def ssh_hosts(tmp_path_factory: pytest.TempPathFactory):
    """Four real sshd servers on 127.0.0.2-5:2222 (session-wide)."""
    hosts = SshHosts(tmp_path_factory.mktemp("sshd"), count=4).start()
    yield hosts
    hosts.stop()


@pytest.fixture
def ssh_config(tmp_path: Path, ssh_hosts: SshHosts):
    """Write a configuration directory for the sshd hosts; keyword arguments override parts."""

    def make(machines=None, operator=None, defaults=None, kubernetes=None, name="ssh-config") -> Path:
        return write_configuration(
            tmp_path / name,
            machines if machines is not None else ssh_hosts.machines(),
            defaults=defaults or ssh_hosts.defaults(),
            operator=ssh_hosts.operator(**(operator or {})),
            kubernetes=kubernetes,
        )

    return make


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory):
    """A testbed for one test module: 3 masters, a proxy, a worker and a bare worker.

    Per module, so that a module that deploys onto it cannot disturb another's assumptions.
    If it cannot start, every test that uses it fails (it never skips). For working on tests,
    OPENI_TEST_TESTBED=<workdir> reuses a testbed that is already up there, and leaves it up.
    """
    from openi_tasks.testbed.testbed import Testbed

    reuse = os.environ.get("OPENI_TEST_TESTBED")
    bed = Testbed(Path(reuse) if reuse else tmp_path_factory.mktemp("testbed"), say=lambda message: None)
    try:
        bed.config_dir = bed.up(masters=3, workers=2, proxy=True, bare=0 if reuse else 1)
        yield bed
    finally:
        if not reuse:
            bed.down()


@pytest.fixture(scope="session")
def single_master(tmp_path_factory: pytest.TempPathFactory):
    """A deployed cluster of one master (the API endpoint is the master itself) and two workers,
    worker1 a GPU node made of STAND-INS (an nvidia-smi reporting two GPUs, an
    nvidia-container-runtime that records its use): (testbed, configuration directory, Kube).

    Used by test_cluster_modes (the single-master mode and GPU nodes). If it cannot start, every
    test that uses it fails."""
    from openi_tasks.config import load_cluster
    from openi_tasks.state import StateDir
    from openi_tasks.testbed.testbed import Testbed

    from .cluster import Kube, deployed

    bed = Testbed(tmp_path_factory.mktemp("single-master") / "testbed", say=lambda message: None)
    try:
        config = bed.up(masters=1, workers=2, proxy=False, gpu_workers=1)
        cluster = load_cluster(config)
        deployed(cluster)
        kube = Kube(StateDir.of(cluster).admin_conf)
        kube.wait_ready(["master1", "worker1", "worker2"], cluster.kubernetes.kubernetes_version)
        kube.wait_running("kube-system")
        yield bed, config, kube
    finally:
        bed.down()
