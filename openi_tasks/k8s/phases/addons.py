"""addons: the pod network (flannel), the dashboard, and node labels from the machines' flags,
applied from this machine with server-side apply; only objects that would change are applied."""

from __future__ import annotations

from ...errors import OpenIError
from ...phase import Change
from ...run import Run
from ...ssh import Host
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
        changes, absent = [], []
        for obj in objects:
            if obj["kind"] == "Node" and api.get(obj) is None:
                absent.append(obj["metadata"]["name"])  # applying would create a Node that no kubelet runs
            elif api.would_change(obj):
                changes.append(Change(f"apply {describe(obj)}", lambda o=obj: api.apply(o)))
        if absent:  # after everything else, so the others are applied
            changes.append(Change(f"label nodes {', '.join(absent)}", lambda: _not_in_cluster(absent)))
        return changes


def _not_in_cluster(nodes: list[str]) -> None:
    raise OpenIError(f"not in the cluster, so not labelled: {', '.join(nodes)} (inv k8s.add adds a machine)")
