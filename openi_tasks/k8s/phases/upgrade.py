"""The phases of `inv k8s.upgrade` (k8s/upgrade.py puts them in order).

- upgrade-plan: every node's versions (kubelet, kubeadm, the control plane's static pods), the
  API's view of each Node, etcd's health and the bundle, as a table; the run stops there with
  every reason to refuse (versions.refusals), before anything changes.
- upgrade-preflight: on every master, the target's kubeadm, and the target's images pulled from
  the cluster's registry (etcd's too, when its version changes): a missing image stops the run
  while nothing that runs has changed.
- upgrade-etcd: members whose container differs from the configuration (another etcd image) are
  replaced one at a time: leadership handed to another member first, then the member replaced,
  then every member waited for until healthy. The plan refused a jump etcd
  cannot make (versions.etcd_refusals) before anything changed.
- upgrade-first-master, upgrade-masters: `kubeadm upgrade apply` on the first master, then
  `kubeadm upgrade node` on the others one at a time; then its kubelet, and its control plane
  restarted under the new kubelet (which may restart the static pods by itself, their hash
  changing with its defaults). All of it while the endpoint sends the master no new connections.
- upgrade-workers-N: the workers in batches (`--batch`); the run stops at the first batch that
  fails.
- A node whose kubelet runs its pods on another runtime than the configured one (Docker's
  containerd, on a cluster deployed before openi-tasks' own containerd 2) moves to it in the same
  drained step, in place (runtime_move): also when its versions are the target's already, so
  `k8s.upgrade --to <the version it runs>` moves a cluster's runtime node by node.

A node's kubelet upgrade: drain (cordon, marked with UPGRADING), kubelet and kubectl, containerd's
sandbox image from the new kubeadm, kubelet restarted, Ready at the new version, uncordon. A node
already at the target is left alone, except that a cordon an interrupted run left is lifted: so a
run stopped anywhere completes when run again.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ...bundle.manifest import MANIFEST, Manifest
from ...kube import NodeState
from ...operations import ensure_file
from ...phase import Change, Phase, apply_changes
from ...render import RenderedFile
from ...run import Run
from ...ssh import Host, describe_error
from ..etcd_client import lead_elsewhere, member_health, wait_healthy
from ..files import member_of
from ..kubeadm import CONFIG_DIR, LOCAL_CONFIG, local_config_file
from ..runtime import KUBELET_CONFIG, runtime_at, runtime_of
from ..static_pods import COMPONENTS, restart_command, terminate_command
from ..versions import NodeVersions, UpgradePlan, Version, etcd_version, refusals
from .base import OnFirstMaster
from .control_plane import adaptations, apiserver_ready
from .endpoint import out_of_endpoint, route_without
from .etcd import etcd_changes
from ..hostfacts import runtime_move_from
from .facts import facts_of
from .packages import ContainerRuntime, install_changes
from .snapshot import Snapshot

UPGRADING = "openi-tasks/upgrading"  # on a Node this run cordoned: the version it is being upgraded to


class UpgradeRefused(Exception):
    """The plan found reasons not to upgrade; nothing was changed."""


@dataclass
class Upgrade:
    """The target, and what the plan phase found, for the phases after it."""

    target: Version
    plan: UpgradePlan | None = None
    nodes: dict[str, NodeState] = field(default_factory=dict)

    @property
    def needed(self) -> bool:
        """Kubernetes or etcd is not at the configured version yet."""
        return self.plan is not None and not (self.plan.done and self.plan.etcd_done)

    def node(self, host: Host) -> NodeVersions:
        assert self.plan is not None, "the upgrade-plan phase runs first"
        return next(n for n in self.plan.nodes if n.name == host.name)


class PlanUpgrade(OnFirstMaster):
    name = "upgrade-plan"
    title = "Plan the upgrade: versions per node, and what would refuse it"

    def __init__(self, upgrade: Upgrade) -> None:
        self.upgrade = upgrade

    def plan(self, run: Run, host: Host) -> list[Change]:
        plan = self._gather(run)
        target = self.upgrade.target
        runtime = runtime_of(run.cluster)
        run.reporter.table(f"upgrade to {target}", ("node", "role", "kubelet", "kubeadm", "control plane", "ready", "action"), [
            (n.name, n.role, n.kubelet or "-", n.kubeadm or "-",
             " ".join(sorted({str(v) for v in n.control_plane.values() if v})) or "-",
             {True: "yes", False: "NO", None: "no Node"}[n.ready], _action(n, target, runtime.service))
            for n in plan.nodes])
        if plan.etcd:
            target_etcd = plan.etcd_target.number if plan.etcd_target else run.cluster.etcd_image
            run.reporter.table(f"etcd to {target_etcd}", ("member", "runs", "action"), [
                (member, version.number if version else "?",
                 "none" if plan.etcd_target in (None, version) else f"to {target_etcd}, one member at a time")
                for member, version in plan.etcd.items()])
        refused = refusals(plan)
        if refused:
            for reason in refused:
                run.reporter.warn(f"refused: {reason}")
            raise UpgradeRefused(f"the upgrade to {target} is refused, nothing was changed: " + "; ".join(refused))
        self.upgrade.plan = plan
        if plan.done and plan.etcd_done:
            run.reporter.info(f"every node runs {target} already, and etcd its configured version: nothing to upgrade")
        return []

    def _gather(self, run: Run) -> UpgradePlan:
        target = self.upgrade.target
        api = run.api()
        if api is None:
            raise UpgradeRefused(f"no admin kubeconfig ({run.state.admin_conf}): deploy the cluster first")
        self.upgrade.nodes = nodes = api.nodes()
        ca_file = run.pki.root / "kubernetes" / "ca.crt"
        rows = []
        for member in run.hosts():
            facts = facts_of(run, member)
            state = nodes.get(member.name.lower())
            installed = Version.of(facts.kubelet)
            running = Version.of(state.kubelet_version) if state else None
            # The older of the kubelet that runs and the one installed: a node is done when both are.
            kubelet = min((v for v in (installed, running) if v is not None), default=None)
            newest = max((v for v in (installed, running) if v is not None), default=None)
            control_plane = {c: Version.of(facts.control_plane[c].rsplit(":", 1)[-1])
                             for c in COMPONENTS if c in facts.control_plane}
            answers = None
            if member.machine.is_master:
                answers = _answers(member.machine.address, run.cluster.kubernetes.api_port, ca_file)
            node = NodeVersions(member.name, member.machine.role, kubelet, Version.of(facts.kubeadm), control_plane,
                                state.ready if state else None, answers, runtime_move_from(run.cluster, facts))
            if newest is not None and newest != kubelet and newest > target:
                node.kubelet = newest  # refused below as newer than the target
            rows.append(node)
        health = member_health(run.cluster, run.pki)
        unhealthy = [f"{h.name} is unhealthy: {h.error}" for h in health if not h.healthy]
        return UpgradePlan(target, rows, unhealthy, _bundle_problem(run, target),
                           etcd={h.name: etcd_version(h.version) for h in health},
                           etcd_target=etcd_version(run.cluster.etcd_image.rsplit("/", 1)[-1].partition(":")[2]))


def _action(node: NodeVersions, target: Version, service: str) -> str:
    actions = ([] if node.versions_at(target) else [f"to {target}"]) + \
        ([f"its pods from {node.runtime_from} to {service}"] if node.runtime_from else [])
    return ", ".join(actions) or "none"


def _answers(address: str, port: int, ca_file) -> bool:
    from ...kube import wait_apiserver_ready

    try:
        wait_apiserver_ready(address, port, ca_file, timeout=10)
        return True
    except TimeoutError:
        return False


def _bundle_problem(run: Run, target: Version) -> str:
    """Why the bundle in binaries-dir cannot upgrade to `target` ("" when it can, or when the
    packages come from a repository)."""
    k = run.cluster.kubernetes
    if k.package_source != "binaries":
        return ""
    try:
        run.binaries  # every binary there, and as the bundle's manifest lists it
        directory = Path(k.binaries_dir or "").expanduser()
        version = Manifest.read(directory).kubernetes_version if (directory / MANIFEST).is_file() else None
    except Exception as exc:
        return f"the bundle in kubernetes.binaries-dir cannot be used: {describe_error(exc)}"
    if version is not None and version != str(target):
        return (f"the bundle in kubernetes.binaries-dir ({k.binaries_dir}) is for {version}, not {target}: make the "
                f"target's bundle (inv k8s.bundle) and point binaries-dir at it")
    return ""


class UpgradeSnapshot(Snapshot):
    """The snapshot before an upgrade, taken only when there is something to upgrade."""

    def __init__(self, upgrade: Upgrade) -> None:
        super().__init__("upgrade", required=True)
        self.upgrade = upgrade

    def should_run(self, run: Run) -> bool:
        return self.upgrade.needed


class UpgradeEtcd(Phase):
    name = "upgrade-etcd"
    title = "etcd members as configured (another image replaces them), one member at a time"
    parallel = False

    def hosts(self, run: Run) -> list[Host]:
        return run.hosts("master")

    def plan(self, run: Run, host: Host) -> list[Change]:
        changes = etcd_changes(run, host)
        if not changes:
            return []
        name = member_of(run.cluster, host.machine).name
        return [Change(f"hand etcd's leadership to another member if {name} leads",
                       lambda: lead_elsewhere(run.cluster, run.pki, name)),
                *changes,
                Change("wait until every etcd member is healthy again", lambda: wait_healthy(run.cluster, run.pki))]


class UpgradePreflight(Phase):
    name = "upgrade-preflight"
    title = "The target's kubeadm on the masters, and its images pulled from the cluster's registry"

    def __init__(self, upgrade: Upgrade) -> None:
        self.upgrade = upgrade

    def should_run(self, run: Run) -> bool:
        return self.upgrade.needed

    def hosts(self, run: Run) -> list[Host]:
        return run.hosts("master")

    def plan(self, run: Run, host: Host) -> list[Change]:
        assert self.upgrade.plan is not None, "the upgrade-plan phase runs first"
        etcd = []
        if not self.upgrade.plan.etcd_done:
            image = shlex.quote(run.cluster.etcd_image)
            etcd = [Change(f"pull etcd's image {run.cluster.etcd_image}", f"docker pull -q {image} >/dev/null")]
        node = self.upgrade.node(host)
        if all(v == self.upgrade.target for v in node.control_plane.values()):
            return etcd
        config = RenderedFile(LOCAL_CONFIG, local_config_file(run.cluster, host.machine), 0o600)
        pull = f"kubeadm config images pull --config {shlex.quote(LOCAL_CONFIG)}"
        # kubeadm pulls into the configured runtime, which a master whose pods move to it starts now.
        runtime = [start_runtime(run, host)] if node.runtime_from else []
        return [*etcd, *install_changes(run, host, ("kubeadm",)), *ensure_file(host, config), *runtime,
                Change(f"pull the images of Kubernetes {self.upgrade.target} from "
                       f"{run.cluster.kubernetes.docker_registry}: {pull}", pull)]


class UpgradeNodes(Phase):
    """Upgrade `names` (hosts of the configuration): masters one at a time, workers together."""

    def __init__(self, upgrade: Upgrade, name: str, title: str, names: list[str], parallel: bool) -> None:
        self.upgrade = upgrade
        self.name, self.title, self.names, self.parallel = name, title, names, parallel

    def should_run(self, run: Run) -> bool:
        return self.upgrade.plan is not None  # also when done: a cordon an interrupted run left is lifted

    def hosts(self, run: Run) -> list[Host]:
        return [h for h in run.hosts() if h.name in self.names]

    def plan(self, run: Run, host: Host) -> list[Change]:
        target = self.upgrade.target
        node = self.upgrade.node(host)
        api = run.api()
        name = host.name.lower()
        if node.at(target):
            state = self.upgrade.nodes.get(name)
            if state is not None and state.cordoned and UPGRADING in state.annotations:
                return [Change(f"uncordon Node {name} (cordoned by an interrupted upgrade)",
                               lambda: api.uncordon(name, (UPGRADING,)))]
            return []
        steps = runtime_move(run, host, node.runtime_from) if node.runtime_from else []
        kubeadm = []
        if not node.versions_at(target):
            kubeadm = install_changes(run, host, ("kubeadm",))
            steps += self._version_changes(run, host, node)
        if host.machine.is_master:  # while the endpoint sends this master no new connections
            steps = out_of_endpoint(run, host, steps)
        return [
            Change(f"drain Node {name} (cordon, evict its pods)",
                   lambda: api.drain(name, annotations={UPGRADING: str(target)})),
            *kubeadm,
            *steps,
            Change(f"wait until Node {name} is Ready with kubelet {target}", lambda: api.wait_node(name, str(target))),
            Change(f"uncordon Node {name}", lambda: api.uncordon(name, (UPGRADING,))),
        ]

    def _version_changes(self, run: Run, host: Host, node: NodeVersions) -> list[Change]:
        """kubeadm's upgrade of the node, then its kubelet (and a master's control plane restarted)."""
        target = self.upgrade.target
        ignore = " --ignore-preflight-errors=SystemVerification" if adaptations(run, host).cgroup_v1 else ""
        if any(v != target for v in node.control_plane.values()):
            command = (f"kubeadm upgrade apply {target} --yes{ignore}" if host.machine is run.cluster.masters[0]
                       else f"kubeadm upgrade node{ignore}")
            upgrade = [Change(f"upgrade the control plane: {command}", command)]
        else:  # a worker's kubelet configuration; a master whose control plane is done already needs nothing
            command = f"kubeadm upgrade node{ignore}"
            upgrade = [] if host.machine.is_master else [Change(f"upgrade the kubelet's configuration: {command}",
                                                                command)]
        kubelet = [
            *install_changes(run, host, ("kubelet", "kubectl")),
            # At run time: the sandbox image is the one the host's new kubeadm asks for.
            Change("set containerd's sandbox image to the one the new kubeadm asks for (containerd restarted if it "
                   "changes)", lambda: apply_changes(host, ContainerRuntime().plan(run, host))),
            Change("restart kubelet", "systemctl daemon-reload && systemctl restart kubelet"),
        ]
        if host.machine.is_master:
            # The new kubelet may start the static pods again (their hash changes with its defaults):
            # they are restarted now, while the endpoint sends this master nothing, not later.
            kubelet += [Change(f"restart {', '.join(COMPONENTS)} under the new kubelet and wait until each runs "
                               f"again", restart_command(COMPONENTS)), apiserver_ready(run, host)]
        return upgrade + kubelet

    def cleanup(self, run: Run) -> None:
        route_without(run, frozenset())


# The pod network of the pods killed on the old runtime, which no CNI DEL released: their network
# namespaces (with their veths on cni0) and their host-local IP reservations. The node is drained
# and kubelet stopped, so no pod on the node holds an address then.
KILLED_PODS_NETWORK = ("{ for ns in $(ip netns list 2>/dev/null | awk '/^cni-/ {print $1}'); do ip netns delete \"$ns\"; "
                       "done; rm -f /var/lib/cni/networks/*/[0-9]*; }")


def start_runtime(run: Run, host: Host) -> Change:
    """The configured runtime installed, configured and started (beside the one kubelet uses)."""
    return Change(f"install and start {runtime_of(run.cluster).service}",
                  lambda: apply_changes(host, ContainerRuntime().plan(run, host)))


def runtime_move(run: Run, host: Host, socket: str) -> list[Change]:
    """kubelet moved, in place, from the runtime at `socket` to the configured one: that runtime
    installed and started; kubelet stopped; what still runs on the old one's Kubernetes namespace
    (the static pods, the DaemonSets' pods: the node is drained) killed, and their pod network
    released; kubelet's endpoint changed and kubelet started, which starts them again on the new
    runtime, pulling their images from the cluster's registry. Docker, its containers (etcd,
    haproxy) and its containerd are not touched. A master's API server is waited for until ready."""
    old, new = runtime_at(socket, run.cluster), runtime_of(run.cluster)
    # A master's control plane stops gracefully first: killed, its API server would drop the
    # requests it holds (the endpoint sends it no new ones, but keeps the connections it had).
    graceful = f" && {terminate_command()}" if host.machine.is_master else ""
    # kubeadm's configuration files on the node name the runtime too (criSocket): they say the new one.
    cri_socket = shlex.quote(f"s|criSocket: {old.socket}$|criSocket: {new.socket}|")
    command = (f"systemctl stop kubelet{graceful} && {old.kill_pods} && {KILLED_PODS_NETWORK} && sed -i "
               f"{shlex.quote(f's|^containerRuntimeEndpoint:.*|containerRuntimeEndpoint: {new.socket}|')} "
               f"{KUBELET_CONFIG} && {{ [ ! -d {CONFIG_DIR} ] || find {CONFIG_DIR} -maxdepth 1 -name '*.yaml' -type f "
               f"-exec sed -i {cri_socket} {{}} +; }} && systemctl start kubelet")
    changes = [start_runtime(run, host),
               Change(f"move kubelet's pods from {old.socket} to {new.socket}: {command}", command)]
    if host.machine.is_master:
        changes.append(apiserver_ready(run, host))
    return changes


def worker_batches(upgrade: Upgrade, workers: list[str], batch: int) -> list[UpgradeNodes]:
    """One phase per batch of `batch` workers, in the configuration's order."""
    groups = [workers[i:i + batch] for i in range(0, len(workers), batch)]
    return [UpgradeNodes(upgrade, f"upgrade-workers-{n}", f"Upgrade workers {', '.join(group)} "
                         f"(batch {n} of {len(groups)})", group, parallel=True)
            for n, group in enumerate(groups, 1)]
