"""Errors meant for the operator. Library code raises these; tasks turn them into exit codes."""

from __future__ import annotations

from typing import Sequence


class OpenIError(Exception):
    """An error with a message for a human. `exit_code` is what the task exits with."""

    exit_code = 1


# A generated or corrupted file can hold a hundred thousand problems; no one reads past the first few
# hundred, and formatting them all would take longer than loading the file.
SHOWN = 200


class ConfigError(OpenIError):
    """The configuration directory (or a nodes file) is invalid; nothing was contacted."""

    exit_code = 2

    def __init__(self, problems: Sequence) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0))
        errors = [p for p in self.problems if p.severity == "error"]
        warnings = [p for p in self.problems if p.severity != "error"]
        # Errors first (the first line follows "error: "), then what is only a warning.
        shown = (errors + warnings)[:SHOWN]
        lines = [str(p) for p in shown]
        if len(self.problems) > SHOWN:
            lines.append(f"... and {len(self.problems) - SHOWN} more (the first {SHOWN} are shown)")
        summary = f"{len(errors)} problem{'s' if len(errors) != 1 else ''} in the configuration"
        if warnings:
            summary += f" (and {len(warnings)} warning{'s' if len(warnings) != 1 else ''})"
        super().__init__("\n".join(lines + [summary]))


class UsageError(OpenIError):
    """A task was called with arguments that do not fit (unknown phase, host, role, ...)."""

    exit_code = 2


class RunFailed(OpenIError):
    """Work on one or more hosts failed; the per-host table has already been shown."""
