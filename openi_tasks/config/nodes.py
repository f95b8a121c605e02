"""A nodes file: the hosts a maintenance task acts on (`--nodes FILE`).

It has the machine-list entry format, as a list or under `machine-list:`. Every entry is checked
as a machine-list entry is, then against the cluster configuration: a host that is in the
configuration must agree with it on every field it sets (address, etcdid, role, SSH settings).
Only `k8s.add` accepts hosts that the configuration does not have yet.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field

from ..errors import ConfigError
from .cluster import entry_labels, machine_from_entry
from .files import FileModel, MachineEntry
from .edit import edited, load_with
from .loader import validate_document
from .model import Cluster, Machine
from .problems import Problem
from .yamlfile import YamlDocument, load_yaml

COMPARED = (
    ("hostip", "address"),
    ("etcdid", "etcdid"),
    ("k8s-role", "role"),
    ("machine-type", "sku_name"),
    ("sshport", "port"),
    ("username", "user"),
    ("ssh-key", "ssh_key"),
)


class NodesFile(FileModel):
    machine_list: list[MachineEntry] = Field(min_length=1)


def load_nodes(path: str | Path, cluster: Cluster, allow_new: bool = False) -> list[Machine]:
    """The machines of a nodes file; `ConfigError` listing every problem (with lines) if any."""
    doc, problems = load_yaml(Path(path).expanduser())
    if doc is None:
        raise ConfigError(problems)
    if isinstance(doc.data, list):  # the bare list form
        doc = YamlDocument(doc.path, {"machine-list": doc.data},
                           {("machine-list",) + key: line for key, line in doc.lines.items()})
    model, found = validate_document(doc, NodesFile)
    problems += found
    if model is None or problems:
        raise ConfigError(problems)
    machines = []
    for index, entry in enumerate(model.machine_list):
        machine, found = _resolve(doc, index, entry, cluster, allow_new)
        problems += found
        machines.append(machine)
    seen: dict[str, int] = {}
    for index, entry in enumerate(model.machine_list):
        if entry.hostname in seen:
            problems.append(doc.problem(("machine-list", index, "hostname"),
                                        f"{entry.hostname} is already machine-list[{seen[entry.hostname]}] here"))
        seen.setdefault(entry.hostname, index)
    if not problems and allow_new:
        problems += _as_configuration(doc, cluster, [(i, e) for i, e in enumerate(model.machine_list)
                                                     if e.hostname not in cluster.by_name])
    if problems:
        raise ConfigError(problems)
    return machines


def _as_configuration(doc: YamlDocument, cluster: Cluster, new: list[tuple[int, MachineEntry]]) -> list[Problem]:
    """The configuration these hosts would make, loaded with every check (addresses, etcd ids,
    roles, labels...); its problems reported against this file's entries."""
    if not new:
        return []
    raw = [_raw_entry(doc, index) for index, _ in new]
    try:
        load_with(cluster.path, edited(cluster.path, add=raw))
    except ConfigError as exc:
        first = len(cluster.machines)
        found = []
        for problem in (p for p in exc.problems if p.severity == "error"):
            match = re.match(r"machine-list\[(\d+)\](.*)", problem.path)
            index = int(match[1]) - first if match else -1
            if 0 <= index < len(new):
                own = new[index][0]
                rest = tuple(part for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", match[2]) for part in part if part)
                found.append(doc.problem(("machine-list", own) + rest,
                                         f"{problem.message} (in the configuration this would make)"))
            else:
                found.append(doc.problem(("machine-list",), f"with these hosts added, {problem}"))
        return found
    return []


def _raw_entry(doc: YamlDocument, index: int) -> dict:
    data = doc.data["machine-list"]
    return dict(data[index])


def node_entries(path: str | Path) -> list[dict]:
    """The raw entries of a (valid) nodes file, as written, for copying into the configuration."""
    doc, problems = load_yaml(Path(path).expanduser())
    if doc is None:
        raise ConfigError(problems)
    return list(doc.data if isinstance(doc.data, list) else doc.data["machine-list"])


def _resolve(doc: YamlDocument, index: int, entry: MachineEntry, cluster: Cluster,
             allow_new: bool) -> tuple[Machine | None, list[Problem]]:
    path = ("machine-list", index)
    candidate = _as_machine(entry, cluster)
    known = cluster.by_name.get(entry.hostname)
    if known is None:
        if not allow_new:
            return None, [doc.problem(path + ("hostname",), f"{entry.hostname} is not in the cluster configuration")]
        if entry.machine_type not in cluster.skus:
            return None, [doc.problem(path + ("machine-type",), f"unknown machine type '{entry.machine_type}'")]
        return candidate, []
    problems = []
    given = entry.model_dump(by_alias=True, exclude_unset=True)
    for key, attribute in COMPARED:
        if key in given and getattr(candidate, attribute) != getattr(known, attribute):
            problems.append(doc.problem(
                path + (key,),
                f"is {getattr(candidate, attribute)} here but {getattr(known, attribute)} in the cluster configuration",
            ))
    if "password" in given and candidate.password != known.password:
        problems.append(doc.problem(path + ("password",), "differs from the one in the cluster configuration"))
    return known, problems


def _as_machine(entry: MachineEntry, cluster: Cluster) -> Machine:
    """A nodes-file entry resolved the way the cluster configuration resolves machines."""
    return machine_from_entry(entry, cluster.defaults, cluster.skus, entry_labels(entry))
