"""control-plane: kubeadm with external etcd — `init` on the first master, then the other masters
join as control plane, one at a time."""

from __future__ import annotations

import shlex

from ...inventory import Host
from ...operations import ensure_files
from ...phase import Change, Phase, Run
from ...render import RenderedFile
from ...state import write_private
from .. import kubeadm
from ..kubeconfig import ADMIN_CONF, admin_path, for_operator
from ..packages import kubernetes_packages
from ..pki import pki_of
from .base import first_master
from .facts import facts_of


def join_secrets(run: Run) -> kubeadm.JoinSecrets:
    if "join" not in run.options:
        token = kubeadm.bootstrap_token(run.state_dir, persist=not run.dry_run)
        run.options["join"] = kubeadm.JoinSecrets(token, kubeadm.ca_cert_hash(pki_of(run).kubernetes_ca.cert_pem))
    return run.options["join"]


def kubeadm_config(run: Run, host: Host) -> RenderedFile:
    """This host's kubeadm configuration file (0600: it holds the join token)."""
    path, text = kubeadm.config_file(run.cluster, host.machine, join_secrets(run))
    return RenderedFile(path, text, 0o600)


class ControlPlane(Phase):
    name = "control-plane"
    title = "Control plane with kubeadm (external etcd), one master at a time"
    parallel = False

    def hosts(self, run: Run) -> list[Host]:
        return run.hosts("master")

    def plan(self, run: Run, host: Host) -> list[Change]:
        facts = facts_of(run, host)
        changes = kubernetes_packages(run, host, facts)
        config = kubeadm_config(run, host)
        path = config.path
        changes += ensure_files(host, [
            *(RenderedFile(f"{kubeadm.PKI}/{relative}", content.decode(), 0o600 if relative.endswith(".key") else 0o644)
              for relative, content in pki_of(run).control_plane_files().items()),
            config,
        ])
        first = host.machine is run.cluster.masters[0]
        if not facts.apiserver:
            command = f"kubeadm {'init' if first else 'join'} --config {shlex.quote(path)}"
            what = "initialise the control plane" if first else "join the control plane"
            changes.append(Change(f"{what}: {command}", lambda: host.sh(command, check=True)))
        elif first and self._someone_joins(run):
            token = join_secrets(run).token
            refresh = (f"kubeadm token list -o jsonpath='{{.token}}' | grep -q {shlex.quote(token.split('.')[0])} "
                       f"|| kubeadm token create {shlex.quote(token)} --ttl {kubeadm.TOKEN_TTL}")
            changes.append(Change("make sure the bootstrap token for joining nodes is valid",
                                  lambda: host.sh(refresh, check=True)))
        return changes

    def _someone_joins(self, run: Run) -> bool:
        return any(not f.kubelet_joined for f in run.facts.values())

    def after(self, run: Run) -> None:
        admin = first_master(run).read_file(ADMIN_CONF)
        if admin is not None:
            write_private(admin_path(run.state_dir), for_operator(run.cluster, admin))
