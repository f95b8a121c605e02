"""What can go wrong on a host, as errors an operator can read, and one line per failure for tables."""

from __future__ import annotations

import socket

import paramiko
from invoke.runners import Result
from paramiko.ssh_exception import NoValidConnectionsError

from ..errors import OpenIError
from ..retry import cause


class HostKeyError(OpenIError):
    """A host's SSH key is unknown (under the strict policy), revoked, or does not match known_hosts."""


class CommandTimeout(OpenIError):
    """A remote command ran longer than its timeout."""


class ConnectionLost(OpenIError):
    """The connection to a host died, or the host stopped answering, while a command ran."""


class Cancelled(OpenIError):
    """The run was interrupted (Ctrl-C); work on every host stops."""

    exit_code = 130


class CommandFailed(OpenIError):
    """A remote command exited non-zero where success was required."""

    def __init__(self, host: str, command: str, result: Result) -> None:
        self.result = result
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-5:]
        detail = "\n    ".join(tail) if tail else "(no output)"
        super().__init__(f"{host}: `{short(command)}` exited {result.exited}:\n    {detail}")


def short(command: str, limit: int = 120) -> str:
    """A command on one line, cut to `limit` characters, for messages and logs."""
    command = " ".join(command.split())
    return command if len(command) <= limit else command[: limit - 3] + "..."


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
    if isinstance(exc, TimeoutError):  # a socket's says nothing more; waits of our own say what they waited for
        return "cannot connect: timed out" if str(exc) in ("", "timed out") else str(exc)
    if isinstance(exc, paramiko.SSHException):
        text = str(exc)
        if "banner" in text.lower() or "No existing session" in text:
            return ("cannot connect: the host accepted the connection but no SSH server answered "
                    "(no SSH banner in time)")
        if "session not active" in text.lower() or "closed" in text.lower():
            return "the SSH connection was closed by the host"
        return f"SSH error: {text}"
    if isinstance(exc, (EOFError, ConnectionResetError, BrokenPipeError, socket.error)):
        return f"the SSH connection was lost: {exc or type(exc).__name__}"
    return cause(exc)
