"""The phase runner: a task is an ordered list of small phases, run in the spirit of k0sctl.

A phase says which hosts it works on, whether they may go in parallel, and — per host — what
it would change, by comparing what should be with what is (`plan`). The runner prints the plan
(`--dry-run`) or applies it. So "already done" needs no memory, and a dry run follows the same
code as a real one. A phase gets its options when it is made (`Lock(break_lock=True)`); what it
derives from the cluster comes from the run (`run.pki`, `run.join`).

    class Hello(Phase):
        name, title = "hello", "Say hello"

        def plan(self, run, host):
            if host.read_file("/etc/motd") == b"hello\\n":
                return []                                              # already done
            return [Change("write /etc/motd", FileWrite("/etc/motd", b"hello\\n"))]

    with open_run(cluster, Reporter(), "hello") as run:
        PhaseRunner([Hello()]).run(run)

A failure on any host stops the run at the end of that phase, prints a per-host table, runs
the clean-ups of the phases that ran (in reverse order; e.g. releasing the cluster lock) and
raises `RunFailed`. A serial phase stops at its first failing host.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from .errors import RunFailed, UsageError
from .ssh import FileWrite, Host, describe_error, fan_out
from .ssh.channel import CANCEL, exempt_from_cancel

if TYPE_CHECKING:
    from .run import Run


@dataclass(eq=False)
class Change:
    """One thing a phase does on a host: a command (run as root, must succeed), a file write, or
    a callable for what is neither (an API call from this machine). `diff` shows a file's change
    in a dry run. Commands and writes are data, so a host's consecutive ones go in one session."""

    description: str
    action: str | FileWrite | Callable[[], Any]
    diff: str = ""
    concurrent: bool = False  # a callable that may run at the same time as its concurrent neighbours

    @property
    def remote(self) -> bool:
        return isinstance(self.action, (str, FileWrite))

    @property
    def kind(self) -> str:
        return "remote" if self.remote else "concurrent" if self.concurrent else "call"


CONCURRENT_CALLS = 8  # API calls from this machine at once


def apply_changes(host: Host, changes: Iterable[Change]) -> None:
    """Apply `changes` in order; consecutive commands and file writes together in one batch,
    which stops at the first that fails; consecutive concurrent callables (API calls) at once,
    the first failure raised once all are done."""
    for kind, group in groupby(changes, key=lambda change: change.kind):
        if kind == "remote":
            host.sh_all([change.action for change in group], check=True)
        elif kind == "concurrent":
            batch = list(group)
            done = fan_out(batch, lambda change: change.action(), CONCURRENT_CALLS)
            for change in batch:
                if isinstance(done[change], BaseException):
                    raise done[change]
        else:
            for change in group:
                change.action()


class Phase:
    """Base of every phase. Override `plan` (per host) and/or `after` (once, after the hosts)."""

    name: str = ""
    title: str = ""
    parallel: bool = True
    bookkeeping: bool = False  # its changes (a lock) do not count as changing the cluster

    def hosts(self, run: "Run") -> list[Host]:
        return run.hosts()

    def should_run(self, run: "Run") -> bool:
        return True

    def plan(self, run: "Run", host: Host) -> list[Change]:
        return []

    def after(self, run: "Run") -> None:
        """Cluster-wide work once every host is done (waits, checks). Not called in a dry run."""

    def cleanup(self, run: "Run") -> None:
        """Called when a later phase failed, for phases that ran (e.g. release a lock)."""


class Together:
    """Phases that do not depend on each other, run at the same time: each keeps its own name (for
    `--only`/`--skip`), hosts, outcome and clean-up. The run goes on when all of them are done."""

    def __init__(self, *phases: Phase) -> None:
        self.phases = list(phases)

    @property
    def name(self) -> str:
        return "+".join(p.name for p in self.phases)


Step = Phase | Together


def phase_names(steps: Sequence[Step]) -> list[str]:
    return [p.name for step in steps for p in (step.phases if isinstance(step, Together) else [step])]


def index_of(phases: Sequence[Step], name: str) -> int:
    for index, step in enumerate(phases):
        if name in phase_names([step]):
            return index
    raise ValueError(f"no phase {name} in {', '.join(phase_names(phases))}")


def insert_before(phases: Sequence[Step], name: str, *new: Step) -> list[Step]:
    """The phases with `new` inserted before the one named `name`."""
    at = index_of(phases, name)
    return [*phases[:at], *new, *phases[at:]]


def insert_after(phases: Sequence[Step], name: str, *new: Step) -> list[Step]:
    at = index_of(phases, name) + 1
    return [*phases[:at], *new, *phases[at:]]


def without(phases: Sequence[Step], *names: str) -> list[Step]:
    for name in names:
        index_of(phases, name)  # a misspelt name is a programming error, not a silent no-op
    kept: list[Step] = []
    for step in phases:
        if isinstance(step, Together):
            members = [p for p in step.phases if p.name not in names]
            if members:
                kept.append(Together(*members) if len(members) > 1 else members[0])
        elif step.name not in names:
            kept.append(step)
    return kept


@dataclass
class HostOutcome:
    host: str
    status: str  # unchanged | changed | planned | failed | not run
    changes: list[Change] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0


