"""addons: the pod network (flannel), the dashboard, and node labels from the machines' flags,
applied from this machine with server-side apply; only objects that would change are applied."""

from __future__ import annotations

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
        return [Change(f"apply {describe(o)}", lambda o=o: api.apply(o)) for o in objects if api.would_change(o)]
