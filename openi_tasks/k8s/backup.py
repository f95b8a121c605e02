"""`inv k8s.backup` and `inv k8s.restore`: etcd snapshots, and a whole etcd cluster rebuilt from one.

A backup streams a snapshot from a healthy member (the leader when it answers) through the v3
API into `<state>/snapshots/etcd-<clusterid>-<UTC time>.db` (0600), with its sha256 beside it.
A restore checks that checksum, then on every master (under the cluster lock): stops the
member, moves its data aside (kept, not deleted), restores the snapshot into a fresh data
directory as a member of a new cluster of the configured masters, and starts all members
together with the deploy's etcd phase.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from pathlib import Path

from ..config import Cluster
from ..errors import OpenIError
from ..localfiles import file_digest
from ..inventory import Host, Inventory
from ..phase import Change, Phase, PhaseOutcome, PhaseRunner, Run
from ..report import Reporter
from ..state import state_dir
from .etcd import member_health, save_snapshot
from .files import member_of
from .phases.connect import Connect
from .phases.etcd import Etcd
from .phases.lock import Lock, Unlock
from .pki import ClusterPki

STAGING = "/var/lib/openi/restore"


def operator_pki(cluster: Cluster) -> ClusterPki:
    """The state directory's PKI, which must already hold this machine's etcd client certificate."""
    pki = ClusterPki(cluster, state_dir(cluster))
    if not (pki.etcd_dir / "operator.crt").is_file():
        raise OpenIError(f"no etcd client certificate in {pki.etcd_dir}: etcd was not deployed from this state directory")
    return pki


def backup(cluster: Cluster, out: Path | None = None, label: str = "") -> Path:
    """Take a snapshot; return its path in the state directory (copied to `out` too when given)."""
    pki = operator_pki(cluster)
    health = member_health(cluster, pki)
    answering = sorted((h for h in health if h.healthy), key=lambda h: not h.leader)
    if not answering:
        raise OpenIError("no etcd member answers: " + "; ".join(f"{h.name}: {h.error}" for h in health))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = state_dir(cluster) / "snapshots" / f"etcd-{cluster.id}-{stamp}{f'-{label}' if label else ''}.db"
    save_snapshot(pki, answering[0].url, target)
    checksum = Path(f"{target}.sha256")
    checksum.write_text(f"{file_digest(target)}  {target.name}\n")
    checksum.chmod(0o600)
    if out is not None:
        destination = out / target.name if out.is_dir() else out
        shutil.copyfile(target, destination)
        Path(f"{destination}.sha256").write_text(f"{file_digest(target)}  {destination.name}\n")
    return target


def verify(snapshot: Path) -> str:
    """Check the snapshot against its .sha256 file; the digest (raises when they differ)."""
    if not snapshot.is_file():
        raise OpenIError(f"{snapshot} does not exist")
    digest = file_digest(snapshot)
    sidecar = Path(f"{snapshot}.sha256")
    if not sidecar.is_file():
        raise OpenIError(f"{sidecar} is missing: openi-tasks restores only snapshots whose checksum it can check")
    expected = sidecar.read_text().split()[0]
    if expected != digest:
        raise OpenIError(f"{snapshot} does not match its checksum ({digest} is not {expected}); nothing was changed")
    return digest


def _restore_tool(cluster: Cluster) -> list[str]:
    """etcdutl from etcd 3.5 on (etcdctl's restore is gone in 3.6), etcdctl before."""
    match = re.match(r"v?(\d+)\.(\d+)", cluster.kubernetes.etcd_version)
    if match and (int(match[1]), int(match[2])) >= (3, 5):
        return ["etcdutl"]
    return ["etcdctl"]


class RestoreData(Phase):
    """On every master: stop the member, keep its data aside, restore the snapshot in its place."""

    name = "restore"
    title = "Restore the snapshot on every master"

    def hosts(self, run: Run) -> list[Host]:
        return run.hosts("master")

    def plan(self, run: Run, host: Host) -> list[Change]:
        cluster = run.cluster
        snapshot: Path = run.options["snapshot"]
        member = member_of(cluster, host.machine)
        k = cluster.kubernetes
        data = k.etcd_data_path
        aside = f"{data}/{member.name}.before-restore-{run.options['stamp']}"
        words = [
            "docker", "run", "--rm", "-e", "ETCDCTL_API=3",
            "-v", f"{data}:/var/lib/etcd", "-v", f"{STAGING}:/restore:ro", cluster.etcd_image,
            *_restore_tool(cluster), "snapshot", "restore", "/restore/snapshot.db",
            f"--name={member.name}", f"--initial-cluster={cluster.etcd_initial_cluster}",
            f"--initial-cluster-token={cluster.id}", f"--initial-advertise-peer-urls={member.peer_url}",
            f"--data-dir=/var/lib/etcd/{member.name}",
        ]
        restore = " ".join(shlex.quote(w) for w in words)
        name = shlex.quote(f"etcd-{member.name}")
        current = shlex.quote(f"{data}/{member.name}")
        return [
            Change(f"upload {snapshot.name} to {STAGING}/snapshot.db",
                   lambda: host.write_file(f"{STAGING}/snapshot.db", snapshot.read_bytes(), 0o600)),
            Change(f"stop and remove container etcd-{member.name}", lambda: host.sh(f"docker rm -f {name}", check=True)),
            Change(f"keep the current data aside as {aside}",
                   lambda: host.sh(f"if test -d {current}; then mv {current} {shlex.quote(aside)}; fi", check=True)),
            Change(f"restore the snapshot: {restore}", lambda: host.sh(restore, check=True)),
            Change(f"remove {STAGING}", lambda: host.sh(f"rm -rf {STAGING}", check=True)),
        ]


def restore(cluster: Cluster, reporter: Reporter, snapshot: Path, dry_run: bool = False) -> list[PhaseOutcome]:
    verify(snapshot)
    operator_pki(cluster)
    with Inventory(cluster, machines=cluster.masters) as inventory:
        run = Run(cluster, inventory, reporter, dry_run=dry_run, state_dir=state_dir(cluster),
                  options={"snapshot": snapshot, "stamp": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())})
        return PhaseRunner([Connect(), Lock(), RestoreData(), Etcd(), Unlock()]).run(run)
