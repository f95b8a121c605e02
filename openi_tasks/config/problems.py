"""A problem found in a configuration directory, and how it is written for a human."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) in one file, at one key."""

    file: str
    line: int | None
    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{printable(self.file)}:{self.line}" if self.line else printable(self.file)
        key = f" {printable(self.path)}:" if self.path else ""
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}:{key} {prefix}{printable(self.message)}"


def printable(text: str) -> str:
    """`text` with control and format characters written as escapes: a key or value from a file
    must not move the operator's cursor or recolour the terminal."""
    if text.isprintable():  # the common case, and fast (a file can hold a million keys)
        return text
    # Not printable: control and format characters, line and paragraph separators, odd spaces.
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def format_path(path: Iterable) -> str:
    """`('machine-list', 3, 'hostip')` -> `machine-list[3].hostip`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """A " (did you mean 'x'?)" hint when `word` is close to one of `choices`, else ""."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""
