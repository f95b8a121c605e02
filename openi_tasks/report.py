"""What the operator sees: progress while phases run, per-host tables, dry-run plans.

Everything goes through one `Reporter` around a rich `Console`, so tests can capture it
(`Reporter(Console(file=io.StringIO()))`) and a non-terminal gets plain lines.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from .phase import HostOutcome, Phase, PhaseOutcome

CHUNK = 65536  # characters of changes printed at once: few prints, and bounded memory however many hosts
_STYLE = {"failed": "red", "changed": "yellow", "planned": "cyan", "unchanged": "green", "not run": "dim"}


class Reporter:
    def __init__(self, console: Console | None = None) -> None:
        if console is None:
            console = Console(highlight=False)
            if not console.is_terminal:
                console = Console(highlight=False, width=160)
        self.console = console

    # --- generic ----------------------------------------------------------------------------

    # Messages are never broken into lines: an operator greps them and copies paths out of them.
    def info(self, message: str) -> None:
        self.console.print(escape(message), soft_wrap=True)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(escape(str(cell)) for cell in row))
        self.console.print(table)

    # --- long work ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def activity(self, title: str) -> Iterator["Activity"]:
        """Long work (a build, a wait): on a terminal one live line with the elapsed time and the
        last event; otherwise a plain line per step (events are not printed, only kept as last)."""
        activity = Activity(self, title)
        if not self.console.is_terminal:
            self.console.print(f"{escape(title)} ...")
            yield activity
            self.console.print(f"{escape(title)}: done in {time.monotonic() - activity.start:.0f}s")
            return
        with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(),
                      TextColumn("[dim]{task.fields[event]}"), console=self.console, transient=False) as progress:
            activity.task = progress.add_task(title, total=None, event="")
            activity.progress = progress
            yield activity
            progress.update(activity.task, total=1, completed=1, event="done")

    # --- phases -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def phase(self, phase: "Phase", host_count: int, live: bool = True) -> Iterator[Callable[["HostOutcome"], None]]:
        """Shows a phase's progress; yields the callback each host's outcome is given to. Phases
        that run together (`live=False`) each print one line when done instead of a live bar."""
        if not self.console.is_terminal or not live:
            yield lambda outcome: None
            self.console.print(f"[bold]{escape(phase.title)}[/] ({phase.name}): {host_count} host(s) done")
            return
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        ) as progress:
            task = progress.add_task(f"{phase.title} ({phase.name})", total=max(host_count, 1))
            yield lambda outcome: progress.advance(task)
            if host_count == 0:
                progress.advance(task)

    def phase_skipped(self, phase: "Phase") -> None:
        self.console.print(f"[dim]{escape(phase.title)} ({phase.name}): nothing to do here, skipped[/]")

    def phase_failed(self, outcome: "PhaseOutcome") -> None:
        table = Table(title=f"phase {outcome.phase.name} failed", title_justify="left", title_style="bold red")
        for column in ("host", "status", "seconds", "detail"):
            table.add_column(column, overflow="fold")
        for host in outcome.hosts:
            detail = host.error or "; ".join(c.description for c in host.changes)
            style = _STYLE.get(host.status, "")
            table.add_row(host.host, f"[{style}]{host.status}[/]", f"{host.seconds:.1f}", escape(detail))
        if outcome.error:
            table.add_row("(cluster)", "[red]failed[/]", f"{outcome.seconds:.1f}", escape(outcome.error))
        self.console.print(table)

    def changes(self, outcome: "PhaseOutcome", dry_run: bool) -> None:
        """Per host, what changed (or in a dry run: what would, with file diffs), printed in
        chunks: a print of its own costs a line about 0.35 ms of CPU, and a dry run of 1,000 hosts
        lists some 20,000 changes. Lines are not broken (an operator greps them)."""
        verb = "would " if dry_run else ""
        text = Text()
        for host in outcome.hosts:
            if host.status == "failed" and dry_run:
                text.append(f"  {host.host}: {host.error}\n", style="red")
            if host.status not in ("changed", "planned"):
                continue
            for change in host.changes:
                text.append("  ")
                text.append(host.host, style="cyan")
                text.append(f": {verb}{change.description}\n")
                if dry_run and change.diff:
                    text.append(f"{change.diff}\n", style="dim")
            if len(text) > CHUNK:
                self.console.print(text, end="", soft_wrap=True)
                text = Text()
        if text:
            self.console.print(text, end="", soft_wrap=True)

    def summary(self, outcomes: Sequence["PhaseOutcome"], dry_run: bool) -> None:
        table = Table(title="dry run: nothing was changed" if dry_run else "summary", title_justify="left")
        verb = "would change" if dry_run else "changed"
        for column in ("phase", "hosts", verb, "unchanged", "failed", "seconds"):
            table.add_column(column)
        total = 0
        for outcome in outcomes:
            if outcome.skipped:
                table.add_row(outcome.phase.name, "-", "-", "-", "-", "skipped")
                continue
            changed = outcome.count("planned" if dry_run else "changed")
            total += 0 if outcome.phase.bookkeeping else changed
            failed = outcome.count("failed") + (1 if outcome.error else 0)
            table.add_row(
                outcome.phase.name,
                str(len(outcome.hosts)),
                str(changed),
                str(outcome.count("unchanged")),
                f"[red]{failed}[/]" if failed else "0",
                f"{outcome.seconds:.1f}",
            )
        self.console.print(table)
        if not any(o.failed for o in outcomes) and total == 0:
            self.console.print("[green]everything is already as configured: no changes[/]")


class Activity:
    """What `Reporter.activity` yields: `step` for milestones, `event` for the latest detail."""

    def __init__(self, reporter: Reporter, title: str) -> None:
        self.reporter = reporter
        self.title = title
        self.start = time.monotonic()
        self.last = ""
        self.progress: Progress | None = None
        self.task = None

    def event(self, text: str) -> None:
        self.last = text.strip()[:120]
        if self.progress is not None:
            self.progress.update(self.task, event=escape(self.last))

    def step(self, text: str) -> None:
        elapsed = time.monotonic() - self.start
        if self.progress is not None:
            self.progress.console.print(f"  [{elapsed:5.0f}s] {escape(text)}")
            self.event(text)
        else:
            self.reporter.console.print(f"  [{elapsed:5.0f}s] {escape(text)}")
