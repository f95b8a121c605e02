"""kubeconfig: the cluster's admin kubeconfig for the operator, in the state directory.

`inv k8s.install-kubectl` merges it into ~/.kube/config.
"""

from __future__ import annotations

from ...phase import Change
from ...run import Run
from ...ssh import Host
from ...state import write_private
from ..admin_conf import ADMIN_CONF, for_operator
from .base import OnFirstMaster


class Kubeconfig(OnFirstMaster):
    name = "kubeconfig"
    title = "Admin kubeconfig for the operator"

    def plan(self, run: Run, host: Host) -> list[Change]:
        target = run.state.admin_conf
        admin = host.read_file(ADMIN_CONF)
        if admin is None:
            if run.dry_run:
                return [Change(f"fetch {ADMIN_CONF} from {host.name} into {target} (after kubeadm init)", lambda: None)]
            raise FileNotFoundError(f"{host.name}: {ADMIN_CONF} is missing: the control plane is not initialised")
        wanted = for_operator(run.cluster, admin)
        if target.is_file() and target.read_text() == wanted:
            return []
        return [Change(f"write {target} (0600)", lambda: write_private(target, wanted))]
