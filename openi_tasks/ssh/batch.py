"""Several steps in one SSH session: the script that runs them and the parsing of their results.

A step is a command or a `FileWrite`. Each command runs in its own subshell with stdin from
/dev/null and gets its own result; file contents travel on the session's input, each followed
by a random boundary line that the write checks, so a short or misaligned input fails before its
target is touched.
"""

from __future__ import annotations

import re
import shlex
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from invoke.runners import Result


@dataclass(frozen=True)
class FileWrite:
    """A file to write as a step of a batch: owned by root with `mode`, the old file replaced
    atomically, or overwritten `in_place` (for mount points, such as /etc/hosts in a container).
    `content` is bytes, or a local file read piece by piece as it is sent (binaries of a hundred
    megabytes, to many hosts at once); `gzipped` content is decompressed on the host as it is
    written (a third of the bytes to send and encrypt, for binaries)."""

    path: str
    content: bytes | Path
    mode: int = 0o644
    in_place: bool = False
    gzipped: bool = False

    @property
    def size(self) -> int:
        return len(self.content) if isinstance(self.content, bytes) else self.content.stat().st_size


Step = str | FileWrite


def new_boundary() -> str:
    return f"openi-{uuid.uuid4().hex}"


def write_command(write: FileWrite, staged: str | None, boundary: str) -> str:
    """The command of a `FileWrite` step: the content comes complete onto the host before the
    target is touched, so a broken transfer leaves the target as it was. `staged` is a file that
    already holds the content (uploaded over SFTP), else it is read from the session's input."""
    target = shlex.quote(write.path)
    temporary = shlex.quote(f"{write.path}.openi-tmp-{uuid.uuid4().hex}")
    directory = shlex.quote(str(Path(write.path).parent))
    if staged is None:
        # Exactly its bytes from the session's input (fd 3), then the boundary's line.
        source = f"head -c {write.size} <&3"
        received = f'IFS= read -r end <&3 && [ "$end" = {boundary} ]'
    else:
        source, received = f"cat {staged}", "true"
    if write.gzipped:
        source += " | gzip -dc"
    if write.in_place:
        install = f"{source} > {temporary} && {received} && cat {temporary} > {target} && chmod {write.mode:o} {target}"
        cleanup = f"rm -f {temporary}"
    else:
        install = (f"{source} | install -m {write.mode:o} -o 0 -g 0 /dev/stdin {temporary} && {received} "
                   f"&& mv -f {temporary} {target}")
        cleanup = f"[ $rc -eq 0 ] || rm -f {temporary}"
    return f"umask 077 && {{ test -d {directory} || mkdir -p {directory}; }} && {install}; rc=$?; {cleanup}; exit $rc"


def script(commands: Sequence[str], boundary: str, *, check: bool, reads_input: bool, staged: Sequence[str]) -> str:
    """The shell script that runs `commands` one after another and marks where each one's output ends.

    The commands travel as positional parameters and are evaluated in subshells: a fork each, no
    new shell to start. Writes read their contents from the session's input, kept as fd 3.
    """
    stop = "[ $rc -eq 0 ] || break; " if check else ""
    return (("exec 3<&0\n" if reads_input else "")
            + f"set -- {' '.join(shlex.quote(command) for command in commands)}\n"
            + 'for c; do (eval "$c") </dev/null; rc=$?; '
            + f"printf '\\n{boundary} %d\\n' $rc; printf '\\n{boundary}\\n' >&2; {stop}done"
            + "".join(f"; rm -f {source}" for source in staged) + "; exit $rc")


def input_parts(writes: Sequence[FileWrite], boundary: str) -> list[bytes | Path]:
    """Each content, then the boundary's line; as parts, never joined (contents may be large)."""
    return [part for write in writes for part in (write.content, f"{boundary}\n".encode())]


def split(steps: Sequence[Step], batch: Result, boundary: str) -> list[Result]:
    """One result per step that ran, from the batch's output."""
    outputs = re.split(f"\n{boundary} (-?\\d+)\n", batch.stdout)
    errors = batch.stderr.split(f"\n{boundary}\n")
    results = []
    for index, step in enumerate(steps[: len(outputs) // 2]):
        command = f"write {step.path}" if isinstance(step, FileWrite) else step
        results.append(Result(stdout=outputs[2 * index], stderr=errors[index] if index < len(errors) else "",
                              exited=int(outputs[2 * index + 1]), command=command, hide=("stdout", "stderr")))
    return results
