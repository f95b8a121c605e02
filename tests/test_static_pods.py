"""Restarting a control-plane component in place, against real processes on this machine whose
names are long, as kube-controller-manager's is (a process name is cut to 15 characters). The names
are made up for each test: a testbed's real components are processes of this machine too."""

from __future__ import annotations

import secrets
import subprocess
import time

from openi_tasks.k8s.static_pods import restart_command


def supervised(name: str) -> subprocess.Popen:
    """What kubelet does for a static pod: start the component again whenever it ends."""
    loop = f"while true; do bash -c 'exec -a {name} sleep 1000'; sleep 0.2; done"
    return subprocess.Popen(["bash", "-c", loop], start_new_session=True)


def made_up(role: str) -> str:
    return f"kube-{role}-openi-test-{secrets.token_hex(4)}"


def test_components_with_long_names_are_restarted_and_waited_for():
    name, other = made_up("controller-manager"), made_up("scheduler")
    kubelets = [supervised(name), supervised(other)]

    def pids() -> list[list[str]]:
        return [subprocess.run(["pgrep", "-f", f"^{n} "], capture_output=True, text=True).stdout.split()
                for n in (name, other)]
    try:
        time.sleep(0.5)
        before = pids()
        assert [len(p) for p in before] == [1, 1]
        done = subprocess.run(["bash", "-c", restart_command((name, other), timeout=10)], capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr
        after = pids()
        assert [len(p) for p in after] == [1, 1] and after[0] != before[0] and after[1] != before[1]
    finally:
        for kubelet in kubelets:
            subprocess.run(["pkill", "-g", str(kubelet.pid)])  # the supervisor's whole session
            kubelet.wait(10)


def test_a_component_that_does_not_come_back_fails_within_the_timeout():
    name = made_up("scheduler")
    process = subprocess.Popen(["bash", "-c", f"exec -a {name} sleep 1000"])
    start = time.monotonic()
    done = subprocess.run(["bash", "-c", restart_command((name,), timeout=3)], capture_output=True, text=True)
    process.wait(10)
    assert done.returncode == 1 and f"{name} did not run again within 3s" in done.stderr
    assert time.monotonic() - start < 10


def test_terminate_waits_until_every_component_has_exited_and_fails_for_one_that_ignores_sigterm():
    from openi_tasks.k8s.static_pods import terminate_command

    polite, stubborn = made_up("apiserver"), made_up("scheduler")
    # The polite one takes a moment to finish after SIGTERM, as an API server answering what it holds.
    process = subprocess.Popen(["bash", "-c", f"exec -a {polite} bash -c 'trap \"sleep 1; exit 0\" TERM; "
                                              f"while true; do sleep 0.1; done'"])
    try:
        time.sleep(0.5)
        done = subprocess.run(["bash", "-c", terminate_command((polite,), timeout=10)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert process.poll() is not None  # waited for, not just signalled
    finally:
        process.kill()
    ignoring = subprocess.Popen(["bash", "-c", f"exec -a {stubborn} bash -c 'trap \"\" TERM; while true; do sleep 0.1; done'"])
    try:
        time.sleep(0.5)
        done = subprocess.run(["bash", "-c", terminate_command((stubborn,), timeout=2)], capture_output=True, text=True)
        assert done.returncode == 1 and f"{stubborn} still running 2 s after SIGTERM" in done.stderr
    finally:
        ignoring.kill()
        ignoring.wait(10)
