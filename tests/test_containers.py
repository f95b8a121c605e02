"""Containers of the deploy (etcd's, haproxy's) made so: a replaced one is stopped gracefully first."""

from __future__ import annotations

from openi_tasks.k8s.containers import STOP_TIMEOUT, ContainerSpec, RunningContainer, ensure_container

SPEC = "name: etcd-etcd1\nimage: registry.local/etcd:3.7.3-0\nnetwork: host\ncommand:\n  - etcd\n"


def test_a_changed_container_is_stopped_with_sigterm_before_it_is_removed():
    spec = ContainerSpec.from_yaml(SPEC, "etcd")
    (change,) = ensure_container(spec, RunningContainer("etcd-etcd1", True, "an older definition"))
    command = change.action
    # etcd answers the requests it holds only when it is asked to stop, not killed (docker rm -f).
    assert command.startswith(f"docker stop --time {STOP_TIMEOUT} etcd-etcd1 >/dev/null 2>&1; docker rm -f etcd-etcd1 && ")
    assert command.endswith(spec.run_command())


def test_an_unchanged_running_container_is_left_alone():
    spec = ContainerSpec.from_yaml(SPEC, "etcd")
    assert ensure_container(spec, RunningContainer("etcd-etcd1", True, spec.digest)) == []
