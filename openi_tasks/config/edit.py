"""Editing cluster-configuration.yaml's machine list in place, keeping its comments and layout.

Used by `k8s.add --update-config` and `k8s.remove --update-config`, and to check a nodes file as
the configuration it would produce. PyYAML cannot write a file back with its comments, so this
one job uses ruamel.yaml's round-trip mode. A change is written only when the directory with it
loads, and atomically (a new file renamed over the old one).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

from ruamel.yaml import YAML

from .cluster import CLUSTER_FILE, load_cluster
from .model import Cluster
from .yamlfile import YamlFloat


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: comments, order and quoting are kept
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    # Entries copied from a nodes file keep a number as it was written (`.inf`, `1e3`, `2.10`).
    yaml.representer.add_representer(
        YamlFloat, lambda representer, value: representer.represent_scalar("tag:yaml.org,2002:float", value.text))
    return yaml


def edited(directory: Path, add: Iterable[dict[str, Any]] = (), remove: Iterable[str] = ()) -> str:
    """cluster-configuration.yaml's text with machines added and/or removed."""
    yaml = _yaml()
    data = yaml.load((directory / CLUSTER_FILE).read_text())
    gone = set(remove)
    keep = [entry for entry in data["machine-list"] if entry.get("hostname") not in gone]
    data["machine-list"].clear()
    data["machine-list"].extend(keep + list(add))
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def load_with(directory: Path, text: str) -> Cluster:
    """The cluster the directory would be with this cluster-configuration.yaml (ConfigError if it
    would not load); nothing in `directory` is touched."""
    with tempfile.TemporaryDirectory(prefix="openi-config-") as tmp:
        copy = Path(tmp) / directory.name
        shutil.copytree(directory, copy, symlinks=True)
        (copy / CLUSTER_FILE).write_text(text)
        return load_cluster(copy)


def _write(directory: Path, text: str) -> None:
    load_with(directory, text)
    path = directory / CLUSTER_FILE
    fd, partial = tempfile.mkstemp(prefix=f".{CLUSTER_FILE}.", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(partial, path.stat().st_mode & 0o777)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def add_machines(directory: Path, entries: Iterable[dict[str, Any]]) -> None:
    _write(directory, edited(directory, add=entries))


def remove_machines(directory: Path, hostnames: Iterable[str]) -> None:
    _write(directory, edited(directory, remove=hostnames))
