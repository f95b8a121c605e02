"""The SSH layer when hosts misbehave, against real sshd servers: revoked host keys, a stalled peer,
Ctrl-C while hosts are slow, a connection dropped under a command."""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import threading
import time

import paramiko
import pytest

from openi_tasks.config import load_cluster
from openi_tasks.ssh import ConnectionLost, HostKeyError, Inventory, KnownHosts, describe_error
from openi_tasks.ssh.channel import CANCEL

pytestmark = pytest.mark.sshd


def descendants(pid: int) -> list[int]:
    found = []
    for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split():
        found += [int(child), *descendants(int(child))]
    return found


def connection_processes(ssh_hosts, index: int) -> list[int]:
    """The sshd processes serving connections to the index-th server (not its listener)."""
    return descendants(ssh_hosts.processes[index].pid)


def test_a_revoked_host_key_is_refused_and_cert_authority_lines_are_skipped(ssh_config, ssh_hosts, tmp_path):
    known = tmp_path / "known_hosts"
    lines = ssh_hosts.known_hosts.read_text().splitlines()
    first_key = lines[0].split(None, 1)[1]
    known.write_text("\n".join([
        "@cert-authority *.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        *lines,
        f"@revoked * {first_key}",
        "",
    ]))
    known_hosts = KnownHosts(str(known), "strict")
    assert any("@cert-authority is not supported" in w for w in known_hosts.warnings)
    with Inventory(load_cluster(ssh_config(operator={"known-hosts": str(known)}))) as inventory:
        revoked, other = inventory.hosts()[0], inventory.hosts()[1]
        with pytest.raises(HostKeyError) as info:
            revoked.sh("true", sudo=False)
        assert "REVOKED host key" in str(info.value) and "@revoked" in str(info.value)
        assert other.sh("echo fine", sudo=False).stdout == "fine\n"


@pytest.mark.parametrize("when", ["before-the-command", "during-the-command"])
def test_a_stalled_host_is_noticed_within_seconds(ssh_config, ssh_hosts, when):
    directory = ssh_config(operator={"keepalive": 1, "command-timeout": 600})
    with Inventory(load_cluster(directory)) as inventory:
        host = inventory.hosts()[0]
        host.sh("true", sudo=False)

        def stall():
            for pid in connection_processes(ssh_hosts, 0):
                os.kill(pid, signal.SIGSTOP)

        if when == "before-the-command":
            stall()
        else:
            threading.Timer(1.0, stall).start()
        try:
            start = time.monotonic()
            with pytest.raises(ConnectionLost) as info:
                host.sh("sleep 30", sudo=False)
            seconds = time.monotonic() - start
        finally:
            time.sleep(1.2)
            for pid in connection_processes(ssh_hosts, 0):
                os.kill(pid, signal.SIGCONT)
    # keepalive 1 s: asked after 1 s of silence, 2 s to answer (and 1 s before the stall, during)
    assert seconds < 7, seconds
    assert "stalled or its network is gone" in str(info.value)


def test_ctrl_c_stops_every_host_within_two_seconds(ssh_config, ctrl_c):
    with Inventory(load_cluster(ssh_config(operator={"command-timeout": 600}))) as inventory:
        hosts = inventory.hosts()
        inventory.map(hosts, lambda h: h.sh("true", sudo=False))  # connected: only the commands are slow
        timer = threading.Timer(1.0, _thread.interrupt_main)
        timer.start()
        start = time.monotonic()
        try:
            with pytest.raises(KeyboardInterrupt):
                inventory.map(hosts, lambda h: h.sh("sleep 60", sudo=False))
            stopped = time.monotonic() - start
        finally:
            timer.cancel()
            time.sleep(0.5)  # the workers see the cancellation within a poll
            CANCEL.clear()
    assert stopped < 3.0, stopped  # 1 s until the interrupt, then within 2 s


def test_clean_ups_after_an_interrupt_reach_every_host_at_once():
    """Releasing the lock after Ctrl-C fans out too: its workers must not see the cancellation."""
    from openi_tasks.ssh.channel import exempt_from_cancel
    from openi_tasks.ssh.errors import Cancelled
    from openi_tasks.ssh.fanout import fan_out

    CANCEL.set()
    try:
        with exempt_from_cancel():
            released = fan_out(["master1", "master2", "master3"], lambda name: f"released {name}", 3)
        stopped = fan_out(["master1"], lambda name: "ran", 1)
    finally:
        CANCEL.clear()
    assert released == {name: f"released {name}" for name in ("master1", "master2", "master3")}
    assert isinstance(stopped["master1"], Cancelled)


def test_a_connection_dropped_under_a_command_says_so(ssh_config, ssh_hosts):
    with Inventory(load_cluster(ssh_config(operator={"keepalive": 0}))) as inventory:
        host = inventory.hosts()[1]
        host.sh("true", sudo=False)
        killer = threading.Timer(1.0, lambda: [os.kill(pid, signal.SIGKILL) for pid in connection_processes(ssh_hosts, 1)])
        killer.start()
        with pytest.raises(Exception) as info:
            host.sh("sleep 20", sudo=False)
        killer.join()
    text = describe_error(info.value)
    assert "connection" in text.lower() and ("lost" in text or "closed" in text), text
    assert "-1" not in text


def test_a_silent_server_is_described_without_a_traceback(tmp_path, ssh_config, capfd):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts, never speaks SSH
    port = listener.getsockname()[1]
    machines = [{"hostname": "silent", "hostip": "127.0.0.1", "sshport": port, "machine-type": "standard",
                 "k8s-role": "master", "etcdid": "e1"}]
    directory = ssh_config(machines=machines, operator={"connect-timeout": 2, "host-key-policy": "accept-new",
                                                        "known-hosts": str(tmp_path / "kh")})
    from openi_tasks.main import prepare_process

    prepare_process()
    with Inventory(load_cluster(directory)) as inventory:
        with pytest.raises(Exception) as info:
            inventory.hosts()[0].sh("true", sudo=False)
    listener.close()
    assert "no SSH server answered" in describe_error(info.value)
    assert "Traceback" not in capfd.readouterr().err
    assert isinstance(info.value, (paramiko.SSHException, EOFError, OSError))


def test_commands_run_when_the_process_holds_more_than_1024_descriptors(ssh_config, ssh_hosts):
    """An operator's process holds descriptors for each of hundreds of hosts: a wait built on
    select() fails above descriptor 1023 ("filedescriptor out of range in select()": 956 of 1,000
    hosts failed a dry run that way in bench/dry_run_scale.py)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
    try:
        assert max(held) > 1024
        with Inventory(load_cluster(ssh_config())) as inventory:
            host = inventory.hosts()[0]
            assert host.sh("sleep 0.3; echo fine", sudo=False).stdout == "fine\n"
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_open_files_limit_is_raised_for_a_thousand_hosts():
    """Many systems start a process at a soft limit of 1024 open files; a run of 1,000 hosts holds
    a connection to each. The soft limit goes up as far as needed, never past the hard limit."""
    import resource

    from openi_tasks.ssh.inventory import ensure_open_files

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        ensure_open_files(4256)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (min(4256, hard), hard)
        ensure_open_files(100)  # never lowered
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == min(4256, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
