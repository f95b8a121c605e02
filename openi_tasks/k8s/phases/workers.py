"""workers: every worker (and the proxy node) joins the cluster, all at once."""

from __future__ import annotations

from ...operations import ensure_file
from ...phase import Change, Phase
from ...run import Run
from ...ssh import Host
from .. import kubeadm
from .control_plane import kubeadm_config, unfinished_reset
from .facts import facts_of


class Workers(Phase):
    name = "workers"
    title = "Join the workers"

    def hosts(self, run: Run) -> list[Host]:
        return [h for h in run.hosts() if not h.machine.is_master]

    def plan(self, run: Run, host: Host) -> list[Change]:
        facts = facts_of(run, host)
        config = kubeadm_config(run, host)
        changes = unfinished_reset(run, [config]) if facts.kubeadm_unfinished else ensure_file(host, config)
        if not facts.kubelet_joined or facts.kubeadm_unfinished:
            command = kubeadm.run_command("join", config.path)
            changes.append(Change(f"join the cluster: kubeadm join --config {config.path}",
                                  lambda: host.sh(command, check=True)))
        return changes
