"""`service.yaml`: the original toolkit's lists of images (`imagelist`) and services (`servicelist`).

Both lists follow its conventions: each entry is a mapping of known keys, and the word `None`
(or `none`, or nothing) means none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import OpenIError
from .render import TEMPLATES

SERVICE_YAML = TEMPLATES / "service.yaml"  # a checkout has a symlink to it at its root


def none(value: Any) -> Any:
    return None if value in (None, "None", "none", "") else value


def words(value: Any) -> tuple[str, ...]:
    """A word or a list of words, without the ones meaning none."""
    items = value if isinstance(value, list) else [value]
    return tuple(str(v) for v in items if none(v) is not None)


def entries(service_yaml: Path, key: str, noun: str, known: tuple[str, ...],
            error: type[OpenIError]) -> tuple[dict[str, dict], list[str]]:
    """The entries of the list `key` (each a mapping), and the problems found in them.

    An unreadable file or a list that is not a mapping raises `error` at once; an entry with
    unknown keys is kept, its problem reported with the others.
    """
    try:
        data = yaml.safe_load(service_yaml.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"{service_yaml}: {exc}") from None
    listed = data.get(key) if isinstance(data, dict) else None
    if not isinstance(listed, dict):
        raise error(f"{service_yaml}: {key} must be a mapping of {noun} names")
    found, problems = {}, []
    for name, entry in listed.items():
        entry = entry or {}
        if not isinstance(entry, dict):
            problems.append(f"{noun} {name}: must be a mapping ({', '.join(known)})")
            continue
        unknown = set(entry) - set(known)
        if unknown:
            problems.append(f"{noun} {name}: unknown key {', '.join(sorted(unknown))}")
        found[name] = entry
    return found, problems
