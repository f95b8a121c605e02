"""nodes-ready: the deploy ends when every node of the configuration is Ready, not when the last
object was applied. A node is Ready once its kubelet runs and the pod network's configuration is
on it (flannel's init container writes it), so an operator's next step (a clean, services.deploy)
does not race the pod network's start."""

from __future__ import annotations

from ...errors import OpenIError
from ...phase import Change
from ...run import Run
from ...ssh import Host
from .base import OnFirstMaster

TIMEOUT = 300


class NodesReady(OnFirstMaster):
    """Changes nothing; waits (in `after`, so not in a dry run) through the API from this machine."""

    name = "nodes-ready"
    title = "Wait until every node is Ready"

    def plan(self, run: Run, host: Host) -> list[Change]:
        return []

    def after(self, run: Run) -> None:
        api = run.api()
        if api is None:
            raise OpenIError(f"{run.state.admin_conf} is missing: run the control-plane phase first")
        names = [m.hostname.lower() for m in run.cluster.nodes]
        api.wait_nodes_ready(names, TIMEOUT, on_ready=lambda name: run.log.write(f"{name}: Ready"))
