"""What every task shares: where the configuration is, and turning errors into exit codes."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable

import invoke
from invoke import Context, Exit

from .config import Cluster, load_cluster
from .errors import OpenIError, UsageError
from .report import Reporter

DEFAULT_CONFIG = "./cluster-configuration"

PATH_HELP = (
    "configuration directory (default: Invoke config openi.config_path, then $OPENI_CONFIG, "
    f"then {DEFAULT_CONFIG})"
)


def config_path(c: Context, path: str | None) -> Path:
    """-p/--path, else the Invoke config key openi.config_path, else $OPENI_CONFIG, else default."""
    configured = (c.config.get("openi") or {}).get("config_path")
    return Path(path or configured or os.environ.get("OPENI_CONFIG") or DEFAULT_CONFIG).expanduser()


def load(c: Context, path: str | None, reporter: Reporter | None = None) -> Cluster:
    """Load the cluster and show its warnings."""
    cluster = load_cluster(config_path(c, path))
    for warning in cluster.warnings:
        (reporter or Reporter()).info(str(warning))
    return cluster


def user_errors(body: Callable) -> Callable:
    """Turn library errors into a clear message and exit code, never a traceback."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except OpenIError as exc:
            raise Exit(f"error: {exc}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper


class _Task(invoke.Task):
    """An Invoke task whose arguments never take the short flag -h: it stays help."""

    def arg_opts(self, name: str, default: Any, taken_names: set) -> dict:
        return super().arg_opts(name, default, set(taken_names) | {"h"})


def task(**kwargs: Any) -> Callable[[Callable], invoke.Task]:
    """`invoke.task` for openi-tasks: library errors become exit codes; -h stays help."""

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


def split_list(value: str | None) -> list[str]:
    """'a,b, c' -> ['a', 'b', 'c']"""
    return [item.strip() for item in (value or "").split(",") if item.strip()]
