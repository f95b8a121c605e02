"""Editing cluster-configuration.yaml's machine list in place, keeping its comments and layout.

Used by `k8s.add --update-config` and `k8s.remove --update-config`. PyYAML cannot write a file
back with its comments, so this one job uses ruamel.yaml's round-trip mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ruamel.yaml import YAML

from .cluster import CLUSTER_FILE


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: comments, order and quoting are kept
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def add_machines(directory: Path, entries: Iterable[dict[str, Any]]) -> None:
    path = directory / CLUSTER_FILE
    yaml = _yaml()
    data = yaml.load(path.read_text())
    for entry in entries:
        data["machine-list"].append(entry)
    with open(path, "w") as handle:
        yaml.dump(data, handle)


def remove_machines(directory: Path, hostnames: Iterable[str]) -> None:
    path = directory / CLUSTER_FILE
    yaml = _yaml()
    data = yaml.load(path.read_text())
    gone = set(hostnames)
    keep = [entry for entry in data["machine-list"] if entry.get("hostname") not in gone]
    data["machine-list"].clear()
    data["machine-list"].extend(keep)
    with open(path, "w") as handle:
        yaml.dump(data, handle)
