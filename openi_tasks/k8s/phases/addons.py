"""addons: the pod network (flannel), the dashboard, and node labels from the machines' flags,
applied from this machine with server-side apply; only objects that would change are applied."""

from __future__ import annotations

import time

from ...errors import OpenIError
from ...phase import CONCURRENT_CALLS, Change
from ...run import Run
from ...ssh import Host, fan_out
from ..addon_objects import addon_objects, describe
from .base import OnFirstMaster


class Addons(OnFirstMaster):
    """Applied through the API from this machine; its changes are shown against the first master."""

    name = "addons"
    title = "Add-ons: pod network, dashboard, node labels"

    def plan(self, run: Run, host: Host) -> list[Change]:
        objects = addon_objects(run.cluster)
        api = run.api()
        if api is None:
            if run.dry_run:
                return [Change(f"apply {describe(o)}", lambda: None) for o in objects]
            raise FileNotFoundError(f"{run.state.admin_conf} is missing: run the control-plane phase first")
        changes = []
        absent = _unregistered(api, [o for o in objects if o["kind"] == "Node"])
        # Applying would create a Node that no kubelet runs: absent Nodes are not compared.
        wanted = [o for o in objects if not (o["kind"] == "Node" and o["metadata"]["name"] in absent)]
        differs = fan_out(list(range(len(wanted))), lambda i: api.would_change(wanted[i]), CONCURRENT_CALLS)
        for index, obj in enumerate(wanted):
            if isinstance(differs[index], BaseException):
                raise differs[index]
            if differs[index]:
                # Namespaces first, one by one; the objects in them (and cluster-wide ones) at once.
                changes.append(Change(f"apply {describe(obj)}", lambda o=obj: api.apply(o),
                                      concurrent=obj["kind"] != "Namespace"))
        if absent:  # after everything else, so the others are applied
            changes.append(Change(f"label nodes {', '.join(absent)}", lambda: _not_in_cluster(absent)))
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
