"""addons: the pod network (flannel), the dashboard, for GPU nodes the RuntimeClass and the device
plugin, node labels from the machines' flags, and on GPU nodes the label of a working host driver
(addon_objects.HOST_DRIVER_LABEL), applied from this machine with server-side apply; only objects
that would change are applied."""

from __future__ import annotations

import time

from ...errors import OpenIError
from ...kube import FIELD_MANAGER
from ...phase import CONCURRENT_CALLS, Change
from ...run import Run
from ...ssh import Host, fan_out
from ..addon_objects import FACTS_MANAGER, addon_objects, describe, host_driver_labels
from ..kubeadm import GPU_TAINT
from .base import OnFirstMaster


class Addons(OnFirstMaster):
    """Applied through the API from this machine; its changes are shown against the first master."""

    name = "addons"
    title = "Add-ons: pod network, dashboard, node labels"

    def plan(self, run: Run, host: Host) -> list[Change]:
        labelled = host_driver_labels(run.cluster, run.facts)
        objects = [(o, FIELD_MANAGER) for o in addon_objects(run.cluster)] + [(o, FACTS_MANAGER) for o in labelled]
        api = run.api()
        if api is None:
            if run.dry_run:
                return [Change(f"apply {describe(o)}", lambda: None) for o, _ in objects]
            raise FileNotFoundError(f"{run.state.admin_conf} is missing: run the control-plane phase first")
        changes = []
        absent = _unregistered(api, [o for o, _ in objects if o["kind"] == "Node"])
        # Applying would create a Node that no kubelet runs: absent Nodes are not compared.
        wanted = [(o, m) for o, m in objects if not (o["kind"] == "Node" and o["metadata"]["name"] in absent)]
        differs = fan_out(list(range(len(wanted))), lambda i: api.would_change(*wanted[i]), CONCURRENT_CALLS)
        for index, (obj, manager) in enumerate(wanted):
            if isinstance(differs[index], BaseException):
                raise differs[index]
            if differs[index]:
                what = f"apply {describe(obj)}" + (" (the host's NVIDIA driver)" if manager == FACTS_MANAGER else "")
                # Namespaces first, one by one; the objects in them (and cluster-wide ones) at once.
                changes.append(Change(what, lambda o=obj, m=manager: api.apply(o, field_manager=m),
                                      concurrent=obj["kind"] != "Namespace"))
        changes += _gpu_taints(run, api, set(absent))
        if absent:  # after everything else, so the others are applied
            changes.append(Change(f"label nodes {', '.join(sorted(set(absent)))}", lambda: _not_in_cluster(absent)))
        return changes


def _gpu_taints(run: Run, api, absent: set[str]) -> list[Change]:
    """GPU nodes tainted as kubernetes.gpu-taint says (new nodes join tainted; this is for the
    nodes that exist, and for the taint's removal)."""
    wanted = run.cluster.kubernetes.gpu_taint
    gpu_nodes = [m.hostname.lower() for m in run.cluster.nodes if m.gpu_count and m.hostname.lower() not in absent]
    if not gpu_nodes:
        return []
    live = api.nodes()  # one list, not a read per GPU node
    changes = []
    for name in gpu_nodes:
        state = live.get(name)
        has = state is not None and (GPU_TAINT["key"], GPU_TAINT["effect"]) in state.taints
        if has != wanted:
            what = f"{'taint' if wanted else 'remove the taint of'} Node {name} {GPU_TAINT['key']}:{GPU_TAINT['effect']}"
            changes.append(Change(what, lambda n=name: api.set_taint(n, GPU_TAINT, wanted)))
    return changes


def _unregistered(api, nodes: list[dict], patience: float = 60) -> list[str]:
    """The Nodes that do not exist, after waiting up to `patience` seconds for all of them (a
    kubelet that has just joined registers within seconds)."""
    deadline = time.monotonic() + patience
    while True:
        absent = [n["metadata"]["name"] for n in nodes if api.get(n) is None]
        if not absent or time.monotonic() > deadline:
            return absent
        time.sleep(2)


def _not_in_cluster(nodes: list[str]) -> None:
    raise OpenIError(f"not in the cluster, so not labelled: {', '.join(nodes)} (inv k8s.add adds a machine)")
