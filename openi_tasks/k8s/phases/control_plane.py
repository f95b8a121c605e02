"""control-plane: kubeadm with external etcd — `init` on the first master, then the other masters
join as control plane, one at a time."""

from __future__ import annotations

import shlex

from ...kube import wait_apiserver_ready
from ...operations import ensure_files
from ...phase import Change, Phase
from ...render import RenderedFile
from ...run import Run
from ...ssh import FileWrite, Host
from ...state import write_private
from .. import kubeadm
from ..addon_objects import pod_network_objects
from ..admin_conf import ADMIN_CONF, for_operator
from .facts import facts_of


def adaptations(run: Run, host: Host) -> kubeadm.Adaptations:
    """What this host's facts, and the other hosts' known so far, change in kubeadm's configuration."""
    mine = facts_of(run, host)
    known = list(run.facts.values())
    return kubeadm.Adaptations(cgroup_v1=mine.cgroup == 1, any_cgroup_v1=any(f.cgroup == 1 for f in known),
                               conntrack_fixed=any(not f.conntrack_writable for f in known))


def unfinished_reset(run: Run, files: list[RenderedFile]) -> list[Change]:
    """For a host whose last kubeadm init or join never finished: reset it, then write every file
    again (the reset removes those in /etc/kubernetes)."""
    return [Change("reset the init or join that an earlier run left unfinished", kubeadm.reset_unfinished(run.cluster)),
            *(Change(f"write {f.path} (mode {f.mode:o})", FileWrite(f.path, f.content.encode(), f.mode)) for f in files)]


def pki_files(run: Run) -> list[RenderedFile]:
    """What every master needs in /etc/kubernetes/pki before kubeadm runs (keys 0600)."""
    return [RenderedFile(f"{kubeadm.PKI}/{relative}", content.decode(), 0o600 if relative.endswith(".key") else 0o644)
            for relative, content in run.pki.control_plane_files().items()]


def apiserver_ready(run: Run, host: Host) -> Change:
    """A wait until the API server on `host` answers /readyz (asked directly, not through the endpoint)."""
    ca_file = run.pki.root / "kubernetes" / "ca.crt"
    port = run.cluster.kubernetes.api_port
    return Change(f"wait until the API server on {host.name} is ready",
                  lambda: wait_apiserver_ready(host.machine.address, port, ca_file))


def kubeadm_config(run: Run, host: Host) -> RenderedFile:
    """This host's kubeadm configuration file (0600: it holds the join token)."""
    path, text = kubeadm.config_file(run.cluster, host.machine, run.join, adaptations(run, host))
    return RenderedFile(path, text, 0o600)


def fetch_admin_conf(run: Run) -> None:
    """The first master's admin.conf, pointed at the endpoint, into the state directory (0600)."""
    admin = run.first_master.read_file(ADMIN_CONF)
    if admin is not None:
        write_private(run.state.admin_conf, for_operator(run.cluster, admin))


def pod_network_now(run: Run) -> Change:
    """Right after `kubeadm init`: the pod network, so that each node's flannel starts as the node
    joins, while the other masters join, instead of after all of them (the add-ons phase then
    finds it applied)."""
    def apply() -> None:
        fetch_admin_conf(run)
        api = run.api()
        for obj in pod_network_objects(run.cluster):
            api.apply(obj)

    return Change("apply the pod network now, so that each node's flannel starts as it joins", apply)


class ControlPlane(Phase):
    name = "control-plane"
    title = "Control plane with kubeadm (external etcd), one master at a time"
    parallel = False

    def hosts(self, run: Run) -> list[Host]:
        return run.hosts("master")

    def plan(self, run: Run, host: Host) -> list[Change]:
        facts = facts_of(run, host)
        config = kubeadm_config(run, host)
        files = [*pki_files(run), config]
        changes = unfinished_reset(run, files) if facts.kubeadm_unfinished else ensure_files(host, files)
        first = host.machine is run.cluster.masters[0]
        if not facts.apiserver or facts.kubeadm_unfinished:
            verb = "init" if first else "join"
            what = "initialise the control plane" if first else "join the control plane"
            command = kubeadm.run_command(verb, config.path)
            # A session of its own: minutes long, and its duration is the run log's kubeadm floor.
            changes.append(Change(f"{what}: kubeadm {verb} --config {config.path}",
                                  lambda: host.sh(command, check=True)))
            if first and pod_network_objects(run.cluster):
                changes.append(pod_network_now(run))
        elif first and any(not f.kubelet_joined for f in run.facts.values()):
            token_id = run.join.token.split(".")[0]
            # The token comes from the configuration file (0600), never from the command line.
            refresh = (f"kubeadm token list -o jsonpath='{{.token}}{{\"\\n\"}}' | grep -q '^{token_id}\\.' "
                       f"|| kubeadm token create --config {shlex.quote(config.path)}")
            changes.append(Change("make sure the bootstrap token for joining nodes is valid", refresh))
        return changes

    def after(self, run: Run) -> None:
        fetch_admin_conf(run)
