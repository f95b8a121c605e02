"""`inv images.push`: the built images to the configured registry, logging in when configured.

Credentials go to the Docker daemon through the SDK (an API call, like `docker login` without
its command line), never on a command line or in output.
"""

from __future__ import annotations

from dataclasses import dataclass

import docker
from docker.errors import APIError, ImageNotFound

from ..config import Cluster
from ..errors import OpenIError
from ..localfiles import local_docker
from ..report import Reporter
from .catalog import ImageSpec, build_order, used_by


class PushFailed(OpenIError):
    """Logging in or pushing failed; the message says which image and why."""


@dataclass(frozen=True)
class Pushed:
    ref: str
    digest: str


def registry_of(cluster: Cluster) -> str | None:
    """The registry to log in to; None for Docker Hub (`public`)."""
    domain = cluster.services.cluster.docker_registry_info.docker_registry_domain
    return None if domain == "public" else domain


def login(cluster: Cluster, client: docker.DockerClient) -> str | None:
    """Log in when credentials are configured; the user name, or None for anonymous."""
    info = cluster.services.cluster.docker_registry_info
    if not info.docker_username:
        return None
    password = info.docker_password.get_secret_value() if info.docker_password else ""
    registry = registry_of(cluster)
    try:
        client.login(username=info.docker_username, password=password, registry=registry, reauth=True)
    except APIError as exc:
        reason = (exc.explanation or str(exc)).replace(password, "***") if password else (exc.explanation or str(exc))
        raise PushFailed(f"login to {registry or 'Docker Hub'} as {info.docker_username} failed: {reason}") from None
    return info.docker_username


def push(cluster: Cluster, images: dict[str, ImageSpec], reporter: Reporter, names: list[str] | None = None,
         client: docker.DockerClient | None = None) -> list[Pushed]:
    client = client or local_docker()
    order = build_order(images, names, used_by(cluster, images))
    refs = [cluster.image_ref(spec.name) for spec in order]
    missing = []
    for ref in refs:
        try:
            client.images.get(ref)
        except ImageNotFound:
            missing.append(ref)
    if missing:
        raise PushFailed(f"not built yet (run inv images.build first): {', '.join(missing)}")
    user = login(cluster, client)
    reporter.info(f"pushing to {registry_of(cluster) or 'Docker Hub'}" + (f" as {user}" if user else " (anonymous)"))
    pushed = [_push_one(client, ref, reporter) for ref in refs]
    reporter.table("pushed", ("image", "digest"), [(p.ref, p.digest) for p in pushed])
    return pushed


def _push_one(client: docker.DockerClient, ref: str, reporter: Reporter) -> Pushed:
    repository, _, tag = ref.rpartition(":")
    digest = ""
    layers: dict[str, str] = {}
    try:
        for line in client.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in line:
                hint = " (is the registry running and reachable?)" if "connection refused" in line["error"] else ""
                raise PushFailed(f"pushing {ref} failed: {line['error'].strip()}{hint}")
            if line.get("id") and line.get("status") in ("Pushed", "Layer already exists", "Mounted from"):
                layers[line["id"]] = line["status"]
            if "aux" in line and "Digest" in line["aux"]:
                digest = line["aux"]["Digest"]
    except APIError as exc:
        raise PushFailed(f"pushing {ref} failed: {exc.explanation or exc}") from None
    reporter.info(f"  {ref}: {len(layers)} layers ({sum(s == 'Pushed' for s in layers.values())} uploaded)")
    if not digest:
        raise PushFailed(f"pushing {ref} ended without a digest")
    return Pushed(ref, digest)
