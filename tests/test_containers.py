"""Containers of the deploy (etcd's, haproxy's) made so: a replaced one is stopped gracefully first."""

from __future__ import annotations

import os
import subprocess

from openi_tasks.k8s.containers import STOP_TIMEOUT, ContainerSpec, RunningContainer, ensure_container

SPEC = "name: etcd-etcd1\nimage: registry.local/etcd:3.7.3-0\nnetwork: host\ncommand:\n  - etcd\n"


def test_a_changed_container_is_stopped_with_sigterm_before_it_is_removed():
    spec = ContainerSpec.from_yaml(SPEC, "etcd")
    (change,) = ensure_container(spec, RunningContainer("etcd-etcd1", True, "an older definition"))
    command = change.action
    # etcd answers the requests it holds only when it is asked to stop, not killed (docker rm -f).
    assert f"docker stop --time {STOP_TIMEOUT} etcd-etcd1 >/dev/null 2>&1; docker rm -f etcd-etcd1 && " in command
    assert command.endswith(spec.run_command() + "; }")


def replaced_with(tmp_path, refused: str) -> list[str]:
    """The docker commands a replacement runs, in a shell whose `docker` records each call and
    fails those whose first word is in `refused` ("image pull": the image is neither there nor
    pullable)."""
    calls = tmp_path / "calls"
    (tmp_path / "docker").write_text(f'#!/bin/sh\necho "$1" >> {calls}\n'
                                     f'for word in {refused}; do [ "$1" = "$word" ] && exit 1; done\nexit 0\n')
    (tmp_path / "docker").chmod(0o755)
    spec = ContainerSpec.from_yaml(SPEC, "etcd")
    (change,) = ensure_container(spec, RunningContainer("etcd-etcd1", True, "an older definition"))
    subprocess.run(["sh", "-c", change.action], env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    return calls.read_text().split()


def test_a_container_is_replaced_only_once_its_new_image_is_there(tmp_path):
    assert replaced_with(tmp_path, "image pull") == ["image", "pull"]  # the old one keeps running
    (tmp_path / "calls").unlink()
    assert replaced_with(tmp_path, "image") == ["image", "pull", "stop", "rm", "run"]
    (tmp_path / "calls").unlink()
    assert replaced_with(tmp_path, "") == ["image", "stop", "rm", "run"]


def test_an_unchanged_running_container_is_left_alone():
    spec = ContainerSpec.from_yaml(SPEC, "etcd")
    assert ensure_container(spec, RunningContainer("etcd-etcd1", True, spec.digest)) == []
