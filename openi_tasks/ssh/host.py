"""A connection to one machine of the cluster, and the commands and file writes run over it.

A `Host` holds a Fabric `Connection` and uses it to connect and authenticate (keys, agent,
password, timeouts). It does not run commands through it: Invoke's runner costs three threads
and a 10 ms poll per command, and sudo's password would sit in Fabric's configuration, which
`inv -d` prints. Commands run on the connection's paramiko transport instead (`channel.execute`),
and the sudo password stays on the `Host`, written on a command's input only when sudo asks.
"""

from __future__ import annotations

import base64
import shlex
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, Sequence

from fabric import Config, Connection
from invoke.runners import Result
from paramiko.ssh_exception import NoValidConnectionsError

from . import batch, channel
from .batch import FileWrite, Step
from .errors import CommandFailed

if TYPE_CHECKING:
    from pathlib import Path

    from ..config import Machine
    from .known_hosts import KnownHosts

UID_MARK = "openi-uid="
SUDO_PROMPT = "[sudo] openi-tasks password: "
# How often paramiko's reader thread of an idle connection wakes up. paramiko sets 0.1 s on the
# socket (to notice a close): 10 wake-ups a second per host, 10,000 with 1,000 hosts connected,
# each taking the interpreter's lock. Data wakes the reader at once whatever this is, and a close
# needs no wake-up (`Transport.close` does not wait for the thread).
IDLE_WAKE = 5.0
# Called after every command with (host name, command, result, seconds): the run log.
CommandLog = Callable[[str, str, Result, float], None]


