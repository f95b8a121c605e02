"""The phase runner, exercised with small test phases (no host is contacted), and applying changes on a real sshd host."""

from __future__ import annotations

import threading
import time

import pytest

from openi_tasks.config import load_cluster
from openi_tasks.errors import RunFailed, UsageError
from openi_tasks.ssh import Inventory
from openi_tasks.operations import ensure_files
from openi_tasks.phase import Change, Phase, PhaseRunner, Together, apply_changes
from openi_tasks.run import Run
from openi_tasks.state import StateDir
from openi_tasks.render import RenderedFile

from .conftest import EXAMPLE
from .sshd import count_sessions


class Recorder:
    """What the test phases did, in order (thread-safe)."""

    def __init__(self):
        self.events: list[str] = []
        self.lock = threading.Lock()

    def add(self, event: str) -> None:
        with self.lock:
            self.events.append(event)


class FilePhase(Phase):
    """'Writes' a value per host into a dict unless it is already there (make-it-so)."""

    def __init__(self, name, store, recorder, role=None, fail_on=(), parallel=True):
        self.name, self.title, self.parallel = name, f"test phase {name}", parallel
        self.store, self.recorder, self.role, self.fail_on = store, recorder, role, set(fail_on)

    def hosts(self, run):
        return run.inventory.hosts(role=self.role)

    def plan(self, run, host):
        if host.name in self.fail_on:
            raise RuntimeError(f"{host.name} is broken")
        key = (self.name, host.name)
        if self.store.get(key) == "done":
            return []
        return [Change(f"set {key}", lambda: self._apply(key), diff=f"- {self.store.get(key)}\n+ done")]

    def _apply(self, key):
        self.recorder.add(f"apply {key[0]} {key[1]}")
        self.store[key] = "done"

    def cleanup(self, run):
        self.recorder.add(f"cleanup {self.name}")


@pytest.fixture
def run(capture, tmp_path):
    reporter, buffer = capture
    cluster = load_cluster(EXAMPLE)
    r = Run(cluster, Inventory(cluster), reporter, StateDir(tmp_path / "state"))
    r.output = buffer
    return r


def phases(store, recorder, **fail):
    return [
        FilePhase("first", store, recorder, role="master"),
        FilePhase("second", store, recorder, role="proxy", fail_on=fail.get("second", ())),
        FilePhase("third", store, recorder, role="worker"),
    ]


def test_phases_run_in_order_and_a_second_run_changes_nothing(run):
    store, recorder = {}, Recorder()
    outcomes = PhaseRunner(phases(store, recorder)).run(run)
    assert [o.phase.name for o in outcomes] == ["first", "second", "third"]
    phase_of = [e.split()[1] for e in recorder.events]
    assert phase_of == sorted(phase_of, key=["first", "second", "third"].index)
    assert [o.count("changed") for o in outcomes] == [3, 1, 2]
    recorder.events.clear()
    again = PhaseRunner(phases(store, recorder)).run(run)
    assert recorder.events == [] and all(o.count("unchanged") == len(o.hosts) for o in again)
    assert "no changes" in run.output.getvalue()


def test_dry_run_plans_without_applying(run):
    store, recorder = {}, Recorder()
    run.dry_run = True
    outcomes = PhaseRunner(phases(store, recorder)).run(run)
    assert store == {} and recorder.events == []
    assert [o.count("planned") for o in outcomes] == [3, 1, 2]
    text = run.output.getvalue()
    assert "openi-master-1: would set ('first', 'openi-master-1')" in text and "+ done" in text
    assert "dry run: nothing was changed" in text


def test_only_and_skip_pick_phases(run):
    store, recorder = {}, Recorder()
    outcomes = PhaseRunner(phases(store, recorder), only=["first", "third"], skip=["third"]).run(run)
    assert [o.phase.name for o in outcomes] == ["first"]
    assert {k[0] for k in store} == {"first"}


def test_unknown_phase_name_is_a_usage_error():
    with pytest.raises(UsageError) as info:
        PhaseRunner(phases({}, Recorder()), skip=["secnd"])
    assert str(info.value) == "unknown phase secnd; the phases are: first, second, third"


