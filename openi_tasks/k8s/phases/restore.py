"""restore: on every master, stop the etcd member, keep its data aside, and restore a snapshot in
its place as a member of a new cluster of the configured masters (the etcd phase then starts them)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from ...config import Cluster
from ...phase import Change, Phase
from ...run import Run
from ...ssh import FileWrite, Host
from ..files import member_of
from ..static_pods import COMPONENTS, restart_command

STAGING = "/var/lib/openi/restore"


def restore_tool(cluster: Cluster) -> list[str]:
    """etcdutl from etcd 3.5 on (etcdctl's restore is gone in 3.6), etcdctl before."""
    match = re.match(r"v?(\d+)\.(\d+)", cluster.kubernetes.etcd_version)
    if match and (int(match[1]), int(match[2])) >= (3, 5):
        return ["etcdutl"]
    return ["etcdctl"]


class RestoreData(Phase):
    name = "restore"
    title = "Restore the snapshot on every master"

    def __init__(self, snapshot: Path, stamp: str) -> None:
        self.snapshot = snapshot
        self.stamp = stamp

    def hosts(self, run: Run) -> list[Host]:
        return run.hosts("master")

    def plan(self, run: Run, host: Host) -> list[Change]:
        cluster = run.cluster
        member = member_of(cluster, host.machine)
        data = cluster.kubernetes.etcd_data_path
        aside = f"{data}/{member.name}.before-restore-{self.stamp}"
        words = [
            "docker", "run", "--rm", "-e", "ETCDCTL_API=3",
            "-v", f"{data}:/var/lib/etcd", "-v", f"{STAGING}:/restore:ro", cluster.etcd_image,
            *restore_tool(cluster), "snapshot", "restore", "/restore/snapshot.db",
            f"--name={member.name}", f"--initial-cluster={cluster.etcd_initial_cluster}",
            f"--initial-cluster-token={cluster.id}", f"--initial-advertise-peer-urls={member.peer_url}",
            f"--data-dir=/var/lib/etcd/{member.name}",
        ]
        restore = " ".join(shlex.quote(w) for w in words)
        name = shlex.quote(f"etcd-{member.name}")
        current = shlex.quote(f"{data}/{member.name}")
        return [
            Change(f"upload {self.snapshot.name} to {STAGING}/snapshot.db",
                   FileWrite(f"{STAGING}/snapshot.db", self.snapshot, 0o600)),
            Change(f"stop and remove container etcd-{member.name}", f"docker rm -f {name}"),
            Change(f"keep the current data aside as {aside}",
                   f"if test -d {current}; then mv {current} {shlex.quote(aside)}; fi"),
            Change(f"restore the snapshot: {restore}", restore),
            Change(f"remove {STAGING}", f"rm -rf {STAGING}"),
        ]


class RestartControlPlane(Phase):
    """After etcd went back in time, the API servers' caches and the controllers' informers hold
    revisions etcd no longer has: their processes are stopped, kubelet starts them again, and the
    phase waits until the API answers ready through the endpoint."""

    name = "restart-control-plane"
    title = "Restart the control plane on the restored etcd"

    def hosts(self, run: Run) -> list[Host]:
        return run.hosts("master")

    def plan(self, run: Run, host: Host) -> list[Change]:
        if host.sh("test -f /etc/kubernetes/manifests/kube-apiserver.yaml").exited != 0:
            return []
        return [Change(f"restart {', '.join(COMPONENTS)} (kubelet starts them again) and wait until each runs again",
                       restart_command())]

    def after(self, run: Run) -> None:
        api = run.api()
        if api is not None:
            api.wait_ready(timeout=180)
