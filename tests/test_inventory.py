"""The SSH layer against real sshd servers on loopback addresses."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import threading
import time

import paramiko
import pytest

from openi_tasks.cluster.exec import run_everywhere
from openi_tasks.config import load_cluster
from openi_tasks.ssh import CommandFailed, CommandTimeout, FileWrite, HostKeyError, Inventory, describe_error

from .sshd import PLAIN_ROOT, SUDO_USER, count_sessions

pytestmark = pytest.mark.sshd


def inventory_for(directory) -> Inventory:
    return Inventory(load_cluster(directory))


def test_each_host_runs_the_command_on_its_own_server(ssh_config, ssh_hosts):
    with inventory_for(ssh_config()) as inventory:
        hosts = inventory.hosts()
        results = inventory.map(hosts, lambda h: h.sh("echo $SSH_CONNECTION", sudo=False).stdout.split()[2])
    assert not results.failed
    assert {h.name: r for h, r in results.items()} == {
        f"node{i + 1}": address for i, address in enumerate(ssh_hosts.addresses)
    }


def _intervals(inventory: Inventory, seconds: float) -> list[tuple[float, float]]:
    script = f"date +%s.%N; sleep {seconds}; date +%s.%N"
    results = inventory.map(inventory.hosts(), lambda h: h.sh(script, sudo=False).stdout.split())
    assert not results.failed, results.failed
    return [(float(a), float(b)) for a, b in results.values()]


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def test_hosts_run_in_parallel(ssh_config, ssh_hosts):
    with inventory_for(ssh_config()) as inventory:
        inventory.map(inventory.hosts(), lambda h: h.open())  # handshakes are not under test
        intervals = _intervals(inventory, 1.0)
    assert _most_at_once(intervals) == len(ssh_hosts.addresses)


def test_concurrency_is_bounded(ssh_config):
    with inventory_for(ssh_config(operator={"concurrency": 2})) as inventory:
        intervals = _intervals(inventory, 0.5)
    assert _most_at_once(intervals) == 2


def test_one_connection_per_host_is_reused(ssh_config):
    with inventory_for(ssh_config()) as inventory:
        host = inventory.hosts()[0]
        first = host.sh("echo $SSH_CONNECTION", sudo=False).stdout
        second = host.sh("echo $SSH_CONNECTION", sudo=False).stdout
        assert inventory.host(host.name) is host
    assert first == second  # same client port: the same SSH connection


def test_a_failing_host_is_reported_and_the_others_succeed(ssh_config, ssh_hosts):
    failing = ssh_hosts.addresses[1]
    command = f'case "$SSH_CONNECTION" in *" {failing} "*) echo broken; exit 3;; esac; echo fine'
    with inventory_for(ssh_config()) as inventory:
        outcomes = run_everywhere(inventory, inventory.hosts(), command, sudo=False)
        results = inventory.map(inventory.hosts(), lambda h: h.sh(command, sudo=False, check=True))
    by_host = {o.host: o for o in outcomes}
    assert (by_host["node2"].exit_code, by_host["node2"].first_line) == (3, "broken")
    assert all(o.exit_code == 0 and o.first_line == "fine" for name, o in by_host.items() if name != "node2")
    # Every host's result is kept, the failure among them as the exception that stopped it.
    assert len(results) == len(ssh_hosts.addresses)
    assert [h.name for h, r in results.items() if isinstance(r, CommandFailed)] == ["node2"]


def test_unreachable_host_is_a_failure_not_a_skip(ssh_config, ssh_hosts):
    machines = ssh_hosts.machines() + [
        {"hostname": "gone", "hostip": "127.0.0.99", "machine-type": "standard", "k8s-role": "worker"}
    ]
    with inventory_for(ssh_config(machines=machines)) as inventory:
        outcomes = run_everywhere(inventory, inventory.hosts(), "true", sudo=False)
    gone = next(o for o in outcomes if o.host == "gone")
    assert gone.exit_code is None and gone.first_line.startswith("cannot connect")
    assert sum(o.ok for o in outcomes) == len(ssh_hosts.addresses)


def test_unknown_host_key_is_refused_under_the_strict_policy(ssh_config, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with inventory_for(ssh_config(operator={"known-hosts": str(empty)})) as inventory:
        with pytest.raises(HostKeyError) as info:
            inventory.hosts()[0].sh("true", sudo=False)
    assert "ssh-keyscan -p 2222 127.0.0.2" in str(info.value) and "accept-new" in str(info.value)
    assert empty.read_text() == ""


def test_accept_new_records_keys_once_and_refuses_a_changed_key(ssh_config, ssh_hosts, tmp_path):
    known = tmp_path / "tofu_known_hosts"
    directory = ssh_config(operator={"known-hosts": str(known), "host-key-policy": "accept-new"})
    with inventory_for(directory) as inventory:
        inventory.map(inventory.hosts(), lambda h: h.sh("true", sudo=False, check=True))
        assert len(inventory.known_hosts.accepted) == len(ssh_hosts.addresses)
    recorded = known.read_text().splitlines()
    assert sorted(line.split()[0] for line in recorded) == sorted(f"[{a}]:2222" for a in ssh_hosts.addresses)
    # The recorded keys are the servers' real keys.
    assert set(recorded) == set(ssh_hosts.known_hosts.read_text().splitlines())
    with inventory_for(directory) as inventory:
        inventory.hosts()[0].sh("true", sudo=False)
        assert inventory.known_hosts.accepted == []
    # A different key for a known host is refused, even under accept-new.
    other = paramiko.Ed25519Key.from_private_key_file(str(ssh_hosts.client_key))
    first = recorded[0].split()[0]
    known.write_text(f"{first} ssh-ed25519 {other.get_base64()}\n")
    with inventory_for(directory) as inventory:
        host = next(h for h in inventory.hosts() if f"[{h.machine.address}]:2222" == first)
        with pytest.raises(paramiko.BadHostKeyException) as info:
            host.sh("true", sudo=False)
    assert "MISMATCH" in describe_error(info.value)


def test_hashed_and_plain_known_hosts_lines_are_both_trusted(ssh_config, ssh_hosts, tmp_path):
    """OpenSSH's HashKnownHosts writes |1|salt|hash names: those hosts connect under the strict
    policy too, beside hosts listed by plain name (the file hashed by OpenSSH's own ssh-keygen)."""
    known = tmp_path / "known_hosts"
    lines = ssh_hosts.known_hosts.read_text().splitlines()
    hashed = tmp_path / "hashed"
    hashed.write_text("\n".join(lines[1:]) + "\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(hashed)], check=True, capture_output=True)
    assert all(line.startswith("|1|") for line in hashed.read_text().splitlines())
    known.write_text(lines[0] + "\n" + hashed.read_text())
    with inventory_for(ssh_config(operator={"known-hosts": str(known)})) as inventory:
        results = inventory.map(inventory.hosts(), lambda h: h.sh("hostname", sudo=False, check=True))
    assert len(results) == len(ssh_hosts.addresses)
    assert all(not isinstance(result, Exception) for result in results.values()), results


def test_an_idle_connection_does_not_wake_the_operator(ssh_config, ssh_hosts):
    """paramiko's reader thread woke every 0.1 s on an idle connection to see whether it was
    closed: 10,000 wake-ups a second for a run holding 1,000 hosts. Counted by the kernel (the
    thread's voluntary context switches) over 2 idle seconds: at most a few now, 20 before."""
    with inventory_for(ssh_config()) as inventory:
        host = inventory.hosts()[0]
        host.sh("true", sudo=False, check=True)
        time.sleep(0.3)  # the session's last packets
        status = f"/proc/self/task/{host.transport.native_id}/status"

        def sleeps() -> int:
            with open(status) as handle:
                return int(next(line.split()[1] for line in handle if line.startswith("voluntary_ctxt_switches")))

        before = sleeps()
        time.sleep(2)
        woken = sleeps() - before
    assert woken <= 2, f"the idle connection's reader woke {woken} times in 2 s"


def _sudo_machine(ssh_hosts, password):
    machines = ssh_hosts.machines()
    machines[1].update({"username": SUDO_USER, "password": password})
    return machines


def test_sudo_with_a_password_runs_as_root_and_keeps_the_password_out_of_ps(ssh_config, ssh_hosts):
    directory = ssh_config(machines=_sudo_machine(ssh_hosts, ssh_hosts.sudo_password))
    seen: list[str] = []
    with inventory_for(directory) as inventory:
        host = inventory.host("node2")
        assert host.sh("id -un", sudo=False).stdout.strip() == SUDO_USER
        assert host.sh("id -un").stdout.strip() == "root"

        def watch():
            for _ in range(20):
                seen.append(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout)
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        result = host.sh("sleep 1.5; echo done")
        watcher.join()
    assert result.stdout.strip() == "done" and "password" not in result.stderr
    assert any("sleep 1.5" in snapshot for snapshot in seen), "the watcher saw the command run"
    assert not any(ssh_hosts.sudo_password in snapshot for snapshot in seen)


def test_wrong_sudo_password_is_a_clear_error(ssh_config, ssh_hosts):
    machines = _sudo_machine(ssh_hosts, "not-the-password")
    machines[1]["ssh-key"] = str(ssh_hosts.client_key)  # log in with the key; sudo needs the password
    with inventory_for(ssh_config(machines=machines)) as inventory:
        with pytest.raises(Exception) as info:
            inventory.host("node2").sh("true")
    assert describe_error(info.value) == "node2: sudo refused the configured password"
    assert "not-the-password" not in str(info.value)


def test_files_are_written_atomically_with_their_mode_as_root(ssh_config, ssh_hosts):
    directory = ssh_config(machines=_sudo_machine(ssh_hosts, ssh_hosts.sudo_password))
    target = f"/tmp/openi-test-{time.time_ns()}/pki/secret.key"
    with inventory_for(directory) as inventory:
        host = inventory.host("node2")
        assert host.read_file(target) is None
        host.write_file(target, b"secret bytes\n\x00\xff", 0o600)
        assert host.read_file(target) == b"secret bytes\n\x00\xff"
        assert host.sh(f"stat -c '%a %U' {target}").stdout.strip() == "600 root"
        assert host.sh("ls -A ~ | grep -c openi-upload || true", sudo=False).stdout.strip() == "0"
        with pytest.raises(CommandFailed):
            host.sh("exit 4", check=True)
    subprocess.run(["rm", "-rf", target.rsplit("/pki/", 1)[0]], check=True)


def test_a_command_that_runs_too_long_times_out_and_the_connection_stays_usable(ssh_config):
    with inventory_for(ssh_config()) as inventory:
        host = inventory.hosts()[0]
        start = time.monotonic()
        with pytest.raises(CommandTimeout, match="timed out after 1s"):
            host.sh("sleep 5", sudo=False, timeout=1)
        assert time.monotonic() - start < 3
        assert host.sh("echo still here", sudo=False).stdout == "still here\n"


def test_root_writes_go_over_stdin_and_leave_nothing_behind(ssh_config):
    target_dir = f"/tmp/openi-test-root-{time.time_ns()}"
    with inventory_for(ssh_config()) as inventory:
        host = inventory.hosts()[0]
        assert host.is_root
        host.write_file(f"{target_dir}/key.pem", b"\x00binary\xffsecret\n", 0o600)
        host.write_file(f"{target_dir}/key.pem", b"second version\n", 0o640)
        assert host.read_file(f"{target_dir}/key.pem") == b"second version\n"
        assert host.sh(f"stat -c '%a %U' {target_dir}/key.pem").stdout.strip() == "640 root"
        assert host.sh(f"ls -A {target_dir}").stdout.split() == ["key.pem"]
    subprocess.run(["rm", "-rf", target_dir], check=True)


def test_a_batch_runs_in_one_session_and_keeps_each_commands_output_and_status(ssh_config):
    with inventory_for(ssh_config()) as inventory:
        host = inventory.hosts()[0]
        assert host.is_root
        opened = count_sessions(host)
        results = host.sh_all([
            "cd /tmp && printf 'no newline'",
            "echo to-stderr >&2; exit 3",
            "pwd; cat",  # its own shell (the cd above does not leak) and no stdin to read
            "printf 'two\\nlines\\n'",
            "if then fi",  # a syntax error stays in its own command
            "echo \"it's\" 'a \"quoted\"'\necho second line",
        ])
        assert opened[0] == 1
        home = host.sh("pwd").stdout
    assert home.strip() not in ("", "/tmp")
    assert [r.exited for r in results[:4]] == [0, 3, 0, 0] and results[4].exited != 0 and results[5].exited == 0
    assert [r.stdout for r in results] == ["no newline", "", home, "two\nlines\n", "", "it's a \"quoted\"\nsecond line\n"]
    assert [r.stderr for r in results[:4]] == ["", "to-stderr\n", "", ""] and "syntax error" in results[4].stderr.lower()
    assert results[1].command == "echo to-stderr >&2; exit 3"


def test_a_checked_batch_stops_at_the_first_failure(ssh_config):
    marker = f"/tmp/openi-test-batch-{time.time_ns()}"
    with inventory_for(ssh_config()) as inventory:
        host = inventory.hosts()[0]
        with pytest.raises(CommandFailed) as info:
            host.sh_all(["true", "echo broken >&2; exit 5", f"touch {marker}"], check=True)
        assert info.value.result.exited == 5 and "broken" in info.value.result.stderr
        assert host.sh(f"test -e {marker}").exited == 1
        assert host.sh_all([]) == []


def test_a_batch_runs_as_root_through_sudo_with_a_password(ssh_config, ssh_hosts):
    directory = ssh_config(machines=_sudo_machine(ssh_hosts, ssh_hosts.sudo_password))
    with inventory_for(directory) as inventory:
        host = inventory.host("node2")
        results = host.sh_all(["id -un", "id -u"], check=True)
        assert [r.stdout for r in results] == ["root\n", "0\n"]
        assert [r.stdout for r in host.sh_all(["id -un"], sudo=False)] == [f"{SUDO_USER}\n"]


@pytest.mark.parametrize("login", ["root", "sudo-with-password"])
def test_writes_and_commands_share_one_batch(ssh_config, ssh_hosts, login):
    target_dir = f"/tmp/openi-test-batch-writes-{time.time_ns()}"
    binary = bytes(range(256)) * 40 + b"openi-no-trailing-newline"
    with inventory_for(ssh_config(machines=_sudo_machine(ssh_hosts, ssh_hosts.sudo_password))) as inventory:
        host = inventory.host("node1" if login == "root" else "node2")
        host.sh("true")  # the login's uid is learned: only the batch's own sessions are counted
        opened = count_sessions(host)
        results = host.sh_all([
            f"test -e {target_dir}; echo $?",
            FileWrite(f"{target_dir}/a/secret.key", binary, 0o600),
            f"sha256sum < {target_dir}/a/secret.key",
            FileWrite(f"{target_dir}/b.conf", b"", 0o644),
            FileWrite(f"{target_dir}/c.conf", b"third\n", 0o640),
            f"stat -c '%a %U %s' {target_dir}/a/secret.key {target_dir}/b.conf {target_dir}/c.conf",
        ], check=True)
        # The password's login stages its contents over SFTP first: one more session, no more.
        assert opened[0] == (1 if login == "root" else 2)
        assert [results[1].command, results[4].command] == [f"write {target_dir}/a/secret.key", f"write {target_dir}/c.conf"]
        assert results[0].stdout == "1\n"
        assert results[2].stdout.split()[0] == hashlib.sha256(binary).hexdigest()
        assert results[5].stdout.splitlines() == ["600 root 10265", "644 root 0", "640 root 6"]
        assert host.read_file(f"{target_dir}/c.conf") == b"third\n"
        assert sorted(host.sh(f"ls -A {target_dir} {target_dir}/a").stdout.split()) == \
            sorted([f"{target_dir}:", "a", "b.conf", "c.conf", f"{target_dir}/a:", "secret.key"])
        assert host.sh("ls -A ~ | grep -c openi-upload || true", sudo=False).stdout.strip() == "0"
    subprocess.run(["rm", "-rf", target_dir], check=True)


@pytest.mark.parametrize("login", ["root", "sudo-with-password"])
def test_a_failed_write_stops_the_batch_and_leaves_nothing_behind(ssh_config, ssh_hosts, login):
    target_dir = f"/tmp/openi-test-batch-fail-{time.time_ns()}"
    with inventory_for(ssh_config(machines=_sudo_machine(ssh_hosts, ssh_hosts.sudo_password))) as inventory:
        host = inventory.host("node1" if login == "root" else "node2")
        host.write_file(f"{target_dir}/blocker", "a file, not a directory\n")
        with pytest.raises(CommandFailed) as info:
            host.sh_all([
                FileWrite(f"{target_dir}/first", b"one\n"),
                FileWrite(f"{target_dir}/blocker/below", b"two\n"),
                FileWrite(f"{target_dir}/third", b"three\n"),
            ], check=True)
        assert f"write {target_dir}/blocker/below" in str(info.value)
        assert host.sh(f"ls -A {target_dir}").stdout.split() == ["blocker", "first"]
        assert host.sh("ls -A ~ | grep -c openi-upload || true", sudo=False).stdout.strip() == "0"
        with pytest.raises(ValueError, match="check=True"):
            host.sh_all([FileWrite(f"{target_dir}/unchecked", b"x")])
    subprocess.run(["rm", "-rf", target_dir], check=True)


@pytest.mark.parametrize("login", ["root", "sudo-with-password"])
def test_large_contents_arrive_whole(ssh_config, ssh_hosts, tmp_path, login):
    target_dir = f"/tmp/openi-test-large-{time.time_ns()}"
    contents = [os.urandom(6 * 1024 * 1024 + 7), os.urandom(3 * 1024 * 1024 + 5)]
    local = tmp_path / "binary"  # the second is sent from a local file, piece by piece
    local.write_bytes(contents[1])
    with inventory_for(ssh_config(machines=_sudo_machine(ssh_hosts, ssh_hosts.sudo_password))) as inventory:
        host = inventory.host("node1" if login == "root" else "node2")
        results = host.sh_all([FileWrite(f"{target_dir}/0", contents[0], 0o755), FileWrite(f"{target_dir}/1", local, 0o755),
                               f"sha256sum {target_dir}/0 {target_dir}/1"], check=True)
    assert [line.split()[0] for line in results[-1].stdout.splitlines()] == \
        [hashlib.sha256(content).hexdigest() for content in contents]
    subprocess.run(["rm", "-rf", target_dir], check=True)


def test_a_short_input_never_reaches_the_target(ssh_config, monkeypatch):
    target = f"/tmp/openi-test-short-{time.time_ns()}"
    with inventory_for(ssh_config()) as inventory:
        host = inventory.hosts()[0]
        host.write_file(target, "old\n")
        exec_one = type(host)._exec

        def truncating(self, command, timeout, sudo_password=None, stdin=None):
            return exec_one(self, command, timeout, sudo_password, stdin[:-20] if stdin else stdin)

        monkeypatch.setattr(type(host), "_exec", truncating)
        with pytest.raises(CommandFailed):
            host.write_file(target, "new content that is cut short on its way\n")
        monkeypatch.undo()
        assert host.read_file(target) == b"old\n"
        assert host.sh(f"ls {target}*").stdout.split() == [target]
        host.sh(f"rm -f {target}", check=True)


def test_the_first_command_learns_the_login_uid_without_a_round_trip_of_its_own(ssh_config, ssh_hosts):
    machines = _sudo_machine(ssh_hosts, ssh_hosts.sudo_password)
    machines[0]["username"] = PLAIN_ROOT  # uid 0 under another name: must not pay sudo
    ssh_hosts.defaults(PLAIN_ROOT)
    with inventory_for(ssh_config(machines=machines)) as inventory:
        plain, sudoer = inventory.host("node1"), inventory.host("node2")
        for host, login in ((plain, PLAIN_ROOT), (sudoer, SUDO_USER)):
            opened = count_sessions(host)
            first = host.sh("id -un; echo \"sudo_user=${SUDO_USER:-}\"; echo err >&2", check=True)
            assert opened[0] == 1, host.name
            assert first.stderr == "err\n"  # the uid report is taken out of the output
            second = host.sh("id -un; echo \"sudo_user=${SUDO_USER:-}\"", check=True)
            assert first.stdout == second.stdout
            assert opened[0] == 2
        assert plain._uid == "0" and plain.is_root
        assert first.stdout == f"root\nsudo_user={SUDO_USER}\n"  # the sudoer's, through sudo
        assert plain.sh("echo \"sudo_user=${SUDO_USER:-}\"").stdout == "sudo_user=\n"
        assert sudoer._uid not in (None, "0") and not sudoer.is_root


@pytest.mark.parametrize("login", ["root", "sudo-with-password"])
def test_in_place_writes_keep_the_file_and_leave_nothing_behind(ssh_config, ssh_hosts, login):
    machines = _sudo_machine(ssh_hosts, ssh_hosts.sudo_password)
    target_dir = f"/tmp/openi-test-in-place-{time.time_ns()}"
    target = f"{target_dir}/hosts"
    with inventory_for(ssh_config(machines=machines)) as inventory:
        host = inventory.host("node1" if login == "root" else "node2")
        host.write_file(target, "first\n", 0o644)
        inode = host.sh(f"stat -c %i {target}").stdout
        host.write_file(target, "second\n", 0o640, in_place=True)
        assert host.read_file(target) == b"second\n"
        assert host.sh(f"stat -c '%i %a %U' {target}").stdout == f"{inode.strip()} 640 root\n"
        assert host.sh(f"ls -A {target_dir}").stdout.split() == ["hosts"]
        with pytest.raises(CommandFailed):  # the parent is a file: nothing is written anywhere
            host.write_file(f"{target}/below", "x", 0o644)
        assert host.sh(f"ls -A {target_dir}").stdout.split() == ["hosts"]
        assert host.sh("ls -A ~ | grep -c openi-upload || true", sudo=False).stdout.strip() == "0"
    subprocess.run(["rm", "-rf", target_dir], check=True)


def test_connections_have_nagle_off(ssh_config):
    with inventory_for(ssh_config()) as inventory:
        host = inventory.hosts()[0]
        host.open()
        sock = host.transport.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert "sock" not in host.connection.connect_kwargs  # the next connection makes its own


@pytest.mark.parametrize("login", ["root", "sudo-with-password"])
def test_a_gzipped_write_is_decompressed_into_place(ssh_config, tmp_path, login):
    import gzip

    content = os.urandom(200_000) + b"tail\n"
    packed = tmp_path / "payload.gz"
    packed.write_bytes(gzip.compress(content, 1))
    target = f"/tmp/openi-gzipped-{tmp_path.name}-{login}"
    with inventory_for(ssh_config()) as inventory:
        host = inventory.host("node1" if login == "root" else "node2")
        host.sh_all([FileWrite(target, packed, 0o640, gzipped=True)], check=True)
        digest = host.sh(f"sha256sum {target}; stat -c %a {target}; rm -f {target}").stdout.split()
    assert digest[0] == hashlib.sha256(content).hexdigest() and digest[2] == "640"
