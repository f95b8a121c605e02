"""The run log: what a run did, for an operator to read afterwards or attach to a bug report.

Each command per host (its exit code, duration, and on failure its output), each change a phase
made, and each error in full, one timestamped line each, in `<state>/logs/` (0600). Every secret
of the configuration (passwords, the JWT secret, the registry password, the join token) is
replaced by `***` before a line is written.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import IO, Iterable

from invoke.runners import Result

from .ssh.errors import short

MASK = "***"


class RunLog:
    """Appends scrubbed lines to one file; a `RunLog(None)` keeps nothing (dry runs)."""

    def __init__(self, path: Path | None, secrets: Iterable[str] = ()) -> None:
        self.path = path
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        for secret in secrets:
            self.add_secret(secret)
        if path is not None:
            from .state import make_private_dirs

            make_private_dirs(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._file = os.fdopen(fd, "a", encoding="utf-8")

    def add_secret(self, secret: str | None) -> None:
        """Never write `secret` (values shorter than 4 characters would mask too much; they are
        not secrets a log could leak usefully)."""
        if secret and len(secret) >= 4:
            with self._lock:
                self._secrets.add(secret)

    def scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def write(self, text: str) -> None:
        if self._file is None:
            return
        now = time.time()  # to the millisecond: phases that run together, and short ones, stay apart
        stamp = f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(now))}.{int(now % 1 * 1000):03d}"
        lines = self.scrub(text).splitlines() or [""]
        with self._lock:
            for line in lines:
                self._file.write(f"{stamp}Z {line}\n")
            self._file.flush()

    def command(self, host: str, command: str, result: Result, seconds: float) -> None:
        self.write(f"{host}: exit {result.exited} in {seconds:.2f}s: {short(command, 4000)}")
        if result.exited != 0:
            for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
                tail = text.strip().splitlines()[-40:]
                if tail:
                    self.write("\n".join(f"    {stream}: {line}" for line in tail))

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