def test_failure_stops_after_the_failing_phase_with_a_table_and_cleans_up(run):
    store, recorder = {}, Recorder()
    with pytest.raises(RunFailed) as info:
        PhaseRunner(phases(store, recorder, second=["openi-proxy"])).run(run)
    assert str(info.value) == "phase second failed"
    assert not any(k[0] == "third" for k in store), "no phase after the failing one ran"
    assert recorder.events[-2:] == ["cleanup second", "cleanup first"]
    text = run.output.getvalue()
    assert "phase second failed" in text and "openi-proxy" in text and "openi-proxy is broken" in text


def test_a_failing_host_does_not_stop_the_other_hosts_of_a_parallel_phase(run):
    store, recorder = {}, Recorder()
    phase = FilePhase("p", store, recorder, fail_on=["openi-worker-1"])
    with pytest.raises(RunFailed):
        PhaseRunner([phase]).run(run)
    assert len(store) == len(run.cluster.machines) - 1


def test_a_serial_phase_stops_at_its_first_failing_host(run):
    store, recorder = {}, Recorder()
    phase = FilePhase("serial", store, recorder, role="master", fail_on=["openi-master-2"], parallel=False)
    with pytest.raises(RunFailed):
        PhaseRunner([phase]).run(run)
    assert recorder.events == ["apply serial openi-master-1", "cleanup serial"]
    assert "an earlier host of this serial phase failed" in run.output.getvalue()


def test_a_serial_phase_runs_no_host_after_its_first_failure(run):
    """Three hosts, the first fails: neither the second nor the third may run (a membership change
    after a failure would act on a cluster that is already in trouble)."""
    store, recorder = {}, Recorder()
    phase = FilePhase("serial", store, recorder, role="master", fail_on=["openi-master-1"], parallel=False)
    with pytest.raises(RunFailed):
        PhaseRunner([phase]).run(run)
    assert recorder.events == ["cleanup serial"]
    assert store == {}


def test_should_run_false_skips_a_phase(run):
    class Never(Phase):
        name, title = "never", "never runs"

        def should_run(self, run):
            return False

        def plan(self, run, host):  # pragma: no cover - must not be called
            raise AssertionError("planned a skipped phase")

    (outcome,) = PhaseRunner([Never()]).run(run)
    assert outcome.skipped


def test_after_runs_once_and_its_failure_fails_the_phase(run):
    calls = []

    class Waits(Phase):
        name, title = "waits", "wait for the cluster"

        def hosts(self, run):
            return []

        def after(self, run):
            calls.append("after")
            raise RuntimeError("cluster did not become healthy")

    with pytest.raises(RunFailed):
        PhaseRunner([Waits()]).run(run)
    assert calls == ["after"]
    assert "cluster did not become healthy" in run.output.getvalue()


@pytest.mark.sshd
def test_consecutive_file_writes_are_applied_in_one_session(ssh_config, tmp_path):
    target = f"/tmp/openi-test-apply-{tmp_path.name}"
    with Inventory(load_cluster(ssh_config())) as inventory:
        host = inventory.hosts()[0]
        files = [RenderedFile(f"{target}/{name}", f"{name}\n", 0o640) for name in ("a", "b", "c", "d")]
        host.write_file(files[1].path, "b\n", 0o600)  # only its mode differs: a command, not a write
        between = Change("a command between", lambda: host.sh(f"touch {target}/between", check=True))
        changes = ensure_files(host, files[:2]) + [between] + ensure_files(host, files[2:])
        # Commands and writes are data: the chmod of b goes with a's write; a callable splits the batch.
        assert [c.remote for c in changes] == [True, True, False, True, True]
        opened = count_sessions(host)
        apply_changes(host, changes)
        assert opened[0] == 3  # a and b's chmod together, the callable's command, then c and d together
        assert ensure_files(host, files) == []
        assert host.sh(f"ls {target}").stdout.split() == ["a", "b", "between", "c", "d"]
        host.sh(f"rm -rf {target}", check=True)


