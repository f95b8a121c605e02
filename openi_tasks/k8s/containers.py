"""Containers that deploy runs with the hosts' Docker (etcd members, the endpoint's haproxy).

A container is defined by a rendered YAML file (`templates/k8s/.../*-container.yaml.j2`). Its
hash, with the hashes of the files it depends on (certificates, haproxy.cfg), is stored on the
container as a label, so "is it already as configured?" is a comparison with the running
container, not a memory. Docker on the hosts is driven with its CLI over SSH: the hosts' Docker
daemons are not exposed to the network, and SSH is the one way in.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field

import yaml

from ..config.files import _IMAGE as IMAGE
from ..errors import OpenIError
from ..phase import Change
from ..ssh import Host

MANAGED = "openi.managed"
SPEC_HASH = "openi.spec-hash"
COMPONENT = "openi.component"


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    command: tuple[str, ...]
    volumes: tuple[str, ...] = ()
    network: str = "host"
    restart: str = "always"
    env_file: str = ""
    component: str = ""
    depends: tuple[str, ...] = field(default=(), compare=False)  # digests of files it reads

    @classmethod
    def from_yaml(cls, text: str, component: str, depends: tuple[str, ...] = ()) -> "ContainerSpec":
        data = yaml.safe_load(text)
        return cls(
            name=data["name"],
            image=data["image"],
            command=tuple(str(c) for c in data.get("command") or ()),
            volumes=tuple(data.get("volumes") or ()),
            network=data.get("network", "host"),
            restart=data.get("restart", "always"),
            env_file=data.get("env_file", ""),
            component=component,
            depends=depends,
        )

    @property
    def digest(self) -> str:
        body = json.dumps(
            [self.name, self.image, self.command, self.volumes, self.network, self.restart, self.env_file, self.depends]
        )
        return hashlib.sha256(body.encode()).hexdigest()[:20]

    def run_command(self) -> str:
        """The `docker run` that starts this container, every value quoted. The image comes after
        the options: one that could be read as an option is refused here, wherever it came from."""
        if not IMAGE.match(self.image):
            raise OpenIError(f"container {self.name}: {self.image!r} is not an image reference")
        words = [
            "docker", "run", "-d", "--name", self.name,
            f"--network={self.network}", f"--restart={self.restart}",
            "--label", f"{MANAGED}=true", "--label", f"{COMPONENT}={self.component}",
            "--label", f"{SPEC_HASH}={self.digest}",
        ]
        if self.env_file:
            words += ["--env-file", self.env_file]
        for volume in self.volumes:
            words += ["-v", volume]
        words += [self.image, *self.command]
        return " ".join(shlex.quote(w) for w in words)


def digest(content: bytes | str) -> str:
    data = content.encode() if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()[:20]


@dataclass(frozen=True)
class RunningContainer:
    name: str
    running: bool
    spec_hash: str


def inspect(host: Host, name: str) -> RunningContainer | None:
    """The container `name` on `host`, or None when there is none (or Docker is not there)."""
    result = host.sh(
        f"docker inspect --format '{{{{.State.Running}}}} {{{{index .Config.Labels \"{SPEC_HASH}\"}}}}' "
        f"{shlex.quote(name)} 2>/dev/null"
    )
    if result.exited != 0 or not result.stdout.strip():
        return None
    running, _, spec_hash = result.stdout.strip().partition(" ")
    return RunningContainer(name, running == "true", spec_hash.strip())


STOP_TIMEOUT = 30  # seconds a replaced container gets to stop by itself


def ensure_container(spec: ContainerSpec, current: RunningContainer | None) -> list[Change]:
    """Make it so: start the container, or replace it when its definition or inputs changed."""
    if current is not None and current.spec_hash == spec.digest:
        if current.running:
            return []
        return [Change(f"start container {spec.name}", f"docker start {shlex.quote(spec.name)}")]
    run = spec.run_command()
    if current is None:
        return [Change(f"run container {spec.name}: {run}", run)]
    # The image is there before the old container stops: an image that cannot be pulled leaves it
    # running. Stopped with SIGTERM first: etcd then answers the requests it holds and tells its
    # clients to go elsewhere (`docker rm -f` kills it, and an API server's write in flight fails).
    name, image = shlex.quote(spec.name), shlex.quote(spec.image)
    replace = (f"{{ docker image inspect {image} >/dev/null 2>&1 || docker pull -q {image} >/dev/null; }} && "
               f"{{ docker stop --time {STOP_TIMEOUT} {name} >/dev/null 2>&1; docker rm -f {name} && {run}; }}")
    return [Change(f"replace container {spec.name} (its definition changed): {run}", replace)]


def managed_containers(host: Host) -> list[str]:
    """Names of every container that deploy made on `host`."""
    result = host.sh(f"docker ps -a --filter label={MANAGED}=true --format '{{{{.Names}}}}' 2>/dev/null")
    return result.stdout.split() if result.exited == 0 else []
