"""`inv k8s.backup --verify FILE`: a restore drill that does not touch the cluster.

The snapshot (its .sha256 checked first) is restored into a throwaway etcd in a container on this
machine's Docker, from the cluster's own etcd image: a volume of its own, no network but the
container's loopback, removed afterwards. What the restored etcd answers (its revision, its key
count, the keys by Kubernetes resource) is the proof that the snapshot would bring the cluster back.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..config import Cluster
from ..errors import OpenIError
from ..localfiles import local_docker
from .backup import verify
from .phases.restore import restore_tool

NAME = "verify"
PEER = "http://127.0.0.1:2380"
CLIENT = "http://127.0.0.1:2379"
READY_WITHIN = 60.0


@dataclass(frozen=True)
class Drill:
    sha256: str
    revision: int
    keys: tuple[str, ...]

    @property
    def resources(self) -> Counter:
        """How many keys each Kubernetes resource has (/registry/<resource>/...)."""
        return Counter(key.split("/")[2] for key in self.keys if key.startswith("/registry/") and key.count("/") >= 3)


def drill(cluster: Cluster, snapshot: Path) -> Drill:
    digest = verify(snapshot)
    client = local_docker()
    image = _image(client, cluster.etcd_image)
    run_id = uuid.uuid4().hex[:12]
    volume = client.volumes.create(f"openi-snapshot-drill-{run_id}", labels={"openi.snapshot-drill": "true"})
    containers = []
    try:
        restore = client.containers.create(
            image, [*restore_tool(cluster), "snapshot", "restore", "/drill/snapshot.db", f"--name={NAME}",
                    f"--initial-cluster={NAME}={PEER}", f"--initial-advertise-peer-urls={PEER}",
                    "--data-dir=/drill/data"],
            environment={"ETCDCTL_API": "3"}, network_mode="none", volumes={volume.name: {"bind": "/drill"}})
        containers.append(restore)
        with tempfile.TemporaryFile() as archive:  # the snapshot may be gigabytes: streamed, not held
            with tarfile.open(fileobj=archive, mode="w") as tar:
                tar.add(snapshot, arcname="snapshot.db")
            archive.seek(0)
            restore.put_archive("/drill", archive)
        restore.start()
        if restore.wait(timeout=600)["StatusCode"] != 0:
            raise OpenIError(f"{snapshot.name} does not restore: {_tail(restore)}")
        etcd = client.containers.run(
            image, ["etcd", f"--name={NAME}", "--data-dir=/drill/data", f"--listen-client-urls={CLIENT}",
                    f"--advertise-client-urls={CLIENT}", f"--listen-peer-urls={PEER}",
                    f"--initial-advertise-peer-urls={PEER}", f"--initial-cluster={NAME}={PEER}"],
            detach=True, network_mode="none", volumes={volume.name: {"bind": "/drill"}})
        containers.append(etcd)
        status = _ready(etcd, snapshot)
        keys = tuple(_etcdctl(etcd, "get", "", "--prefix", "--keys-only").split())
        return Drill(digest, int(status["header"]["revision"]), keys)
    finally:
        for container in containers:
            container.remove(force=True)
        volume.remove(force=True)


def _image(client, ref: str):
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        pass
    try:
        return client.images.pull(ref)
    except docker.errors.APIError as exc:
        raise OpenIError(f"the cluster's etcd image {ref} is not on this machine and cannot be pulled "
                         f"({exc.explanation or exc}); inv k8s.bundle --push makes it") from None


def _ready(etcd, snapshot: Path) -> dict:
    """The restored etcd's status (its revision in the header), once it answers."""
    deadline = time.monotonic() + READY_WITHIN
    while True:
        etcd.reload()
        if etcd.status != "running":
            raise OpenIError(f"etcd did not start on {snapshot.name}'s data: {_tail(etcd)}")
        code, output = etcd.exec_run(["etcdctl", f"--endpoints={CLIENT}", "endpoint", "status", "-w", "json"])
        if code == 0:
            return json.loads(output)[0]["Status"]
        if time.monotonic() > deadline:
            raise OpenIError(f"the restored etcd did not answer within {READY_WITHIN:.0f}s: "
                             f"{output.decode(errors='replace').strip()[-500:]}")
        time.sleep(0.5)


def _etcdctl(etcd, *words: str) -> str:
    code, output = etcd.exec_run(["etcdctl", f"--endpoints={CLIENT}", *words])
    text = output.decode(errors="replace")
    if code != 0:
        raise OpenIError(f"etcdctl {' '.join(words)} failed on the restored etcd: {text.strip()[-500:]}")
    return text


def _tail(container) -> str:
    return container.logs(tail=10).decode(errors="replace").strip() or f"exit {container.wait()['StatusCode']}"
