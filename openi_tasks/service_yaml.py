"""`service.yaml`: the original toolkit's lists of images (`imagelist`) and services (`servicelist`).

Both lists follow its conventions: each entry is a mapping of known keys, and the word `None`
(or `none`, or nothing) means none. The file is read as the configuration is (regular file,
bounded size and aliases, no tags); each entry's values are read through an `Entry`, which
collects every problem as `file:line: key: message` instead of stopping at the first.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .config.problems import Problem, printable
from .config.yamlfile import YamlDocument, load_yaml
from .errors import OpenIError
from .render import TEMPLATES

SERVICE_YAML = TEMPLATES / "service.yaml"  # a checkout has a symlink to it at its root
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def none(value: Any) -> Any:
    return None if value in (None, "None", "none", "") else value


class Entry:
    """One entry of a list in service.yaml, read value by value; problems are collected."""

    def __init__(self, doc: YamlDocument, path: tuple, data: dict, problems: list[Problem]) -> None:
        self.doc, self.path, self.data, self.problems = doc, path, data, problems

    def _problem(self, key: str, message: str) -> None:
        self.problems.append(self.doc.problem(self.path + (key,), message))

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def words(self, key: str) -> tuple[str, ...]:
        """A word or a list of words, without the ones meaning none."""
        value = none(self.data.get(key))
        items = value if isinstance(value, list) else [] if value is None else [value]
        good = []
        for item in items:
            if none(item) is None:
                continue
            if isinstance(item, (str, int, float)) and not isinstance(item, bool):
                good.append(str(item))
            else:
                self._problem(key, f"must be a word or a list of words, not {type(item).__name__}")
        return tuple(good)

    def word(self, key: str) -> str | None:
        """One word, or None."""
        value = none(self.data.get(key))
        if value is None:
            return None
        if isinstance(value, str):
            return value
        self._problem(key, f"must be one word, not a {type(value).__name__}")
        return None

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self._problem(key, f"must be true or false, not {value!r}"[:120])
        return default

    def seconds(self, key: str, default: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 86400:
            self._problem(key, f"must be a number of seconds from 1 to 86400, not {value!r}"[:120])
            return default
        return int(value)

    def mappings(self, key: str) -> list[dict]:
        value = none(self.data.get(key))
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self._problem(key, "must be a list of mappings")
            return []
        return value


def entries(service_yaml: Path, key: str, noun: str, known: tuple[str, ...],
            error: type[OpenIError]) -> tuple[dict[str, Entry], list[Problem]]:
    """The entries of the list `key` by name, and the problems found so far (the entries add theirs
    to the same list as they are read). An unreadable file, or a list that is not a mapping of
    names, raises `error` at once."""
    doc, problems = load_yaml(service_yaml)
    if doc is None:
        raise error("\n".join(str(p) for p in problems))
    listed = doc.data.get(key) if isinstance(doc.data, dict) else None
    if not isinstance(listed, dict):
        raise error(str(doc.problem((key,), f"must be a mapping of {noun} names")))
    found: dict[str, Entry] = {}
    for name, entry in listed.items():
        path = (key, name)
        if not isinstance(name, str) or not NAME.match(name):
            problems.append(Problem(str(doc.path), doc.line(path), f"{key}.{name}",
                                    f"{noun} name {name!r} must be a lower-case DNS label (a-z, 0-9, '-'): it names "
                                    f"a directory and Kubernetes objects"))
            continue
        entry = entry or {}
        if not isinstance(entry, dict):
            problems.append(doc.problem(path, f"must be a mapping (of {', '.join(known)})"))
            continue
        for unknown in sorted(set(entry) - set(known), key=str):
            problems.append(doc.problem(path + (unknown,), f"unknown key in {noun} {name} (known: {', '.join(known)})"))
        found[name] = Entry(doc, path, entry, problems)
    return found, problems


def report(service_yaml: Path, problems: list[Problem | str], error: type[OpenIError]) -> None:
    """Raise `error` listing every problem, if there are any."""
    if problems:
        raise error("\n".join(str(p) if isinstance(p, Problem) else printable(f"{service_yaml}: {p}") for p in problems)
                    + f"\n{len(problems)} problem{'s' if len(problems) != 1 else ''} in {service_yaml}")


def within(directory: Path, name: str) -> bool:
    """Whether `name` (from service.yaml) is a path inside `directory` (resolved)."""
    try:
        return (directory / name).resolve().is_relative_to(directory)
    except (OSError, ValueError):  # a name too long for the file system, or with a NUL: not a file here
        return False


def is_file(path: Path) -> bool:
    """`path.is_file()`, false for names the file system cannot hold."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
