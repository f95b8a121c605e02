"""Restarting a control-plane component in place, against real processes on this machine named as
kubelet starts them (a process name is cut to 15 characters: kube-controller-manager's is)."""

from __future__ import annotations

import subprocess
import time

from openi_tasks.k8s.static_pods import restart_command


def supervised(name: str) -> subprocess.Popen:
    """What kubelet does for a static pod: start the component again whenever it ends."""
    loop = f"while true; do bash -c 'exec -a {name} sleep 1000'; sleep 0.2; done"
    return subprocess.Popen(["bash", "-c", loop], start_new_session=True)


def test_a_component_with_a_long_name_is_restarted_and_waited_for():
    name = "kube-controller-manager"
    kubelet = supervised(name)
    try:
        time.sleep(0.5)
        before = subprocess.run(["pgrep", "-f", f"^{name} "], capture_output=True, text=True).stdout.split()
        assert len(before) == 1
        done = subprocess.run(["bash", "-c", restart_command((name,), timeout=10)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        after = subprocess.run(["pgrep", "-f", f"^{name} "], capture_output=True, text=True).stdout.split()
        assert len(after) == 1 and after != before
    finally:
        subprocess.run(["pkill", "-g", str(kubelet.pid)])  # the supervisor's whole session
        kubelet.wait(10)


def test_a_component_that_does_not_come_back_fails_within_the_timeout():
    name = "kube-scheduler"
    process = subprocess.Popen(["bash", "-c", f"exec -a {name} sleep 1000"])
    start = time.monotonic()
    done = subprocess.run(["bash", "-c", restart_command((name,), timeout=3)], capture_output=True, text=True)
    process.wait(10)
    assert done.returncode == 1 and "kube-scheduler did not run again within 3s" in done.stderr
    assert time.monotonic() - start < 10
