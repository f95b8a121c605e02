"""Timeouts and fan-out can be overridden for one run, without editing the configuration:
`inv -T N` (the command timeout) and Invoke's configuration (`openi.connect_timeout`, ...,
from `-f FILE` or INVOKE_OPENI_* variables). Bad values are a usage error (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from invoke import Config, Context

from openi_tasks.cli import with_overrides
from openi_tasks.config import load_cluster
from openi_tasks.errors import UsageError

from .conftest import EXAMPLE, ROOT


def context(**settings) -> Context:
    return Context(Config(overrides=settings))


def test_no_override_keeps_the_configuration():
    cluster = load_cluster(EXAMPLE)
    assert with_overrides(cluster, context()) is cluster


def test_invoke_settings_override_the_operator_section():
    cluster = load_cluster(EXAMPLE)
    changed = with_overrides(cluster, context(openi={"connect_timeout": "3", "keepalive": 0, "concurrency": 4},
                                              timeouts={"command": 90}))
    operator = changed.operator
    assert (operator.connect_timeout, operator.keepalive, operator.concurrency, operator.command_timeout) == (3, 0, 4, 90)
    assert cluster.operator.command_timeout == 1800  # the loaded configuration is unchanged


@pytest.mark.parametrize("settings, message", [
    ({"openi": {"connect_timeout": "soon"}}, "openi.connect_timeout must be a whole number"),
    ({"openi": {"concurrency": 0}}, "openi.concurrency must be at least 1"),
    ({"openi": {"keepalive": -1}}, "openi.keepalive must be at least 0"),
])
def test_bad_overrides_are_usage_errors(settings, message):
    with pytest.raises(UsageError, match=message):
        with_overrides(load_cluster(EXAMPLE), context(**settings))


def test_an_environment_override_reaches_a_task_and_a_bad_one_exits_2():
    env = {**os.environ, "INVOKE_OPENI_CONNECT_TIMEOUT": "never"}
    result = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "cluster.check", "-p",
                             str(EXAMPLE)], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2, result.stderr
    assert "openi.connect_timeout must be a whole number of seconds (or hosts), not 'never'" in result.stderr
    assert "Traceback" not in result.stderr
