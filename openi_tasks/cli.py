"""What every task shares: where the configuration is, one reporter, and errors as exit codes.

A task body is written `def deploy(c, reporter, path=None, ...)`: `task` gives it the run's
`Reporter` (and hides that parameter from Invoke, so it is no command-line flag), turns library
errors into a message and an exit code, and keeps `-h` for help.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import invoke
from invoke import Context, Exit

from .errors import OpenIError, UsageError
from .report import Reporter

if TYPE_CHECKING:
    from .config import Cluster

DEFAULT_CONFIG = "./cluster-configuration"

PATH_HELP = (
    "configuration directory (default: Invoke config openi.config_path, then $OPENI_CONFIG, "
    f"then {DEFAULT_CONFIG})"
)
# operator.* settings an operator may override for one run through Invoke's configuration
# (`inv -c FILE`, or INVOKE_OPENI_CONNECT_TIMEOUT=5 and so on); `inv -T N` sets the command timeout.
OVERRIDABLE = ("connect_timeout", "command_timeout", "keepalive", "concurrency")


def config_path(c: Context, path: str | None) -> Path:
    """-p/--path, else the Invoke config key openi.config_path, else $OPENI_CONFIG, else default."""
    configured = (c.config.get("openi") or {}).get("config_path")
    return Path(path or configured or os.environ.get("OPENI_CONFIG") or DEFAULT_CONFIG).expanduser()


def load(c: Context, path: str | None, reporter: Reporter) -> Cluster:
    """Load the cluster, apply this run's overrides of the operator settings, show its warnings."""
    from .config import load_cluster  # here: the models take a while to build, and --list needs none

    cluster = load_cluster(config_path(c, path))
    cluster = with_overrides(cluster, c)
    for warning in cluster.warnings:
        reporter.info(str(warning))
    return cluster


def with_overrides(cluster: Cluster, c: Context) -> Cluster:
    settings = c.config.get("openi") or {}
    changes: dict[str, Any] = {}
    for key in OVERRIDABLE:
        value = settings.get(key)
        if key == "command_timeout" and value is None:
            value = (c.config.get("timeouts") or {}).get("command")
        if value is None:
            continue
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise UsageError(f"openi.{key} must be a whole number of seconds (or hosts), not {value!r}") from None
        if number < (0 if key == "keepalive" else 1):
            raise UsageError(f"openi.{key} must be at least {0 if key == 'keepalive' else 1}, not {number}")
        changes[key] = number
    if not changes:
        return cluster
    return dataclasses.replace(cluster, operator=cluster.operator.model_copy(update=changes))


def user_errors(body: Callable) -> Callable:
    """Give the task its reporter; turn library errors into a clear message and exit code."""

    @functools.wraps(body)
    def wrapper(c: Context, *args: Any, **kwargs: Any) -> Any:
        try:
            return body(c, Reporter(), *args, **kwargs)
        except OpenIError as exc:
            raise Exit(f"error: {exc}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("interrupted: every connection was closed", code=130) from None

    signature = inspect.signature(body)
    parameters = list(signature.parameters.values())
    if len(parameters) < 2 or parameters[1].name != "reporter":
        raise TypeError(f"task {body.__name__} must take (c, reporter, ...)")
    wrapper.__signature__ = signature.replace(parameters=[parameters[0], *parameters[2:]])  # type: ignore[attr-defined]
    return wrapper


class _Task(invoke.Task):
    """An Invoke task whose arguments never take the short flag -h (it stays help), nor a dash:
    Invoke gives a flag the first free character of its name, and for --to-s3 that was `-`."""

    def arg_opts(self, name: str, default: Any, taken_names: set) -> dict:
        return super().arg_opts(name, default, set(taken_names) | {"h", "-"})


def task(**kwargs: Any) -> Callable[[Callable], invoke.Task]:
    """`invoke.task` for openi-tasks: a reporter for the body, errors as exit codes, -h stays help."""

    def decorate(body: Callable) -> invoke.Task:
        return invoke.task(klass=_Task, **kwargs)(user_errors(body))

    return decorate


def confirm(warning: str, answer: str) -> None:
    """Ask the operator to type `answer`; refuse without a terminal (use --yes there)."""
    if not sys.stdin.isatty():
        raise UsageError(f"{warning} Refusing without a terminal to confirm on; pass --yes")
    typed = input(f"{warning}\nType {answer} to go on: ").strip()
    if typed != answer:
        raise UsageError("not confirmed; nothing was changed")


def required(value: str | None, flag: str) -> str:
    if not value:
        raise UsageError(f"{flag} is required")
    return value


def whole_number(value: str | int | None, flag: str, default: int) -> int:
    """A flag's whole number (at least 0). Declared as text, since Invoke turns a bad value of a
    flag whose default is a number into a traceback."""
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{flag} must be a whole number, not {value!r}") from None
    if number < 0:
        raise UsageError(f"{flag} must be at least 0, not {number}")
    return number


def split_list(value: str | None) -> list[str]:
    """'a,b, c' -> ['a', 'b', 'c']"""
    return [item.strip() for item in (value or "").split(",") if item.strip()]
