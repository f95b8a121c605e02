"""clean: undo what deploy put on a host, leaving it ready for a fresh deploy, in two phases:
`stop` (the kubelet, its pods, our containers) and then `clean`, planned on what `stop` left.

Removed: the containers deploy started, kubeadm's state (`kubeadm reset`), the files it wrote and
the data directories (etcd's data too). Kept: Docker and the Kubernetes packages (software, not
state), the /etc/hosts fix, and the CAs in the state directory (a new deploy reuses them).
"""

from __future__ import annotations

import shlex

from ...operations import ensure_absent
from ...phase import Change, Phase
from ...run import Run
from ...ssh import Host
from ..containers import managed_containers
from ..files import MODULES_LOAD, SYSCTL_CONF
from ..kubeadm import reset_command
from ..runtime import KUBELET_RUNTIME, OWN, Runtime, runtime_at
from .backup_schedule import STOP_TIMER, UNIT, UNIT_FILES
from .lock import LOCK
from .packages import CONTAINERD_CONFIG
from .reset import NETWORK

FILES = ("/etc/openi", "/etc/kubernetes", "/var/lib/kubelet", "/etc/cni/net.d/10-flannel.conflist",
         MODULES_LOAD, SYSCTL_CONF, *UNIT_FILES)
VAR_LIB_OPENI = "/var/lib/openi"
KUBELET_RUNS = "systemctl is-active --quiet kubelet"


def stop_kubelet(runtime: Runtime) -> str:
    """kubeadm reset stops the kubelet and the pods, but a pod it could not stop is only a warning in
    its output: the kubelet is stopped, and any task left in the runtime's Kubernetes namespace killed."""
    return f"systemctl stop kubelet 2>/dev/null || true; {runtime.kill_pods}"


POD_NETWORK_LEFT = "ip link show cni0 || ip link show flannel.1 || test -e /var/lib/cni"
# Tearing down a pod's network (containerd's restart) can put /var/lib/cni back: the removal is
# checked again a second later, at most 5 times, then reported with what still runs.
REMOVE_POD_NETWORK = (
    f"for attempt in 1 2 3 4 5; do {NETWORK}; sleep 1; "
    f"if ! {{ {POD_NETWORK_LEFT}; }} >/dev/null 2>&1; then exit 0; fi; done; "
    "echo 'the pod network came back after its removal; still running:' >&2; "
    "ps -eo pid,args | grep -E 'flannel|kube|pause|containerd-shim' | grep -v grep >&2; exit 1")


class StopKubernetes(Phase):
    """First of a clean: whatever could still write to the host stops before `Clean` looks at it.

    A pod that starts while a clean runs (flannel's, right after a deploy or a join) writes its
    CNI configuration when its init container runs: had `Clean` read the host before that, it
    would not remove what was written after (a second clean found flannel's conflist on master1).
    So the kubelet and its pods stop here, on every host, and `Clean` plans on what is left."""

    name = "stop"
    title = "Stop the kubelet, its pods and the containers deploy started"

    def plan(self, run: Run, host: Host) -> list[Change]:
        changes = []
        runtime = runtime_at(host.sh(KUBELET_RUNTIME).stdout, run.cluster)  # the one the kubelet used
        kubeadm, kubelet, pods, own, timer = host.sh_all([
            "command -v kubeadm && test -e /etc/kubernetes/kubelet.conf -o -e /etc/kubernetes/manifests",
            KUBELET_RUNS, runtime.pods_run, f"systemctl is-active --quiet {OWN.service}",
            f"systemctl is-enabled --quiet {UNIT}.timer || systemctl is-active --quiet {UNIT}.timer"])
        if timer.exited == 0:  # a scheduled snapshot must not start while etcd goes
            changes.append(Change(f"stop and disable {UNIT}.timer", STOP_TIMER))
        if kubeadm.exited == 0:
            reset = reset_command(run.cluster, runtime.socket)
            changes.append(Change(f"reset kubeadm's state ({reset})", reset))
        if kubeadm.exited == 0 or kubelet.exited == 0 or pods.exited == 0:
            changes.append(Change("stop the kubelet and every pod still running", stop_kubelet(runtime)))
        if own.exited == 0:  # openi-tasks' own containerd: nothing of it runs after a clean
            changes.append(Change(f"stop and disable {OWN.service}", f"systemctl disable --now {OWN.service}"))
        for name in managed_containers(host):
            changes.append(Change(f"remove container {name}", f"docker rm -f {shlex.quote(name)}"))
        return changes


class Clean(Phase):
    """What `StopKubernetes` left: files, data, containerd's configuration, the pod network.
    `forget_cluster`: also drop the admin kubeconfig and join token from the state directory
    (the whole cluster is gone); not when only some hosts are removed."""

    name = "clean"
    title = "Remove what deploy put on the hosts"

    def __init__(self, forget_cluster: bool = False) -> None:
        self.forget_cluster = forget_cluster

    def plan(self, run: Run, host: Host) -> list[Change]:
        etcd_data = run.cluster.kubernetes.etcd_data_path
        changes = ensure_absent(host, FILES + (etcd_data,))
        changes += _var_lib_openi(host, etcd_data)
        containerd = ensure_absent(host, [CONTAINERD_CONFIG])
        if containerd:
            changes += containerd + [Change("restart containerd with its default configuration",
                                            "systemctl restart containerd")]
        # Last: tearing down a pod's network (containerd's restart) recreates /var/lib/cni, so
        # removed before that it would be back after it.
        if host.sh(POD_NETWORK_LEFT).exited == 0:
            changes.append(Change("remove the pod network's interfaces and IP allocations, until they stay removed",
                                  REMOVE_POD_NETWORK))
        return changes

    def after(self, run: Run) -> None:
        if self.forget_cluster:
            for stale in (run.state.admin_conf, run.state.bootstrap_token):
                stale.unlink(missing_ok=True)


def _var_lib_openi(host: Host, etcd_data: str) -> list[Change]:
    """Everything in /var/lib/openi but the cluster lock, which unlock removes last, and etcd's data
    directory, whose removal is a change of its own. The names are read NUL-separated and removed
    by `find` itself, so no name is ever split into words."""
    keep = f"! -name {shlex.quote(LOCK.rsplit('/', 1)[1])} ! -path {shlex.quote(etcd_data.rstrip('/'))}"
    listing = host.sh(f"find {VAR_LIB_OPENI} -mindepth 1 -maxdepth 1 {keep} -print0 2>/dev/null")
    names = [name for name in listing.stdout.split("\0") if name]
    if not names:
        return []
    remove = f"find {VAR_LIB_OPENI} -mindepth 1 -maxdepth 1 {keep} -exec rm -rf -- {{}} +"
    return [Change(f"remove {', '.join(repr(n) if n != n.strip() or ' ' in n else n for n in names)}", remove)]