class Host:
    """One machine: its `Machine` entry, its SSH connection, and the commands run on it."""

    def __init__(self, machine: "Machine", known_hosts: "KnownHosts", *, connect_timeout: float,
                 command_timeout: float, keepalive: float, log: CommandLog | None = None) -> None:
        self.machine = machine
        self.known_hosts = known_hosts
        self.command_timeout = command_timeout
        self.keepalive = keepalive
        self.log = log
        connect_kwargs: dict[str, Any] = {"banner_timeout": connect_timeout, "auth_timeout": connect_timeout}
        if machine.ssh_key:
            connect_kwargs.update(key_filename=[machine.ssh_key], look_for_keys=False)
        self._password = machine.password.get_secret_value() if machine.password is not None else None
        if self._password is not None:
            connect_kwargs["password"] = self._password
            if not machine.ssh_key:
                connect_kwargs.update(look_for_keys=False, allow_agent=False)
        self.connection = Connection(machine.address, user=machine.user, port=machine.port,
                                     config=Config(overrides={"load_ssh_configs": False}),
                                     connect_timeout=connect_timeout, connect_kwargs=connect_kwargs)
        known_hosts.prepare(self.connection.client, machine)
        self._uid: str | None = None
        self._open_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.machine.hostname

    def __repr__(self) -> str:
        return f"<Host {self.machine.hostname} {self.machine.user}@{self.machine.address}:{self.machine.port}>"

    # --- the connection ------------------------------------------------------------------------

    def open(self) -> None:
        """Connect (once), with Nagle's algorithm off from the first packet: the handshake and
        every command are small packets that must not wait for delayed ACKs (about 40 ms each)."""
        with self._open_lock:
            if self.connection.is_connected:
                return
            timeout = self.connection.connect_timeout
            try:
                sock = socket.create_connection((self.machine.address, self.machine.port), timeout=timeout)
            except TimeoutError:
                raise
            except OSError as error:  # reported as paramiko reports it when it connects by itself
                raise NoValidConnectionsError({(self.machine.address, self.machine.port): error}) from None
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connection.connect_kwargs["sock"] = sock
            try:
                self.connection.open()
            except BaseException:
                sock.close()
                self.connection.close()
                raise
            finally:
                del self.connection.connect_kwargs["sock"]
            sock.settimeout(IDLE_WAKE)  # after the handshake, whose timeouts paramiko checks at each wake-up
            self.known_hosts.check_not_revoked(self.transport.get_remote_server_key(), self.machine)

    @property
    def transport(self):
        return self.connection.client.get_transport()

    def close(self) -> None:
        self.connection.close()

    def sftp(self):
        self.open()
        return self.connection.sftp()

    @property
    def is_root(self) -> bool:
        """Whether the login user is uid 0 (then commands need no sudo). Learned once per host,
        from the first command run with sudo, or asked here if none has run yet."""
        if self.machine.user == "root":
            return True
        if self._uid is None:
            result = self._exec("id -u", self.command_timeout)
            self._uid = result.stdout.strip() if result.exited == 0 else "unknown"
        return self._uid == "0"

    # --- commands ------------------------------------------------------------------------------

    def sh(self, command: str, *, sudo: bool = True, check: bool = False, timeout: float | None = None,
           stdin: bytes | Sequence[bytes | Path] | None = None) -> Result:
        """Run `command` in a shell on the host, as root when `sudo` (the default).

        Output is captured, not printed. A non-zero exit is returned as the result, or raised as
        `CommandFailed` with `check=True`. A command running longer than `timeout` (default: the
        configuration's command-timeout) raises `CommandTimeout`; a dead or stalled host raises
        `ConnectionLost` within a few keepalive intervals. `stdin` (bytes, or parts sent one after
        another: bytes or local files) is fed to the command; not with a sudo password to type
        (sudo reads that from stdin).
        """
        # POSIX sh whatever the login shell is; `exec` spares the login shell a fork.
        wrapped = f"sh -c {shlex.quote(command)}"
        password = None
        probe = False
        elevated = sudo and self.machine.user != "root" and self._uid != "0"
        if elevated and stdin is not None and self._password is not None:
            if not self.is_root:
                raise ValueError("stdin cannot carry data when sudo needs a password")
            elevated = False
        if elevated:
            password = self._password
            elevate = "sudo -n" if password is None else f"sudo -S -p {shlex.quote(SUDO_PROMPT)}"
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
        start = time.monotonic()
        result = self._exec(f"exec {wrapped}", timeout or self.command_timeout, password, stdin)
        if probe:
            reported, _, rest = result.stderr.partition("\n")
            if reported.startswith(UID_MARK):
                self._uid = reported[len(UID_MARK):]
                result.stderr = rest
        result.command = command
        if self.log is not None:
            self.log(self.name, command, result, time.monotonic() - start)
        if check and result.exited != 0:
            raise CommandFailed(self.name, command, result)
        return result

    def sh_all(self, steps: Sequence[Step], *, sudo: bool = True, check: bool = False,
               timeout: float | None = None) -> list[Result]:
        """Run `steps` one after another in a single session: one round trip for all of them.

        A step is a command or a `FileWrite`. With `check=True` the first failure stops the rest
        and is raised as `CommandFailed`; without it every command runs. File writes need
        `check=True`: their contents share the session's input, so after a failed write the rest
        could not be matched to their files. `timeout` is for the whole batch.
        """
        if not steps:
            return []
        writes = [step for step in steps if isinstance(step, FileWrite)]
        if writes and not check:
            raise ValueError("a batch with file writes needs check=True")
        boundary = batch.new_boundary()
        staged = self._stage(writes) if writes and self._password is not None and not self.is_root else []
        sources = iter(staged)
        commands = [batch.write_command(step, next(sources, None), boundary) if isinstance(step, FileWrite) else step
                    for step in steps]
        stdin = None if staged else batch.input_parts(writes, boundary) or None
        text = batch.script(commands, boundary, check=check, reads_input=stdin is not None, staged=staged)
        result = self.sh(text, sudo=sudo, timeout=timeout, stdin=stdin)
        results = batch.split(steps, result, boundary)
        stopped = check and results and results[-1].exited != 0
        if len(results) < len(steps) and not stopped:  # the batch's shell itself failed
            raise CommandFailed(self.name, f"batch of {len(steps)} commands", result)
        if stopped:
            raise CommandFailed(self.name, results[-1].command, results[-1])
        return results

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
                for piece in channel.pieces(write.content):
                    handle.write(piece)
            staged.append(shlex.quote(f"{home}/{name}"))
        return staged

    def _exec(self, command: str, timeout: float, sudo_password: str | None = None,
              stdin: bytes | Sequence[bytes | Path] | None = None) -> Result:
        self.open()
        return channel.execute(self.transport, command, host=self.name, timeout=timeout, keepalive=self.keepalive,
                               open_timeout=self.connection.connect_timeout, sudo_password=sudo_password,
                               sudo_prompt=SUDO_PROMPT, stdin=stdin)