@dataclass
class PhaseOutcome:
    phase: Phase
    hosts: list[HostOutcome] = field(default_factory=list)
    skipped: bool = False
    error: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.error) or any(h.status in ("failed", "not run") for h in self.hosts)

    def count(self, status: str) -> int:
        return sum(1 for h in self.hosts if h.status == status)


class PhaseRunner:
    """Runs phases in order; `only`/`skip` pick them by name."""

    def __init__(self, phases: Iterable[Step], only: Iterable[str] = (), skip: Iterable[str] = ()) -> None:
        self.phases = list(phases)
        only, skip = list(only), list(skip)
        names = phase_names(self.phases)
        unknown = [n for n in only + skip if n not in names]
        if unknown:
            raise UsageError(f"unknown phase {', '.join(unknown)}; the phases are: {', '.join(names)}")
        self.selected = [kept for kept in without(self.phases, *[n for n in names if n in skip or (only and n not in only)])]

    def run(self, run: "Run") -> list[PhaseOutcome]:
        outcomes: list[PhaseOutcome] = []
        ran: list[Phase] = []
        for step in self.selected:
            members = step.phases if isinstance(step, Together) else [step]
            try:
                if len(members) == 1:
                    done = [self._run_phase(run, members[0])]
                else:
                    finished = fan_out(members, lambda phase: self._run_phase(run, phase, live=False), len(members))
                    done = [finished[p] if isinstance(finished[p], PhaseOutcome) else
                            PhaseOutcome(p, error=describe_error(finished[p])) for p in members]
            except KeyboardInterrupt:
                # Ctrl-C: every host's command stops at its next poll; the clean-ups (releasing the
                # cluster lock) still run, exempt from the cancellation, and the interrupt goes on.
                CANCEL.set()
                run.reporter.warn(f"interrupted in phase {step.name}: stopping, then releasing what this run holds")
                run.log.write(f"interrupted in phase {step.name}")
                self._cleanup(run, ran + members)
                raise
            outcomes += done
            ran += [o.phase for o in done if not o.skipped]
            failed = [o for o in done if o.failed]
            if failed:
                for outcome in failed:
                    run.reporter.phase_failed(outcome)
                self._cleanup(run, ran)
                run.reporter.summary(outcomes, run.dry_run)
                raise RunFailed(f"phase {', '.join(o.phase.name for o in failed)} failed")
        run.reporter.summary(outcomes, run.dry_run)
        return outcomes

    def _cleanup(self, run: "Run", ran: list[Phase]) -> None:
        with exempt_from_cancel():
            for done in reversed(ran):
                try:
                    done.cleanup(run)
                except Exception as exc:  # a failing clean-up must not hide the failure
                    run.reporter.warn(f"clean-up of {done.name} failed: {describe_error(exc)}")
                    run.log.write(f"clean-up of {done.name} failed: {describe_error(exc)}")

    def _run_phase(self, run: "Run", phase: Phase, live: bool = True) -> PhaseOutcome:
        outcome = PhaseOutcome(phase)
        start = time.monotonic()
        try:
            if not phase.should_run(run):
                outcome.skipped = True
                run.reporter.phase_skipped(phase)
                return outcome
            hosts = phase.hosts(run)
            run.log.write(f"phase {phase.name}: {len(hosts)} host(s){' (dry run)' if run.dry_run else ''}")
            with run.reporter.phase(phase, len(hosts), live=live) as progress:
                outcome.hosts = self._run_hosts(run, phase, hosts, progress)
                if not run.dry_run and not outcome.failed:
                    phase.after(run)
        except Exception as exc:
            outcome.error = describe_error(exc)
            run.log.write(f"phase {phase.name} failed: {outcome.error}")
        finally:
            outcome.seconds = time.monotonic() - start
        run.reporter.changes(outcome, run.dry_run)
        return outcome

    def _run_hosts(self, run: "Run", phase: Phase, hosts: list[Host], progress: Callable) -> list[HostOutcome]:
        def one(host: Host) -> HostOutcome:
            start = time.monotonic()
            result = HostOutcome(host.name, "unchanged")
            try:
                result.changes = phase.plan(run, host)
                if result.changes:
                    result.status = "planned" if run.dry_run else "changed"
                if not run.dry_run:
                    for change in result.changes:
                        run.log.write(f"{host.name}: {phase.name}: {change.description}")
                    apply_changes(host, result.changes)
            except Exception as exc:
                result.status, result.error = "failed", describe_error(exc)
                run.log.write(f"{host.name}: {phase.name} failed: {result.error}")
            result.seconds = time.monotonic() - start
            progress(result)
            return result

        if phase.parallel:
            done = fan_out(hosts, one, run.inventory.limit)
            return [done[h] if isinstance(done[h], HostOutcome) else
                    HostOutcome(h.name, "failed", error=describe_error(done[h])) for h in hosts]
        results: list[HostOutcome] = []
        for host in hosts:
            if any(r.status in ("failed", "not run") for r in results):
                results.append(HostOutcome(host.name, "not run", error="an earlier host of this serial phase failed"))
                continue
            results.append(one(host))
        return results
