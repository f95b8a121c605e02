"""addons: the pod network (flannel), the dashboard, for GPU nodes the RuntimeClass and the device
plugin, node labels from the machines' flags, and on GPU nodes the label of a working host driver
(addon_objects.HOST_DRIVER_LABEL), applied from this machine with server-side apply; only objects
that would change are applied.

The Nodes are listed once, not read one by one: whose labels differ from the machines' flags (and
which are not registered yet) comes from that one list, and only those are applied, several at
once. At 500 nodes that is a list and the applies, not a read, a dry run and an apply per node."""

from __future__ import annotations

import time

from ...errors import OpenIError
from ...kube import FIELD_MANAGER, KubeApi, NodeState
from ...phase import CONCURRENT_CALLS, Change
from ...run import Run
from ...ssh import Host, fan_out
from ..addon_objects import FACTS_MANAGER, addon_objects, describe, host_driver_labels, node_labels
from ..kubeadm import GPU_TAINT
from .base import OnFirstMaster

SHOWN = 10  # nodes named in a change's description; the run log has them all


class Addons(OnFirstMaster):
    """Applied through the API from this machine; its changes are shown against the first master."""

    name = "addons"
    title = "Add-ons: pod network, dashboard, node labels"

    def plan(self, run: Run, host: Host) -> list[Change]:
        flags = {o["metadata"]["name"]: o["metadata"]["labels"] for o in node_labels(run.cluster)}
        drivers = host_driver_labels(run.cluster, run.facts)
        objects = [o for o in addon_objects(run.cluster) if o["kind"] != "Node"]
        api = run.api()
        if api is None:
            if run.dry_run:
                return [Change(f"apply {describe(o)}", lambda: None) for o in objects] + \
                    [Change(f"label {len(flags)} node(s)", lambda: None)]
            raise FileNotFoundError(f"{run.state.admin_conf} is missing: run the control-plane phase first")
        live = _registered(api, list(flags))
        absent = sorted(set(flags) - set(live))
        # Applying would create a Node that no kubelet runs: absent Nodes are not compared.
        wanted = [(o, FIELD_MANAGER) for o in objects] + \
            [(o, FACTS_MANAGER) for o in drivers if o["metadata"]["name"] in live]
        differs = fan_out(list(range(len(wanted))), lambda i: api.would_change(*wanted[i]), CONCURRENT_CALLS)
        changes = []
        for index, (obj, manager) in enumerate(wanted):
            if isinstance(differs[index], BaseException):
                raise differs[index]
            if differs[index]:
                what = f"apply {describe(obj)}" + (" (the host's NVIDIA driver)" if manager == FACTS_MANAGER else "")
                # Namespaces first, one by one; the objects in them (and cluster-wide ones) at once.
                changes.append(Change(what, lambda o=obj, m=manager: api.apply(o, field_manager=m),
                                      concurrent=obj["kind"] != "Namespace"))
        stale = sorted(name for name, labels in flags.items() if name in live and live[name].labels_differ(labels))
        if stale:
            shown = ", ".join(stale[:SHOWN]) + (f" and {len(stale) - SHOWN} more" if len(stale) > SHOWN else "")
            changes.append(Change(f"label {len(stale)} of {len(flags)} node(s) with their machines' flags: {shown}",
                                  lambda: _label(api, {name: flags[name] for name in stale}, run)))
        changes += _gpu_taints(run, api, live)
        if absent:  # after everything else, so the others are applied
            changes.append(Change(f"label nodes {', '.join(absent)}", lambda: _not_in_cluster(absent)))
        return changes


def _label(api: KubeApi, wanted: dict[str, dict[str, str]], run: Run) -> None:
    """An apply of each node's whole label set, CONCURRENT_CALLS at once; every failure named."""
    start = time.monotonic()
    done = fan_out(list(wanted), lambda name: api.apply(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": wanted[name]}}), CONCURRENT_CALLS)
    if done.failed:
        raise OpenIError("labelling nodes failed:\n" + "\n".join(
            f"  {name}: {error}" for name, error in sorted(done.failed.items())))
    run.log.write(f"node labels: {len(wanted)} node(s) applied in {time.monotonic() - start:.1f}s "
                  f"({len(wanted)} requests after one list)")


def _gpu_taints(run: Run, api: KubeApi, live: dict[str, NodeState]) -> list[Change]:
    """GPU nodes tainted as kubernetes.gpu-taint says (new nodes join tainted; this is for the
    nodes that exist, and for the taint's removal)."""
    wanted = run.cluster.kubernetes.gpu_taint
    changes = []
    for name in [m.hostname.lower() for m in run.cluster.nodes if m.gpu_count]:
        state = live.get(name)
        if state is None:
            continue
        has = (GPU_TAINT["key"], GPU_TAINT["effect"]) in state.taints
        if has != wanted:
            what = f"{'taint' if wanted else 'remove the taint of'} Node {name} {GPU_TAINT['key']}:{GPU_TAINT['effect']}"
            changes.append(Change(what, lambda n=name: api.set_taint(n, GPU_TAINT, wanted)))
    return changes


def _registered(api: KubeApi, names: list[str], patience: float = 60) -> dict[str, NodeState]:
    """The Nodes, one list at a time, until all of `names` are there or `patience` seconds passed (a
    kubelet that has just joined registers within seconds)."""
    deadline = time.monotonic() + patience
    while True:
        live = api.nodes()
        if all(name in live for name in names) or time.monotonic() > deadline:
            return live
        time.sleep(2)


def _not_in_cluster(nodes: list[str]) -> None:
    raise OpenIError(f"not in the cluster, so not labelled: {', '.join(nodes)} (inv k8s.add adds a machine)")
