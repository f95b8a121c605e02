"""Certificate renewal (`k8s.certs --renew`), one master at a time, so that etcd keeps its quorum
and the API endpoint always has API servers that serve.

- renew-etcd: a member whose certificates are due gets new ones (the run's PKI issues them),
  with no restart: etcd reads its certificate and key again for every new connection, client or
  peer. A restart would cost requests: one that a follower forwards while the leadership moves is
  dropped, and its client gets "request timed out" seven seconds later. The member is then asked,
  on new connections to its client and peer URLs, to present the new certificates; the next member
  waits until etcd is healthy.
- renew-control-plane: on a master whose kubeadm certificates are due (or whose API server's etcd
  client certificate was renewed), the endpoint stops sending it new connections; kubeadm renews
  its certificates and kubeconfigs; the API server, controller manager and scheduler are restarted
  (none of them reloads all of these files by itself); its API server is waited for until ready;
  then the endpoint sends it connections again.
"""

from __future__ import annotations

import datetime
import shlex

from ...operations import ensure_file, ensure_files
from ...phase import Change, Phase
from ...pki import now
from ...render import RenderedFile
from ...run import Run
from ...ssh import Host
from ..certs import COLLECT, parse_collected
from ..etcd_client import wait_healthy, wait_presenting
from ..files import ETCD_PKI, etcd_pki_files, file_at, member_of
from ..kubeadm import LOCAL_CONFIG, PKI, local_config_file
from ..static_pods import COMPONENTS, restart_command
from .control_plane import apiserver_ready, pki_files
from .endpoint import out_of_endpoint, route_without

# What `kubeadm certs renew NAME` renews on a master, and the file it checks. The kubelet's own
# client certificate is rotated by the kubelet; the CAs are not renewed (see the README).
KUBEADM_RENEWS = {
    "apiserver": f"{PKI}/apiserver.crt",
    "apiserver-kubelet-client": f"{PKI}/apiserver-kubelet-client.crt",
    "front-proxy-client": f"{PKI}/front-proxy-client.crt",
    "admin.conf": "/etc/kubernetes/admin.conf",
    "super-admin.conf": "/etc/kubernetes/super-admin.conf",
    "controller-manager.conf": "/etc/kubernetes/controller-manager.conf",
    "scheduler.conf": "/etc/kubernetes/scheduler.conf",
}


class RenewEtcd(Phase):
    name = "renew-etcd"
    title = "Renew the etcd members' certificates, one member at a time"
    parallel = False

    def hosts(self, run: Run) -> list[Host]:
        return run.hosts("master")

    def plan(self, run: Run, host: Host) -> list[Change]:
        member = member_of(run.cluster, host.machine)
        files = etcd_pki_files(run.pki, member)  # issued once: with --all, each call issues anew
        changes = ensure_files(host, files)
        if not changes:
            return []
        wanted = {member.client_url: file_at(files, f"{ETCD_PKI}/server.crt").content.encode(),
                  member.peer_url: file_at(files, f"{ETCD_PKI}/peer.crt").content.encode()}
        return [*changes,
                Change(f"wait until {member.name} presents its new certificates on new connections (no restart)",
                       lambda: wait_presenting(run.pki, wanted)),
                Change("wait until every etcd member is healthy", lambda: wait_healthy(run.cluster, run.pki))]


class RenewControlPlane(Phase):
    """`within`: renew kubeadm's certificates that expire sooner than this from now."""

    name = "renew-control-plane"
    title = "Renew the control plane's certificates, one master at a time"
    parallel = False

    def __init__(self, within: datetime.timedelta) -> None:
        self.within = within

    def hosts(self, run: Run) -> list[Host]:
        return run.hosts("master")

    def plan(self, run: Run, host: Host) -> list[Change]:
        etcd_client = ensure_files(host, pki_files(run))
        due = self._due(host)
        if not (etcd_client or due):
            return []
        changes = list(etcd_client)
        if due:
            config = RenderedFile(LOCAL_CONFIG, local_config_file(run.cluster, host.machine), 0o600)
            changes += ensure_file(host, config, (None, None))
            names = " ".join(shlex.quote(name) for name in due)
            changes.append(Change(f"renew with kubeadm: {', '.join(due)}",
                                  f"for name in {names}; do kubeadm certs renew \"$name\" "
                                  f"--config {shlex.quote(LOCAL_CONFIG)} || exit 1; done"))
        changes.append(Change(f"restart {', '.join(COMPONENTS)} (kubelet starts them again) and wait until each "
                              f"runs again", restart_command(COMPONENTS)))
        changes.append(apiserver_ready(run, host))
        # With other masters behind the endpoint, this one is taken out while it restarts.
        return out_of_endpoint(run, host, changes)

    def cleanup(self, run: Run) -> None:
        # A master taken out of the endpoint goes back in; haproxy's health check keeps out a
        # master whose API server does not answer.
        route_without(run, frozenset())

    def _due(self, host: Host) -> list[str]:
        """The names of kubeadm's certificates on `host` that are due (present ones only)."""
        found, _ = parse_collected(host.name, host.sh(COLLECT, check=True).stdout)
        expiry = {c.path: c.not_after for c in found}
        limit = now() + self.within
        return [name for name, path in KUBEADM_RENEWS.items() if path in expiry and expiry[path] <= limit]
