"""Remote operations in the "make it so" style: compare with the host, then change only the difference.

Each returns the `Change`s needed (none when the host is already as wanted), so a phase's plan,
its dry run and its idempotent re-run are one code path.
"""

from __future__ import annotations

import base64
import difflib
import shlex
from typing import Iterable

from .phase import Change
from .render import RenderedFile
from .ssh import CommandFailed, FileWrite, Host

FileState = tuple[bytes | None, int | None]


def file_states(host: Host, paths: Iterable[str]) -> dict[str, FileState]:
    """Each file's content and mode on the host, or (None, None) where it does not exist.

    All of them are read in one round trip, so a plan costs one per host, not one per file.
    """
    paths = list(dict.fromkeys(paths))
    commands = []
    for path in paths:
        quoted = shlex.quote(path)
        commands.append(f"if test -f {quoted}; then stat -c %a {quoted}; base64 -w0 < {quoted}; echo; else echo MISSING; fi")
    states = {}
    for path, result in zip(paths, host.sh_all(commands)):
        if result.exited != 0:
            raise CommandFailed(host.name, f"read {path}", result)
        lines = result.stdout.splitlines()
        if not lines or lines[0] == "MISSING":
            states[path] = (None, None)
        else:
            states[path] = (base64.b64decode(lines[1] if len(lines) > 1 else ""), int(lines[0], 8))
    return states


def file_state(host: Host, path: str) -> FileState:
    """A file's content and mode on the host, or (None, None) when it does not exist."""
    return file_states(host, [path])[path]


def ensure_file(host: Host, file: RenderedFile, current: FileState | None = None) -> list[Change]:
    """The file exists with exactly this content and mode. Secrets (0600 files) are never shown.

    `current` is the file's state when the caller has already read it (see `ensure_files`).
    """
    content, mode = current if current is not None else file_state(host, file.path)
    wanted = file.content.encode()
    if content == wanted and mode == file.mode:
        return []
    if content == wanted:
        return [Change(f"set the mode of {file.path} to {file.mode:o} (was {mode:o})",
                       f"chmod {file.mode:o} {shlex.quote(file.path)}")]
    verb = "create" if content is None else "update"
    return [Change(f"{verb} {file.path} (mode {file.mode:o})", FileWrite(file.path, wanted, file.mode),
                   diff=_diff(file, content))]


def ensure_files(host: Host, files: Iterable[RenderedFile]) -> list[Change]:
    """`ensure_file` for several files, their current states read in one round trip."""
    files = list(files)
    states = file_states(host, (f.path for f in files))
    return [change for f in files for change in ensure_file(host, f, states[f.path])]


def ensure_absent(host: Host, paths: Iterable[str]) -> list[Change]:
    """Nothing exists at any of `paths` (files or directories, removed recursively); one round trip."""
    paths = list(dict.fromkeys(paths))
    found = host.sh_all([f"test -e {shlex.quote(p)} || test -L {shlex.quote(p)}" for p in paths])
    return [Change(f"remove {path}", f"rm -rf {shlex.quote(path)}")
            for path, result in zip(paths, found) if result.exited == 0]


def _diff(file: RenderedFile, old: bytes | None) -> str:
    if file.secret:
        return "    (secret: content not shown)"
    try:
        before = old.decode().splitlines(keepends=True) if old is not None else []
    except UnicodeDecodeError:
        return "    (binary content replaced)"
    lines = difflib.unified_diff(
        before, file.content.splitlines(keepends=True), f"{file.path} (on host)", f"{file.path} (wanted)"
    )
    return "".join(f"    {line}" if line.endswith("\n") else f"    {line}\n" for line in lines).rstrip("\n")
