"""reset: a broken node's Kubernetes state removed (`kubeadm reset`), before it joins again."""

from __future__ import annotations

from ...phase import Change, Phase
from ...run import Run
from ...ssh import Host
from ..kubeadm import reset_command
from ..runtime import KUBELET_RUNTIME, runtime_at

STATE = ("/etc/kubernetes /var/lib/kubelet /etc/cni/net.d/10-flannel.conflist "
         "/etc/openi/kubeadm/started /etc/openi/kubeadm/done")
# What `kubeadm reset` leaves of the pod network: the bridge and VXLAN interfaces with the old
# node's addresses (a node that joins again gets another pod subnet, and its pods could not start
# while cni0 keeps the old address), and the IP allocations of host-local.
NETWORK = ("for link in cni0 flannel.1 flannel-wg flannel-v6.1; do ip link delete \"$link\" 2>/dev/null || true; done; "
           "rm -rf /var/lib/cni /run/flannel")


class ResetKubelet(Phase):
    name = "reset"
    title = "Reset the nodes' Kubernetes state"

    def plan(self, run: Run, host: Host) -> list[Change]:
        # The runtime the node's kubelet used, which may not be the configured one: a repair is how a
        # worker moves to openi-tasks' own containerd, and the old runtime's pods must stop.
        runtime = runtime_at(host.sh(KUBELET_RUNTIME).stdout, run.cluster)
        command = f"rm -rf {STATE}; {NETWORK}"
        if host.sh("command -v kubeadm").exited == 0:
            command = f"{reset_command(run.cluster, runtime.socket)} && {runtime.kill_pods}; {command}"
        # What was learned of the host before the reset no longer holds (it is no longer joined).
        return [Change(f"reset the node: {command}", command),
                Change("forget the facts gathered before the reset", lambda: run.facts.pop(host.name, None))]
