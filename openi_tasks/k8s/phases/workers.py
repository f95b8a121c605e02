"""workers: every worker (and the proxy node) joins the cluster, all at once."""

from __future__ import annotations

import shlex

from ...operations import ensure_file
from ...phase import Change, Phase
from ...run import Run
from ...ssh import Host
from .control_plane import kubeadm_config
from .facts import facts_of


class Workers(Phase):
    name = "workers"
    title = "Join the workers"

    def hosts(self, run: Run) -> list[Host]:
        return [h for h in run.hosts() if not h.machine.is_master]

    def plan(self, run: Run, host: Host) -> list[Change]:
        facts = facts_of(run, host)
        config = kubeadm_config(run, host)
        changes = ensure_file(host, config)
        if not facts.kubelet_joined:
            command = f"kubeadm join --config {shlex.quote(config.path)}"
            changes.append(Change(f"join the cluster: {command}", command))
        return changes
