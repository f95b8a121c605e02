"""docker: Docker Engine (with its containerd) on every host, installed when missing, enabled and running.

containerd's CRI for kubelet is configured by the packages phase, once kubeadm says which sandbox
image it wants."""

from __future__ import annotations

import shlex

from ...config import Cluster
from ...phase import Change, Phase
from ...run import Run
from ...ssh import Host
from ..hostfacts import HostFacts
from .packages import APT
from .facts import facts_of


def install_command(cluster: Cluster, facts: HostFacts) -> tuple[str, str]:
    """(description, command) installing Docker from the configured source."""
    k = cluster.kubernetes
    if k.docker_install_source == "os-package":
        return "install Docker from the OS package (docker.io)", f"{APT} update && {APT} install -y docker.io"
    repo = f"{k.docker_repository.rstrip('/')}/{facts.os_id}"
    source = f"deb [signed-by=/etc/apt/keyrings/docker.asc] {repo} {facts.os_codename} stable"
    command = (
        f"{APT} update && {APT} install -y ca-certificates curl && install -m 0755 -d /etc/apt/keyrings && "
        f"curl -fsSL {shlex.quote(repo + '/gpg')} -o /etc/apt/keyrings/docker.asc && "
        f"chmod a+r /etc/apt/keyrings/docker.asc && "
        f"printf '%s\\n' {shlex.quote(source)} > /etc/apt/sources.list.d/docker.list && "
        f"{APT} update && {APT} install -y docker-ce docker-ce-cli containerd.io"
    )
    return f"install Docker from {repo}", command


class Docker(Phase):
    name = "docker"
    title = "Docker Engine and containerd on every host"

    def plan(self, run: Run, host: Host) -> list[Change]:
        facts = facts_of(run, host)
        changes = []
        if not facts.docker:
            description, command = install_command(run.cluster, facts)
            changes.append(Change(f"{description}: {command}", command))
        if not facts.docker_active:
            changes.append(Change("enable and start docker (systemctl enable --now containerd docker)",
                                  "systemctl enable --now containerd docker"))
        return changes
