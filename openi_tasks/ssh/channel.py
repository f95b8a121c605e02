"""One command on its own channel of a host's SSH connection, read without helper threads.

Invoke's Runner spends three threads and a 10 ms poll on every command; this reads stdout and
stderr with one `select` loop. The same loop answers sudo's password prompt (once: a second
prompt means the password was refused), notices a dead or stalled peer by asking it for a
keepalive reply whenever it has been silent for a while, and stops soon after `CANCEL` is set
(Ctrl-C), so an interrupted run never waits for a slow host.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

import paramiko
from invoke.runners import Result

from ..errors import OpenIError
from .errors import Cancelled, CommandTimeout, ConnectionLost

# Set when the operator interrupts the run: every command on every host stops within a poll.
CANCEL = threading.Event()
POLL = 0.25  # seconds between looks at CANCEL and the deadline while a command is silent
_thread = threading.local()


def cancelled() -> bool:
    """Whether this thread's commands must stop: the run was interrupted, and this thread is not
    the one releasing what the run holds (see `exempt_from_cancel`)."""
    return CANCEL.is_set() and not is_exempt()


def is_exempt() -> bool:
    """Whether this thread is running clean-ups exempt from the cancellation."""
    return getattr(_thread, "exempt", False)


@contextlib.contextmanager
def exempt_from_cancel() -> Iterator[None]:
    """Commands of this thread run even though the run was interrupted: the clean-ups (releasing
    the cluster lock) after Ctrl-C. Other threads still stop."""
    _thread.exempt = True
    try:
        yield
    finally:
        _thread.exempt = False


def pieces(content: bytes | Path) -> Iterator[bytes]:
    """Bytes as they are, a local file a megabyte at a time (never the whole file in memory)."""
    if isinstance(content, bytes):
        yield content
        return
    with open(content, "rb") as handle:
        while piece := handle.read(1 << 20):
            yield piece


def peer_answers(transport: paramiko.Transport, timeout: float) -> bool:
    """Whether the peer answers a keepalive request within `timeout` seconds.

    paramiko's own keepalive asks for no reply, so it cannot tell a dead peer from a quiet one;
    this one waits for the reply (OpenSSH answers an unknown request with a failure, which counts).
    paramiko's `global_request` has no timeout of its own: it runs in a short-lived thread, which
    ends when the reply comes or when the caller closes the dead connection.
    """
    answered = threading.Event()

    def ask() -> None:
        try:
            transport.global_request("keepalive@openssh.com", wait=True)
        finally:
            answered.set()

    threading.Thread(target=ask, name="openi-keepalive", daemon=True).start()
    return answered.wait(timeout) and transport.is_active()


class Liveness:
    """Whether a peer that has been silent is still there; asks at most every `interval` seconds."""

    def __init__(self, transport: paramiko.Transport, host: str, interval: float) -> None:
        self.transport, self.host, self.interval = transport, host, interval
        self.last_heard = time.monotonic()

    def heard(self) -> None:
        self.last_heard = time.monotonic()

    def check(self, now: bool = False) -> None:
        """Ask the peer when it has been silent for an interval (or `now`); raise when it does not answer."""
        if not self.transport.is_active():
            raise ConnectionLost(f"{self.host}: the SSH connection was closed")
        if self.interval <= 0 or not now and time.monotonic() - self.last_heard < self.interval:
            return
        if not peer_answers(self.transport, 2 * self.interval):
            silent = time.monotonic() - self.last_heard
            raise ConnectionLost(f"{self.host}: no answer for {silent:.0f}s: the host stalled or its network is gone")
        self.heard()


def execute(
    transport: paramiko.Transport,
    command: str,
    *,
    host: str,
    timeout: float,
    keepalive: float,
    open_timeout: float = 10.0,
    sudo_password: str | None = None,
    sudo_prompt: str = "",
    stdin: bytes | Sequence[bytes | Path] | None = None,
) -> Result:
    """Run `command` on a new channel of `transport`; its result (output decoded, exit code)."""
    if cancelled():
        raise Cancelled(f"{host}: interrupted")
    liveness = Liveness(transport, host, keepalive)
    deadline = time.monotonic() + timeout
    # A live host answers a keepalive at once, however busy it is: ask after one interval.
    with _watchdog(liveness, keepalive if keepalive > 0 else open_timeout) as watch:
        try:
            channel = transport.open_session(timeout=open_timeout)
            channel.exec_command(command)
        except (EOFError, OSError, paramiko.SSHException) as exc:
            if watch.fired:
                raise ConnectionLost(f"{host}: no answer while opening a session: the host stalled or its network "
                                     f"is gone") from None
            raise ConnectionLost(f"{host}: the SSH connection was lost ({str(exc) or type(exc).__name__})") from None
    try:
        if stdin is not None:
            _send(channel, [stdin] if isinstance(stdin, bytes) else stdin, liveness, deadline, timeout)
        stdout, stderr = bytearray(), bytearray()
        prompt = sudo_prompt.encode()
        answered = False
        while True:
            if channel.recv_ready():
                stdout += channel.recv(65536)
                liveness.heard()
            elif channel.recv_stderr_ready():
                stderr += channel.recv_stderr(65536)
                liveness.heard()
                if sudo_password is not None and prompt and prompt in stderr:
                    if answered:
                        raise OpenIError(f"{host}: sudo refused the configured password")
                    channel.sendall(sudo_password.encode() + b"\n")
                    stderr = stderr.replace(prompt, b"", 1)
                    answered = True
            elif channel.eof_received or channel.closed:
                break
            else:
                _wait(channel, liveness, deadline, timeout)
        while not channel.status_event.wait(POLL):
            _wait(channel, liveness, deadline, timeout)
        exit_code = channel.exit_status  # -1 when the channel closed without one
        if exit_code == -1:
            if not transport.is_active():
                raise ConnectionLost(f"{host}: the SSH connection was lost while a command ran")
            # sshd sends a signal's name instead of an exit status when the command was killed.
            stderr += b"\n(the command was killed by a signal)"
            exit_code = 255
    except (socket.timeout, EOFError, OSError, paramiko.SSHException) as exc:
        if cancelled():
            raise Cancelled(f"{host}: interrupted") from None
        if isinstance(exc, socket.timeout) and time.monotonic() > deadline:
            raise CommandTimeout(f"{host}: command timed out after {timeout}s") from None
        raise ConnectionLost(f"{host}: the SSH connection was lost ({str(exc) or type(exc).__name__})") from None
    finally:
        channel.close()
    return Result(stdout=stdout.decode(errors="replace"), stderr=stderr.decode(errors="replace"),
                  exited=exit_code, command=command, hide=("stdout", "stderr"))


class _Watch:
    fired = False


@contextlib.contextmanager
def _watchdog(liveness: Liveness, after: float) -> Iterator[_Watch]:
    """Opening a session and starting a command wait on the peer with no timeout of paramiko's own.
    If that takes longer than `after`, the peer is asked for a keepalive reply; when none comes,
    the connection is closed, which ends the wait. (A thread, for this moment of a command only.)"""
    watch = _Watch()

    def check() -> None:
        if liveness.transport.is_active() and not peer_answers(liveness.transport, max(2 * liveness.interval, 2.0)):
            watch.fired = True
            liveness.transport.close()

    timer = threading.Timer(after, check)
    timer.daemon = True
    timer.start()
    try:
        yield watch
    finally:
        timer.cancel()


def _send(channel: paramiko.Channel, parts: Sequence[bytes | Path], liveness: Liveness, deadline: float,
          timeout: float) -> None:
    """Send `parts` as the peer's window allows. A window that stays shut for a keepalive interval
    is a slow peer or a dead one: the peer is asked, and sending goes on when it answers."""
    channel.settimeout(max(liveness.interval, POLL) if liveness.interval > 0 else POLL)
    for part in parts:
        for piece in pieces(part):
            # A memoryview, sliced as it goes: slicing bytes would copy what is left each time
            # (quadratic: 40 MB took 6 s).
            view = memoryview(piece)
            while view:
                if cancelled():
                    raise Cancelled(f"{liveness.host}: interrupted")
                if time.monotonic() > deadline:
                    raise CommandTimeout(f"{liveness.host}: command timed out after {timeout}s")
                try:
                    sent = channel.send(view)
                except socket.timeout:
                    liveness.check(now=liveness.interval > 0)
                    continue
                view = view[sent:]
    channel.shutdown_write()
    channel.settimeout(None)


def _wait(channel: paramiko.Channel, liveness: Liveness, deadline: float, timeout: float) -> None:
    if cancelled():
        raise Cancelled(f"{liveness.host}: interrupted")
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise CommandTimeout(f"{liveness.host}: command timed out after {timeout}s")
    # poll, not select: select() refuses a descriptor above 1023, and an operator's process holds
    # one or more for each of hundreds of hosts (1,000 hosts: 956 of them failed facts that way).
    poller = select.poll()
    poller.register(channel, select.POLLIN)
    if not poller.poll(min(remaining, POLL) * 1000):
        liveness.check()
