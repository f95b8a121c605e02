"""endpoint: the API endpoint. In proxy mode, haproxy as a Docker container on the proxy node,
balancing every master's API port; external and single modes need nothing on the hosts."""

from __future__ import annotations

import dataclasses
import shlex
import time

from ...config import Cluster
from ...errors import OpenIError
from ...operations import ensure_file, file_states
from ...phase import Change, Phase, apply_changes
from ...render import RenderedFile
from ...run import Run
from ...ssh import CommandFailed, Host
from ..containers import ContainerSpec, ensure_container, inspect
from ..files import HAPROXY_CONFIG, HAPROXY_CONTAINER, HAPROXY_DIR, file_at, host_files

CONTAINER_CONFIG_DIR = "/usr/local/etc/haproxy"


def check_haproxy_config(host: Host, config: RenderedFile, image: str) -> None:
    """Run `haproxy -c` on the new configuration, with the image that will load it."""
    staged = f"{HAPROXY_CONFIG}.new"
    host.write_file(staged, config.content, config.mode)
    command = (
        f"docker run --rm -v {shlex.quote(HAPROXY_DIR + ':' + CONTAINER_CONFIG_DIR + ':ro')} {shlex.quote(image)} "
        f"haproxy -c -f {CONTAINER_CONFIG_DIR}/haproxy.cfg.new"
    )
    result = host.sh(command)
    host.sh(f"rm -f {shlex.quote(staged)}")
    if result.exited != 0:
        raise CommandFailed(host.name, "haproxy -c (the new configuration was not installed)", result)


class Endpoint(Phase):
    """`without`: masters the endpoint must stop sending requests to (they are being removed); the
    proxy is changed even when the run's targets are only those masters."""

    name = "endpoint"
    title = "API endpoint (haproxy on the proxy node)"

    def __init__(self, without: frozenset[str] = frozenset()) -> None:
        self.without = without

    def should_run(self, run: Run) -> bool:
        return run.cluster.endpoint.mode == "proxy"

    def hosts(self, run: Run) -> list[Host]:
        return run.inventory.hosts(role="proxy") if self.without else run.hosts("proxy")

    def _cluster(self, run: Run) -> Cluster:
        if not self.without:
            return run.cluster
        return dataclasses.replace(run.cluster, machines=tuple(m for m in run.cluster.machines
                                                               if m.hostname not in self.without))

    def plan(self, run: Run, host: Host) -> list[Change]:
        files = host_files(self._cluster(run), host.machine)
        config, definition = file_at(files, HAPROXY_CONFIG), file_at(files, HAPROXY_CONTAINER)
        image = run.cluster.kubernetes.haproxy_image
        changes = []
        states = file_states(host, [config.path, definition.path])
        config_changes = ensure_file(host, config, states[config.path])
        spec = ContainerSpec.from_yaml(definition.content, "haproxy")
        current = inspect(host, spec.name)
        # A running endpoint is kept from a broken configuration by a check first (a container of
        # its own, about 10 s on a busy host). Nothing serves yet on a first start: haproxy checks
        # the file as it starts, and `after` reports its own words if it does not keep running.
        if config_changes and current is not None and current.running:
            changes.append(Change(f"check the new haproxy.cfg with haproxy -c ({image})",
                                  lambda: check_haproxy_config(host, config, image)))
        changes += config_changes
        changes += ensure_file(host, definition, states[definition.path])
        # The configuration is not part of the container's definition: a new one is loaded by the
        # running haproxy (master-worker mode reloads on SIGUSR2, keeping open connections), so the
        # API endpoint never goes away while masters are added or removed.
        container = ensure_container(spec, current)
        if config_changes and not container and current is not None and current.running:
            changes.append(Change(f"reload haproxy with the new configuration (docker kill -s USR2 {spec.name}: "
                                  f"open connections are kept)", f"docker kill -s USR2 {shlex.quote(spec.name)}"))
        return changes + container

    def after(self, run: Run) -> None:
        for host in self.hosts(run):
            definition = file_at(host_files(self._cluster(run), host.machine), HAPROXY_CONTAINER)
            wait_serving(host, ContainerSpec.from_yaml(definition.content, "haproxy").name, run.cluster.kubernetes.api_port)


def route_without(run: Run, without: frozenset[str]) -> None:
    """Now, make the endpoint send new connections only to the masters not in `without` (an
    empty set: to all of them again); a master's work that stops its API server goes between."""
    if run.cluster.endpoint.mode != "proxy":
        return
    endpoint = Endpoint(without)
    for host in endpoint.hosts(run):
        apply_changes(host, endpoint.plan(run, host))
    endpoint.after(run)


def out_of_endpoint(run: Run, host: Host, changes: list[Change]) -> list[Change]:
    """`changes` (which stop `host`'s API server) made while the endpoint sends `host` no new
    connections, when other masters are behind an endpoint of ours; the phase's clean-up must
    call `route_without(run, frozenset())` so that a failure puts every master back."""
    if len(run.cluster.masters) < 2 or run.cluster.endpoint.mode != "proxy":
        return changes
    return [Change(f"stop sending new API connections to {host.name} (haproxy reload)",
                   lambda: route_without(run, frozenset([host.name]))),
            *changes,
            Change(f"send API connections to {host.name} again", lambda: route_without(run, frozenset()))]


def wait_serving(host: Host, name: str, port: int, timeout: float = 30.0, settle: int = 5) -> None:
    """Wait until the container runs, its port listens, and it has been up `settle` seconds
    (a container in a restart loop never is)."""
    probe = (f"docker inspect -f '{{{{.State.Running}}}} {{{{.State.StartedAt}}}}' {shlex.quote(name)} | "
             f"{{ read running started; echo \"$running $(( $(date +%s) - $(date -d \"$started\" +%s) ))\"; }} && "
             f"ss -Htln 'sport = :{port}' | grep -q .")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = host.sh(probe)
        words = result.stdout.split()
        if result.exited == 0 and words[:1] == ["true"] and int(words[1]) >= settle:
            return
        time.sleep(1)
    logs = host.sh(f"docker logs --tail 20 {shlex.quote(name)} 2>&1").stdout.strip()
    raise OpenIError(f"{host.name}: {name} does not keep serving port {port}:\n    {logs}")
