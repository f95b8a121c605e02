"""Machines -> Fabric connections, role groups, and a bounded parallel fan-out.

A `Host` is a `fabric.Connection` that knows its `Machine`: its SSH account, its sudo password
(in Fabric's config, so it travels on the command's stdin, never on a command line) and the
host keys it must present. An `Inventory` hands out one `Host` per machine for the whole run,
so each host is connected to once and the connection is reused by every phase.

    >>> inventory = Inventory(cluster)
    >>> results = inventory.group(inventory.hosts(role="master")).map(lambda h: h.sh("uptime"))
    >>> uptime, disk = host.sh_all(["uptime", "df -h /"])   # several commands, one round trip
    >>> host.sh_all(["systemctl stop x", FileWrite("/etc/x.conf", b"..."), "systemctl start x"], check=True)
    >>> results.failed          # {Host('master2'): NoValidConnectionsError(...)}

`BoundedGroup.map` never raises for a host's failure: every host maps to its result or to the
exception that stopped it, as in Fabric's `GroupResult`.
"""

from __future__ import annotations

import base64
import re
import select
import shlex
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import paramiko
from fabric import Config, Connection, ThreadingGroup
from fabric.exceptions import GroupException
from fabric.group import GroupResult
from invoke.exceptions import UnexpectedExit
from invoke.runners import Result
from paramiko.ssh_exception import NoValidConnectionsError

from .config import Cluster, Machine
from .errors import OpenIError


UID_MARK = "openi-uid="


class HostKeyError(OpenIError):
    """A host's SSH key is unknown (under the strict policy) or does not match known_hosts."""


class CommandTimeout(OpenIError):
    """A remote command ran longer than its timeout."""


class CommandFailed(OpenIError):
    """A remote command exited non-zero where success was required."""

    def __init__(self, host: str, command: str, result: Result) -> None:
        self.result = result
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-5:]
        detail = "\n    ".join(tail) if tail else "(no output)"
        super().__init__(f"{host}: `{_short(command)}` exited {result.exited}:\n    {detail}")


@dataclass(frozen=True)
class FileWrite:
    """A file to write as a step of `Host.sh_all`: owned by root with `mode`, the old file
    replaced atomically, or overwritten `in_place` (for mount points, such as /etc/hosts in a
    container). `content` is bytes, or a local file read piece by piece as it is sent (binaries
    of a hundred megabytes, to many hosts at once)."""

    path: str
    content: bytes | Path
    mode: int = 0o644
    in_place: bool = False

    @property
    def size(self) -> int:
        return len(self.content) if isinstance(self.content, bytes) else self.content.stat().st_size


def _pieces(content: bytes | Path) -> Iterator[bytes]:
    if isinstance(content, bytes):
        yield content
        return
    with open(content, "rb") as handle:
        while piece := handle.read(1 << 20):
            yield piece


def _short(command: str, limit: int = 120) -> str:
    command = " ".join(command.split())
    return command if len(command) <= limit else command[: limit - 3] + "..."


class KnownHosts:
    """The operator's known_hosts file, read once and shared by every connection of a run.

    Under `strict` a host whose key is not recorded is refused; under `accept-new` its key is
    trusted the first time and appended to the file. A key that differs from the recorded one is
    refused under both policies.
    """

    def __init__(self, path: str, policy: str) -> None:
        self.path = Path(path).expanduser()
        self.policy = policy
        self.keys = paramiko.HostKeys()
        if self.path.is_file():
            self.keys.load(str(self.path))
        self._lock = threading.Lock()
        self.accepted: list[str] = []

    @staticmethod
    def entry_name(address: str, port: int) -> str:
        return address if port == 22 else f"[{address}]:{port}"

    def prepare(self, host: "Host") -> None:
        """Give `host`'s client the keys recorded for it (by address, or by host name)."""
        name = self.entry_name(host.machine.address, host.machine.port)
        client_keys = host.client.get_host_keys()
        for alias in (name, self.entry_name(host.machine.hostname, host.machine.port)):
            for keytype, key in (self.keys.lookup(alias) or {}).items():
                client_keys.add(name, keytype, key)
        host.client.set_missing_host_key_policy(_MissingKey(self, host.machine))

    def accept(self, name: str, key: paramiko.PKey) -> None:
        with self._lock:
            if self.keys.lookup(name) is None:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write(f"{name} {key.get_name()} {key.get_base64()}\n")
                self.keys.add(name, key.get_name(), key)
                self.accepted.append(f"{name} {key.get_name()} {key.fingerprint}")


