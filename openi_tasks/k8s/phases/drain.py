"""drain: cordon the hosts' Kubernetes Nodes, evict their pods and delete the Nodes, through the
API from this machine."""

from __future__ import annotations

from ...phase import Change, Phase
from ...run import Run
from ...ssh import Host


class DrainNodes(Phase):
    name = "drain"
    title = "Drain and delete the Kubernetes nodes"

    def plan(self, run: Run, host: Host) -> list[Change]:
        node = host.name.lower()
        what = f"cordon Node {node}, evict its pods (all but DaemonSets' and static ones), delete the Node"
        api = run.api()
        if api is None:
            if run.dry_run:
                return [Change(f"{what} (through the API, once the control plane exists)", lambda: None)]
            run.reporter.warn(f"{host.name}: no admin kubeconfig ({run.state.admin_conf}): the Kubernetes API was "
                              f"never deployed from here, so there is no Node to drain")
            return []
        if api.get({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}) is None:
            return []
        return [Change(what, lambda: api.drain_and_delete(node))]
