"""addons: the pod network (flannel), the dashboard, and node labels from the machines' flags,
applied from this machine with server-side apply; only objects that would change are applied."""

from __future__ import annotations

from ...errors import OpenIError
from ...inventory import Host
from ...kube import KubeApi
from ...phase import Change, Run
from ..addons import addon_objects, describe
from ..kubeconfig import admin_path
from .base import OnFirstMaster


class Addons(OnFirstMaster):
    """Applied through the API from this machine; its changes are shown against the first master."""

    name = "addons"
    title = "Add-ons: pod network, dashboard, node labels"

    def plan(self, run: Run, host: Host) -> list[Change]:
        objects = addon_objects(run.cluster)
        kubeconfig = admin_path(run.state_dir)
        if not kubeconfig.is_file():
            if run.dry_run:
                return [Change(f"apply {describe(o)}", lambda: None) for o in objects]
            raise FileNotFoundError(f"{kubeconfig} is missing: run the control-plane phase first")
        api = KubeApi(kubeconfig)
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
