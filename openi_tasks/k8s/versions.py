"""Kubernetes versions and what an upgrade may do with them (`inv k8s.upgrade`).

`refusals` holds the rules, as plain data in and reasons out, so that every refusal is decided
before anything changes and can be tested without a cluster:

- no downgrade, and no skipped minor version: kubeadm upgrades the control plane one minor
  version at a time (from v1.36 to v1.37, never to v1.38);
- no kubelet newer than the API servers will be, and none more than three minor versions older
  (Kubernetes' version skew policy);
- etcd healthy, every member; every node Ready and every master's API server answering (an
  upgrade drains nodes and restarts API servers: it needs the redundancy it starts from);
- etcd to the configured version one minor version at a time, never to an older minor version
  (etcd's rolling upgrade: a member of the next minor version joins a cluster of the one before,
  and the cluster's version moves once every member runs it; going back is etcd's separate
  downgrade procedure).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import UsageError

VERSION = re.compile(r"v(\d+)\.(\d+)\.(\d+)")
ETCD_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:-\d+)?")  # 3.7.3, v3.7.3, and image tags: 3.7.3-0
KUBELET_MAX_MINORS_OLDER = 3


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> "Version":
        found = VERSION.fullmatch(text.strip())
        if found is None:
            raise ValueError(f"not a Kubernetes release version (vMAJOR.MINOR.PATCH): {text!r}")
        return cls(*(int(part) for part in found.groups()))

    @classmethod
    def of(cls, text: str) -> "Version | None":
        """The version in `text`, or None when it is none (a binary that is not installed)."""
        try:
            return cls.parse(text)
        except ValueError:
            return None

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"

    @property
    def number(self) -> str:
        """Without the v, as etcd writes its versions: 3.7.3."""
        return str(self)[1:]


def etcd_version(text: str) -> Version | None:
    """etcd's version in a server's answer (3.7.3) or an image's tag (3.7.3-0); None when it is neither."""
    found = ETCD_VERSION.fullmatch(text.strip())
    return Version(*(int(part) for part in found.groups())) if found else None


def target_version(text: str) -> Version:
    """`--to`, a usage error unless it is a release version."""
    try:
        return Version.parse(text)
    except ValueError as exc:
        raise UsageError(f"--to: {exc}") from None


@dataclass
class NodeVersions:
    """What one node runs: kubelet (the API's view: the kubelet that runs; else the binary's),
    kubeadm's binary, and on a master the control plane's static pods."""

    name: str
    role: str
    kubelet: Version | None
    kubeadm: Version | None
    control_plane: dict[str, Version | None] = field(default_factory=dict)  # component -> image tag
    ready: bool | None = None  # None: no Node in the API
    apiserver_answers: bool | None = None  # masters only
    runtime_from: str = ""  # the CRI endpoint kubelet runs the pods on, when it is not the configured one

    def at(self, target: Version) -> bool:
        return self.versions_at(target) and not self.runtime_from

    def versions_at(self, target: Version) -> bool:
        return self.kubelet == target and self.kubeadm == target and \
            all(v == target for v in self.control_plane.values())

    @property
    def api_servers(self) -> list[Version]:
        return [v for name, v in self.control_plane.items() if name == "kube-apiserver" and v is not None]


@dataclass
class UpgradePlan:
    target: Version
    nodes: list[NodeVersions]
    etcd_unhealthy: list[str] = field(default_factory=list)  # member: why
    bundle_problem: str = ""
    etcd: dict[str, Version | None] = field(default_factory=dict)  # member -> the version it runs (None: unknown)
    etcd_target: Version | None = None  # None: the configured image's tag names no version

    @property
    def done(self) -> bool:
        """Every node runs the target Kubernetes (etcd: `etcd_done`)."""
        return all(node.at(self.target) for node in self.nodes)

    @property
    def etcd_done(self) -> bool:
        return self.etcd_target is None or all(v == self.etcd_target for v in self.etcd.values())

    @property
    def api_servers(self) -> list[Version]:
        return [v for node in self.nodes for v in node.api_servers]


def refusals(plan: UpgradePlan) -> list[str]:
    """Every reason not to start (or go on with) the upgrade; empty when it may."""
    target, found = plan.target, []
    servers = plan.api_servers
    if not servers:
        found.append("no master runs an API server (its static pod manifest is missing): deploy the cluster first")
    else:
        lowest, highest = min(servers), max(servers)
        if highest > target:
            found.append(f"{target} is older than the API server's {highest}: a downgrade is not supported")
        if (target.major, target.minor) > (lowest.major, lowest.minor + 1):
            found.append(f"{target} skips a minor version: the API servers run {lowest}, so the next upgrade is to "
                         f"v{lowest.major}.{lowest.minor + 1}.x (kubeadm upgrades one minor version at a time)")
    for node in plan.nodes:
        if node.kubelet is not None and node.kubelet > target:
            found.append(f"{node.name}: kubelet {node.kubelet} is newer than {target}: it would end up newer than "
                         f"the API servers")
        if node.kubelet is not None and node.kubelet.major == target.major \
                and node.kubelet.minor < target.minor - KUBELET_MAX_MINORS_OLDER:
            found.append(f"{node.name}: kubelet {node.kubelet} is more than {KUBELET_MAX_MINORS_OLDER} minor versions "
                         f"older than {target}, which its API servers would not support")
        if node.ready is False:
            found.append(f"{node.name} is NotReady: repair it (inv k8s.repair) or remove it before an upgrade")
        elif node.ready is None:
            found.append(f"{node.name} has no Node in the Kubernetes API: add it (inv k8s.add) or remove it from "
                         f"the configuration before an upgrade")
        if node.apiserver_answers is False:
            found.append(f"{node.name}: its API server does not answer /readyz: the control plane is not ready")
    found += [f"etcd member {member}" for member in plan.etcd_unhealthy]
    found += etcd_refusals(plan.etcd, plan.etcd_target)
    if plan.bundle_problem:
        found.append(plan.bundle_problem)
    return found


def etcd_refusals(running: dict[str, Version | None], target: Version | None) -> list[str]:
    """Why members running these versions cannot be rolled to `target` one at a time."""
    found = []
    for member, version in running.items():
        if version is None or target is None or version == target:
            continue
        named = f"etcd member {member} runs etcd {version.number}; etcd-version asks for {target.number}"
        if (target.major, target.minor) < (version.major, version.minor) or target.major != version.major:
            found.append(f"{named}: an older minor (or another major) version is etcd's downgrade procedure, "
                         f"which k8s.upgrade does not do")
        elif target.minor > version.minor + 1:
            found.append(f"{named}: that skips a minor version; etcd upgrades one minor version at a time, so "
                         f"to {version.major}.{version.minor + 1}.x first")
    return found
