"""reset: a broken node's Kubernetes state removed (`kubeadm reset`), before it joins again."""

from __future__ import annotations

from ...phase import Change, Phase
from ...run import Run
from ...ssh import Host

STATE = "/etc/kubernetes /var/lib/kubelet /etc/cni/net.d/10-flannel.conflist"


class ResetKubelet(Phase):
    name = "reset"
    title = "Reset the nodes' Kubernetes state"

    def plan(self, run: Run, host: Host) -> list[Change]:
        command = f"rm -rf {STATE}"
        if host.sh("command -v kubeadm").exited == 0:
            command = f"kubeadm reset -f && {command}"
        return [Change(f"reset the node: {command}", command)]