class _MissingKey(paramiko.MissingHostKeyPolicy):
    def __init__(self, known: KnownHosts, machine: Machine) -> None:
        self.known = known
        self.machine = machine

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.known.policy == "accept-new":
            self.known.accept(hostname, key)
            return
        raise HostKeyError(
            f"host key of {self.machine.hostname} ({hostname}) is not in {self.known.path}: "
            f"verify it and add it (ssh-keyscan -p {self.machine.port} {self.machine.address}), or set "
            f"operator.host-key-policy: accept-new to trust hosts on first use"
        )


class Host(Connection):
    """A connection to one machine of the cluster."""

    def __init__(self, machine: Machine, config: Config, known_hosts: KnownHosts, timeouts: tuple[int, int]) -> None:
        connect_timeout, command_timeout = timeouts
        connect_kwargs: dict[str, Any] = {
            "banner_timeout": connect_timeout,
            "auth_timeout": connect_timeout,
        }
        if machine.ssh_key:
            connect_kwargs.update(key_filename=[machine.ssh_key], look_for_keys=False)
        if machine.password is not None:
            connect_kwargs["password"] = machine.password.get_secret_value()
            if not machine.ssh_key:
                connect_kwargs.update(look_for_keys=False, allow_agent=False)
        host_config = config
        if machine.password is not None:  # a config of its own (cloning costs about 0.2 ms a host)
            host_config = config.clone()
            host_config.sudo.password = machine.password.get_secret_value()
        super().__init__(
            machine.address,
            user=machine.user,
            port=machine.port,
            config=host_config,
            connect_timeout=connect_timeout,
            connect_kwargs=connect_kwargs,
        )
        # A Connection is an Invoke DataProxy: plain assignment would store these in its config
        # (and hand back copies). _set makes them real attributes.
        self._set(machine=machine, command_timeout=command_timeout, _uid=None)
        known_hosts.prepare(self)

    def open(self) -> Any:
        """Connect (once), with Nagle's algorithm off from the first packet: the handshake and
        every command are small packets that must not wait for delayed ACKs (about 40 ms each)."""
        if self.is_connected or self.gateway:
            return super().open()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except TimeoutError:
            raise
        except OSError as error:  # reported as paramiko reports it when it connects by itself
            raise NoValidConnectionsError({(self.host, self.port): error}) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connect_kwargs["sock"] = sock
        try:
            return super().open()
        except BaseException:
            sock.close()
            raise
        finally:
            del self.connect_kwargs["sock"]

    @property
    def name(self) -> str:
        return self.machine.hostname

    @property
    def is_root(self) -> bool:
        """Whether the login user is uid 0 (then commands need no sudo). Learned once per host,
        from the first command run with sudo, or asked here if none has run yet."""
        if self.machine.user == "root":
            return True
        if self._uid is None:
            result = self._exec("id -u", self.command_timeout)
            self._set(_uid=result.stdout.strip() if result.exited == 0 else "unknown")
        return self._uid == "0"

    def __repr__(self) -> str:
        return f"<Host {self.machine.hostname} {self.user}@{self.host}:{self.port}>"

    def sh(
        self,
        command: str,
        *,
        sudo: bool = True,
        check: bool = False,
        timeout: int | None = None,
        stdin: bytes | Sequence[bytes | Path] | None = None,
    ) -> Result:
        """Run `command` in a shell on the host, as root when `sudo` (the default).

        Output is captured, not printed. A non-zero exit is returned as the result, or raised
        as `CommandFailed` with `check=True`. A command running longer than `timeout` (default:
        the configuration's command-timeout) raises `CommandTimeout`. `stdin` (bytes, or parts
        sent one after another: bytes or local files) is fed to the command; not with a sudo
        password to type (sudo reads that from stdin).
        """
        # POSIX sh whatever the login shell is; `exec` spares the login shell a fork.
        wrapped = f"sh -c {shlex.quote(command)}"
        password = None
        probe = False
        elevated = sudo and self.machine.user != "root" and self._uid != "0"
        if elevated and stdin is not None and self.config.sudo.password is not None:
            if not self.is_root:
                raise ValueError("stdin cannot carry data when sudo needs a password")
            elevated = False
        if elevated:
            password = self.config.sudo.password
            elevate = "sudo -n" if password is None else f"sudo -S -p {shlex.quote(self.config.sudo.prompt)}"
            if self._uid is None:
                # The first command learns the login's uid in its own session instead of a round
                # trip of its own: it reports the uid on stderr and skips sudo for uid 0. Shell
                # built-ins only (no `id`, no second shell): this runs once per host per run.
                probe = True
                script = ('while read -r openi_key openi_real openi_uid openi_rest; do [ "$openi_key" = Uid: ] && break; '
                          f'done </proc/self/status; echo "{UID_MARK}$openi_uid" >&2; '
                          f'[ "$openi_uid" = 0 ] && {{ openi_command=$1; shift; eval "$openi_command"; exit; }}; '
                          f'exec {elevate} sh -c "$1"')
                wrapped = f"sh -c {shlex.quote(script)} sh {shlex.quote(command)}"
            else:
                wrapped = f"{elevate} {wrapped}"
        result = self._exec(f"exec {wrapped}", timeout or self.command_timeout, password, stdin)
        if probe:
            reported, _, rest = result.stderr.partition("\n")
            if reported.startswith(UID_MARK):
                self._set(_uid=reported[len(UID_MARK):])
                result.stderr = rest
        result.command = command
        if check and result.exited != 0:
            raise CommandFailed(self.name, command, result)
        return result

    def sh_all(
        self,
        steps: Sequence[str | FileWrite],
        *,
        sudo: bool = True,
        check: bool = False,
        timeout: int | None = None,
    ) -> list[Result]:
        """Run `steps` one after another in a single session: one round trip for all of them.

        A step is a command or a `FileWrite`. Each command runs in its own subshell (so `exit`,
        `cd` and shell options stay inside it), with stdin from /dev/null, and gets its own result.
        With `check=True` the first failure stops the rest and is raised as `CommandFailed`;
        without it every command runs. File writes need `check=True`: their contents share the
        session's input, so after a failed write the rest could not be matched to their files.
        `timeout` is for the whole batch.
        """
        if not steps:
            return []
        writes = [step for step in steps if isinstance(step, FileWrite)]
        if writes and not check:
            raise ValueError("a batch with file writes needs check=True")
        boundary = f"openi-{uuid.uuid4().hex}"
        staged = self._stage(writes) if writes and self.config.sudo.password is not None and not self.is_root else []
        sources = iter(staged)
        commands = [self._write_command(step, next(sources, None), boundary) if isinstance(step, FileWrite) else step
                    for step in steps]
        # Each content, then the boundary's line; as parts, never joined (contents may be binaries
        # of a hundred megabytes).
        stdin = None if staged else [part for w in writes for part in (w.content, f"{boundary}\n".encode())] or None
        stop = "[ $rc -eq 0 ] || break; " if check else ""
        # The commands travel as positional parameters and are evaluated in subshells: a fork
        # each, no new shell to start. Writes read their contents from the session's input, kept
        # as fd 3.
        script = (("exec 3<&0\n" if stdin else "")
                  + f"set -- {' '.join(shlex.quote(command) for command in commands)}\n"
                  + 'for c; do (eval "$c") </dev/null; rc=$?; '
                  + f"printf '\\n{boundary} %d\\n' $rc; printf '\\n{boundary}\\n' >&2; {stop}done"
                  + "".join(f"; rm -f {source}" for source in staged) + "; exit $rc")
        batch = self.sh(script, sudo=sudo, timeout=timeout, stdin=stdin)
        outputs = re.split(f"\n{boundary} (-?\\d+)\n", batch.stdout)
        errors = batch.stderr.split(f"\n{boundary}\n")
        results = []
        for index, step in enumerate(steps[: len(outputs) // 2]):
            command = f"write {step.path}" if isinstance(step, FileWrite) else step
            results.append(Result(stdout=outputs[2 * index], stderr=errors[index] if index < len(errors) else "",
                                  exited=int(outputs[2 * index + 1]), command=command, hide=("stdout", "stderr")))
        stopped = check and results and results[-1].exited != 0
        if len(results) < len(steps) and not stopped:  # the batch's shell itself failed
            raise CommandFailed(self.name, f"batch of {len(steps)} commands", batch)
        if stopped:
            raise CommandFailed(self.name, results[-1].command, results[-1])
        return results

    def _stage(self, writes: list[FileWrite]) -> list[str]:
        """Upload `writes` over SFTP into private (0600) files in the login user's home; for a
        login whose sudo reads a password from the session's input, which the contents then
        cannot share."""
        sftp = self.sftp()
        home = sftp.normalize(".")
        staged = []
        for write in writes:
            name = f".openi-upload-{uuid.uuid4().hex}"
            with sftp.open(name, "wb") as handle:
                handle.chmod(0o600)
                handle.set_pipelined(True)  # no round trip per 32 KB; a failed write raises at close
                for piece in _pieces(write.content):
                    handle.write(piece)
            staged.append(shlex.quote(f"{home}/{name}"))
        return staged

    @staticmethod
    def _write_command(write: FileWrite, staged: str | None, boundary: str) -> str:
        """The command of a `FileWrite` step: the content comes complete onto the host before the
        target is touched, so a broken transfer leaves the target as it was."""
        target = shlex.quote(write.path)
        temporary = shlex.quote(f"{write.path}.openi-tmp-{uuid.uuid4().hex}")
        directory = shlex.quote(str(Path(write.path).parent))
        if staged is None:
            # Exactly its bytes from the session's input, then the boundary's line: a short or
            # misaligned input fails here instead of reaching the target.
            source = f"head -c {write.size} <&3"
            received = f'IFS= read -r end <&3 && [ "$end" = {boundary} ]'
        else:
            source, received = f"cat {staged}", "true"
        if write.in_place:
            install = f"{source} > {temporary} && {received} && cat {temporary} > {target} && chmod {write.mode:o} {target}"
            cleanup = f"rm -f {temporary}"
        else:
            install = (f"{source} | install -m {write.mode:o} -o 0 -g 0 /dev/stdin {temporary} && {received} "
                       f"&& mv -f {temporary} {target}")
            cleanup = f"[ $rc -eq 0 ] || rm -f {temporary}"
        return f"umask 077 && {{ test -d {directory} || mkdir -p {directory}; }} && {install}; rc=$?; {cleanup}; exit $rc"

    def _exec(self, command: str, timeout: float, sudo_password: str | None = None,
              stdin: bytes | Sequence[bytes | Path] | None = None) -> Result:
        """One command on its own channel of the host's connection, read without helper threads.

        A sudo password is written to the command's stdin only when sudo shows its prompt, and
        only once: a second prompt means the password was refused.
        """
        self.open()
        channel = self.client.get_transport().open_session(timeout=timeout)
        try:
            channel.exec_command(command)
            if stdin is not None:
                for part in [stdin] if isinstance(stdin, bytes) else stdin:
                    for piece in _pieces(part):
                        # A memoryview: paramiko's sendall re-slices what is left after every
                        # packet, which copies a bytes object each time (quadratic: 40 MB took 6 s).
                        channel.sendall(memoryview(piece))
                channel.shutdown_write()
            stdout, stderr = bytearray(), bytearray()
            prompt = self.config.sudo.prompt.encode()
            answered = False
            deadline = time.monotonic() + timeout
            while True:
                if channel.recv_ready():
                    stdout += channel.recv(65536)
                elif channel.recv_stderr_ready():
                    stderr += channel.recv_stderr(65536)
                    if sudo_password is not None and prompt in stderr:
                        if answered:
                            raise OpenIError(f"{self.name}: sudo refused the configured password")
                        channel.sendall(sudo_password.encode() + b"\n")
                        stderr = stderr.replace(prompt, b"", 1)
                        answered = True
                elif channel.eof_received or channel.closed:
                    break
                else:
                    self._wait(channel, deadline, timeout)
            if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise CommandTimeout(f"{self.name}: command timed out after {timeout}s")
            exit_code = channel.recv_exit_status()
        finally:
            channel.close()
        return Result(stdout=stdout.decode(errors="replace"), stderr=stderr.decode(errors="replace"),
                      exited=exit_code, command=command, hide=("stdout", "stderr"))

    def _wait(self, channel: paramiko.Channel, deadline: float, timeout: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CommandTimeout(f"{self.name}: command timed out after {timeout}s")
        select.select([channel], [], [], min(remaining, 1.0))

    def read_file(self, path: str) -> bytes | None:
        """A file's content, or None when it does not exist (read as root)."""
        quoted = shlex.quote(path)
        result = self.sh(f"if test -e {quoted}; then base64 -w0 < {quoted}; else echo MISSING; fi", check=True)
        text = result.stdout.strip()
        return None if text == "MISSING" else base64.b64decode(text)

    def write_file(self, path: str, content: bytes | str, mode: int = 0o644, in_place: bool = False) -> None:
        """Write a file owned by root with `mode`, replacing the old one atomically (see `FileWrite`).

        The content never appears on a command line or in `ps`: it goes on the session's input
        (when no sudo password has to be typed), or over SFTP into a private (0600) file in the
        login user's home that is installed from there as root.
        """
        data = content.encode() if isinstance(content, str) else content
        self.sh_all([FileWrite(path, data, mode, in_place)], check=True)


def describe_error(exc: BaseException) -> str:
    """One line that says why a host failed, for tables."""
    if isinstance(exc, OpenIError):
        return str(exc)
    if isinstance(exc, paramiko.BadHostKeyException):
        return (
            f"host key MISMATCH for {exc.hostname}: got {exc.key.get_name()} {exc.key.fingerprint}, "
            f"expected {exc.expected_key.fingerprint}; refusing to connect (possible man-in-the-middle)"
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return f"SSH authentication failed: {exc}"
    if isinstance(exc, NoValidConnectionsError):
        return f"cannot connect: {'; '.join(str(e) for e in exc.errors.values()) or exc}"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "cannot connect: timed out"
    if isinstance(exc, UnexpectedExit):
        return f"command exited {exc.result.exited}"
    return f"{type(exc).__name__}: {exc}"


def fan_out(items: Sequence, work: Callable[[Any], Any], limit: int) -> dict:
    """Run `work(item)` for every item, at most `limit` at once; item -> result or exception."""
    results: dict = {}
    if not items:
        return results
    with ThreadPoolExecutor(max_workers=max(1, min(limit, len(items)))) as pool:
        futures = {pool.submit(work, item): item for item in items}
        for future, item in futures.items():
            try:
                results[item] = future.result()
            except Exception as exc:  # a host's failure is a result, never lost
                results[item] = exc
    return results


class BoundedGroup(ThreadingGroup):
    """Fabric's `ThreadingGroup` with at most `limit` hosts worked on at once.

    `group.run("cmd")` behaves as in Fabric (raises `GroupException` carrying every result when
    any host failed); `group.map(fn)` runs a Python function per host and returns the
    `GroupResult` without raising.
    """

    def __init__(self, hosts: Iterable[Host], limit: int) -> None:
        super().__init__()
        self.extend(hosts)
        self.limit = limit

    def _do(self, method: str, *args: Any, **kwargs: Any) -> GroupResult:
        results = self.map(lambda host: getattr(host, method)(*args, **kwargs))
        if results.failed:
            raise GroupException(results)
        return results

    def map(self, work: Callable[[Host], Any]) -> GroupResult:
        return GroupResult(fan_out(list(self), work, self.limit))


class Inventory:
    """One `Host` per machine for a run, with role groups and a bounded fan-out."""

    def __init__(self, cluster: Cluster, machines: Iterable[Machine] | None = None) -> None:
        self.cluster = cluster
        op = cluster.operator
        self.known_hosts = KnownHosts(op.known_hosts, op.host_key_policy)
        self.limit = op.concurrency
        self._config = Config(overrides={"load_ssh_configs": False, "run": {"in_stream": False}})
        self._timeouts = (op.connect_timeout, op.command_timeout)
        self._machines = {m.hostname: m for m in (machines if machines is not None else cluster.machines)}
        self._hosts: dict[str, Host] = {}
        self._lock = threading.Lock()

    def host(self, hostname: str) -> Host:
        with self._lock:
            if hostname not in self._hosts:
                machine = self._machines[hostname]
                self._hosts[hostname] = Host(machine, self._config, self.known_hosts, self._timeouts)
            return self._hosts[hostname]

    def hosts(self, role: str | None = None, names: Iterable[str] | None = None) -> list[Host]:
        """Hosts in configuration order, optionally only of `role` and/or named in `names`."""
        wanted = set(names) if names is not None else None
        return [
            self.host(m.hostname)
            for m in self._machines.values()
            if (role is None or m.role == role) and (wanted is None or m.hostname in wanted)
        ]

    def group(self, hosts: Iterable[Host]) -> BoundedGroup:
        return BoundedGroup(hosts, self.limit)

    def close(self) -> None:
        for host in self._hosts.values():
            host.close()

    def __enter__(self) -> "Inventory":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