class Sleepy(Phase):
    """Waits `seconds` on every host, recording when it started and ended."""

    def __init__(self, name, seconds, recorder, fail=False):
        self.name, self.title, self.seconds, self.recorder, self.fail = name, f"sleepy {name}", seconds, recorder, fail

    def hosts(self, run):
        return run.inventory.hosts(role="master")[:1]

    def plan(self, run, host):
        self.recorder.add(f"start {self.name}")
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError(f"{self.name} broke")
        self.recorder.add(f"end {self.name}")
        return []

    def cleanup(self, run):
        self.recorder.add(f"cleanup {self.name}")


def test_phases_together_run_at_the_same_time_and_each_keeps_its_outcome(run):
    recorder = Recorder()
    steps = [Sleepy("a", 0, recorder), Together(Sleepy("b", 0.6, recorder), Sleepy("c", 0.6, recorder)),
             Sleepy("d", 0, recorder)]
    start = time.monotonic()
    outcomes = PhaseRunner(steps).run(run)
    assert time.monotonic() - start < 1.1  # not 1.2 s: b and c overlapped
    assert [o.phase.name for o in outcomes] == ["a", "b", "c", "d"]
    assert recorder.events[:2] == ["start a", "end a"] and recorder.events[-1] == "end d"
    assert set(recorder.events[2:4]) == {"start b", "start c"}  # both started before either ended


def test_a_failure_in_a_group_stops_after_the_whole_group_and_cleans_up(run):
    recorder = Recorder()
    steps = [Sleepy("a", 0, recorder), Together(Sleepy("b", 0.3, recorder), Sleepy("c", 0, recorder, fail=True)),
             Sleepy("d", 0, recorder)]
    with pytest.raises(RunFailed, match="phase c failed"):
        PhaseRunner(steps).run(run)
    assert "end b" in recorder.events and "start d" not in recorder.events
    assert recorder.events[-3:] == ["cleanup c", "cleanup b", "cleanup a"]


def test_only_and_skip_reach_into_groups(run):
    recorder = Recorder()
    steps = lambda: [Sleepy("a", 0, recorder), Together(Sleepy("b", 0, recorder), Sleepy("c", 0, recorder))]  # noqa: E731
    assert [o.phase.name for o in PhaseRunner(steps(), only=["c"]).run(run)] == ["c"]
    assert [o.phase.name for o in PhaseRunner(steps(), skip=["b"]).run(run)] == ["a", "c"]
    with pytest.raises(UsageError, match="unknown phase e; the phases are: a, b, c"):
        PhaseRunner(steps(), skip=["e"])


@pytest.mark.sshd
def test_concurrent_changes_run_at_once_and_a_failure_among_them_is_raised(ssh_config):
    with Inventory(load_cluster(ssh_config())) as inventory:
        host = inventory.hosts()[0]
        slow = [Change(f"call {i}", lambda: time.sleep(0.4), concurrent=True) for i in range(4)]
        start = time.monotonic()
        apply_changes(host, slow)
        assert time.monotonic() - start < 1.0
        broken = slow[:2] + [Change("breaks", lambda: 1 / 0, concurrent=True)]
        with pytest.raises(ZeroDivisionError):
            apply_changes(host, broken)


def test_a_plan_of_a_thousand_hosts_is_printed_whole_in_order_and_unbroken():
    """The changes are printed in chunks (a print a line cost 8 s of CPU at 1,000 hosts): every
    line arrives once, in host order, with its diff, a failed host's error, and no line broken
    at the console's width."""
    import io

    from rich.console import Console

    from openi_tasks.phase import HostOutcome, PhaseOutcome
    from openi_tasks.report import Reporter

    long = "x" * 300
    hosts = [HostOutcome(f"h{i}", "planned", [Change(f"write /etc/{i}/a", "true", diff=f"+line {i}"),
                                               Change(f"run {long} {i}", "true")]) for i in range(1000)]
    hosts.insert(500, HostOutcome("bad", "failed", error="cannot connect: timed out"))
    buffer = io.StringIO()
    Reporter(Console(file=buffer, width=120, highlight=False)).changes(PhaseOutcome(Phase(), hosts), dry_run=True)
    expected = []
    for host in hosts:
        if host.status == "failed":
            expected.append(f"  bad: cannot connect: timed out")
            continue
        i = host.host[1:]
        expected += [f"  h{i}: would write /etc/{i}/a", f"+line {i}", f"  h{i}: would run {long} {i}"]
    assert buffer.getvalue().splitlines() == expected
