"""Every k8s task on one real cluster: the testbed's nodes, Kubernetes from the bundle built from
its Go modules (real kubeadm, kubelet, API servers, etcd, CoreDNS, flannel), reached as an
operator reaches it: over SSH, and through the API endpoint with the admin kubeconfig that
openi-tasks wrote.

The tests run in order and share the cluster, because a deploy takes minutes: a dry run and a
node off the network on fresh nodes; the deploy and what it must have made; status, the no-change
re-run, the lock, kubectl; a master down; etcd repaired under API load; backup and restore;
repair, remove and add of a worker and of a master; then clean, an interrupted deploy, and the
deploy that completes it. The dashboard runs as a STAND-IN (its source is not served here).
"""

from __future__ import annotations

import base64
import re
import secrets
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
import urllib3
import yaml
from kubernetes import client as kclient

from openi_tasks.config import load_cluster
from openi_tasks.config.nodes import load_nodes
from openi_tasks.errors import ConfigError, OpenIError, RunFailed, UsageError
from openi_tasks.k8s.backup import backup, schedule_backups, verify
from openi_tasks.k8s.deploy import deploy
from openi_tasks.k8s.etcd_client import client, member_health, members
from openi_tasks.k8s.etcdfix import EtcdfixRefused, etcdfix
from openi_tasks.k8s.kubectl import install_kubectl
from openi_tasks.k8s.phases.backup_schedule import JOB_DIR, SNAPSHOTS, UNIT, UNIT_FILES
from openi_tasks.k8s.phases.lock import LOCK
from openi_tasks.k8s.pki import ClusterPki
from openi_tasks.k8s.restore import restore
from openi_tasks.k8s.runtime import OWN
from openi_tasks.k8s.schedule import parse_schedule
from openi_tasks.k8s.snapshot_drill import drill
from openi_tasks.k8s.status import show_status
from openi_tasks.state import StateDir

from .cluster import Kube, deployed, reporter, run_command, wait_for

pytestmark = pytest.mark.testbed

NODES = ["master1", "master2", "master3", "proxy", "worker1", "worker2"]
# etcd's data (under /var/lib/openi/etcd) changes on its own while the cluster runs: leases, events.
FINGERPRINT = (
    "docker ps -a --format '{{.ID}} {{.Names}} {{.State}}' 2>/dev/null | sort; "
    "find /etc/openi /etc/containerd /etc/sysctl.d /etc/modules-load.d /var/lib/openi /etc/kubernetes /opt/cni "
    "-path /var/lib/openi/etcd -prune -o -type f -print 2>/dev/null | sort | xargs -r sha256sum; sha256sum /etc/hosts; "
    "dpkg-query -W docker.io 2>/dev/null; systemctl is-active docker kubelet 2>/dev/null; true"
)
timings: dict[str, float] = {}


def fingerprints(testbed, names=NODES) -> dict[str, str]:
    """Each node's state as seen through `docker exec` (not through the code under test)."""
    return {name: testbed.node(name).exec(FINGERPRINT)[1] for name in names}


@pytest.fixture(scope="module")
def cluster(testbed):
    return load_cluster(testbed.config_dir)


@pytest.fixture(scope="module")
def pki(cluster):
    return ClusterPki(cluster, StateDir.of(cluster))


def kube(cluster) -> Kube:
    return Kube(StateDir.of(cluster).admin_conf)


def registry(cluster) -> str:
    return cluster.kubernetes.docker_registry


def healthy_members(cluster, pki) -> list[str]:
    return sorted(h.name for h in member_health(cluster, pki) if h.healthy)


def endpoint_sessions(testbed, since: float) -> str:
    """haproxy's log on the proxy node since `since` (epoch seconds), UTC-stamped: its reloads and
    each API connection that did not end normally (termination state other than --), with the
    master it went to."""
    return testbed.node("proxy").exec(f"docker logs --timestamps --since {int(since)} openi-haproxy 2>&1 | "
                                      f"grep -v ' -- ' | tail -80")[1]


class ApiWriter(threading.Thread):
    """Creates numbered ConfigMaps through the API endpoint, one after another, and remembers
    which creates the API server acknowledged and which failed (and why).

    It speaks HTTP/1.1 over one keep-alive connection (the Python client's way). An API server
    that stops closes such a connection, and a request sent as it closes gets no answer at all
    (HTTP/2 clients such as kubectl and the kubelet are told to go away instead). Such a create is
    sent again once, on a new connection: its name makes that safe (409 AlreadyExists means the
    first one was written). Each is remembered in `closed`; a create that fails again is `failed`."""

    def __init__(self, cluster, namespace: str = "default", prefix: str = "load"):
        super().__init__(daemon=True)
        self.core = kclient.CoreV1Api(kube(cluster).api_client)
        self.namespace, self.prefix = namespace, f"{prefix}-{secrets.token_hex(3)}"
        self.acknowledged: list[str] = []
        self.failed: list[tuple[float, str]] = []
        self.closed: list[tuple[float, str]] = []
        self.done = threading.Event()

    def run(self):
        n = 0
        while not self.done.is_set():
            name = f"{self.prefix}-{n:05d}"
            try:
                self._create(name, n)
            except urllib3.exceptions.ProtocolError as exc:  # the connection closed with no answer
                self.closed.append(self._event(exc))
                try:
                    self._create(name, n, again=True)
                except Exception as exc_again:  # counted and reported, never hidden
                    self.failed.append(self._event(exc_again))
            except Exception as exc:  # counted and reported, never hidden
                self.failed.append(self._event(exc))
            n += 1
            time.sleep(0.05)

    def _create(self, name: str, n: int, again: bool = False) -> None:
        body = kclient.V1ConfigMap(metadata=kclient.V1ObjectMeta(name=name), data={"n": str(n)})
        try:
            self.core.create_namespaced_config_map(self.namespace, body, _request_timeout=10)
        except kclient.ApiException as exc:
            if not (again and exc.status == 409):  # 409 when sent again: the first one was written
                raise
        self.acknowledged.append(name)

    @staticmethod
    def _event(exc: Exception) -> tuple[float, str]:
        body = str(getattr(exc, "body", "") or "")
        when = time.strftime("%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}"
        return time.monotonic(), f"at {when} UTC: " + (str(exc).splitlines()[0] + " " + body)[:400]

    def stop(self):
        self.done.set()
        self.join(30)

    def missing(self, cluster) -> list[str]:
        present = {c.metadata.name for c in self.core.list_namespaced_config_map(self.namespace).items}
        return [name for name in self.acknowledged if name not in present]


# --- before the deploy --------------------------------------------------------------------


def test_dry_run_changes_nothing_and_shows_every_command(testbed, cluster):
    before = fingerprints(testbed)
    report, out = reporter()
    deploy(cluster, report, dry_run=True)
    assert fingerprints(testbed) == before
    assert not StateDir.of(cluster).root.exists(), "a dry run writes no state either"
    text = out.getvalue()
    for expected in (
        "worker2: would install Docker from the OS package (docker.io)",
        "master1: would run container etcd-etcd1: docker run -d --name etcd-etcd1",
        "proxy: would run container openi-haproxy",
        f"master1: would upload {cluster.kubernetes.binaries_dir}/kubeadm to /usr/local/bin/kubeadm",
        "worker1: would install CNI plugin bridge into /opt/cni/bin",
        "master1: would initialise the control plane: kubeadm init --config /etc/openi/kubeadm/init.yaml",
        "master2: would join the control plane: kubeadm join --config /etc/openi/kubeadm/join.yaml",
        "worker1: would join the cluster: kubeadm join --config /etc/openi/kubeadm/join.yaml",
        "master1: would apply DaemonSet kube-flannel/kube-flannel-ds",
        "dry run: nothing was changed",
    ):
        assert expected in text, expected


def test_a_node_off_the_network_stops_the_run_before_anything_changes(testbed, cluster):
    node = testbed.node("worker1")
    before = fingerprints(testbed)
    node.disconnect()
    try:
        report, out = reporter()
        with pytest.raises(RunFailed, match="phase connect failed"):
            deploy(cluster, report)
    finally:
        node.connect()
    assert fingerprints(testbed) == before
    text = out.getvalue()
    assert "worker1" in text and "cannot connect" in text and "phase connect failed" in text


# --- nodes files and refusals, before anything is deployed ---------------------------------


def test_a_nodes_file_that_disagrees_with_the_configuration_names_the_field(cluster, tmp_path):
    path = nodes_file(tmp_path, entry(cluster, "master2", etcdid="etcd9"), entry(cluster, "worker1", hostip="10.9.9.9"))
    with pytest.raises(ConfigError) as info:
        load_nodes(path, cluster)
    text = str(info.value)
    assert re.search(r"nodes.yaml:\d+: machine-list\[0\].etcdid: is etcd9 here but etcd2 in the cluster configuration", text)
    assert "machine-list[1].hostip: is 10.9.9.9 here but" in text


def test_a_host_the_configuration_does_not_have(cluster, tmp_path):
    path = nodes_file(tmp_path, {"hostname": "stranger", "hostip": "172.30.99.1", "machine-type": "testbed",
                                 "k8s-role": "worker"})
    with pytest.raises(ConfigError, match="stranger is not in the cluster configuration"):
        load_nodes(path, cluster)


def test_a_password_that_differs_is_named_but_not_shown(cluster, tmp_path):
    path = nodes_file(tmp_path, entry(cluster, "worker1", username="openi", password="WRONG-secret-1"))
    with pytest.raises(ConfigError) as info:
        load_nodes(path, cluster)
    assert "machine-list[0].password: differs from the one in the cluster configuration" in str(info.value)
    assert "WRONG-secret-1" not in str(info.value)


def test_etcdfix_takes_exactly_one_node_and_repair_refuses_masters(cluster, tmp_path):
    from openi_tasks.k8s.maintenance import repair

    two = load_nodes(nodes_file(tmp_path, entry(cluster, "master1"), entry(cluster, "master2")), cluster)
    with pytest.raises(UsageError, match="exactly one member per run; the nodes file names 2"):
        etcdfix(cluster, reporter()[0], two)
    with pytest.raises(UsageError, match="repair is for workers and the proxy node; master1 run etcd"):
        repair(cluster, reporter()[0], two[:1])


def test_an_unreachable_host_stops_repair_before_any_change(testbed, cluster, tmp_path):
    from openi_tasks.k8s.maintenance import repair

    node = testbed.node("worker1")
    node.disconnect()
    try:
        report, out = reporter()
        with pytest.raises(RunFailed, match="phase connect failed"):
            repair(cluster, report, load_nodes(nodes_file(tmp_path, entry(cluster, "worker1")), cluster))
    finally:
        node.connect()
    row = next(line for line in out.getvalue().splitlines() if "worker1" in line and "failed" in line)
    assert "cannot connect" in row or "timed out" in row
    assert testbed.node("master1").exec(f"test -e {LOCK}")[0] != 0, "the lock was never taken"


def test_repair_dry_run_shows_every_step(cluster, tmp_path):
    from openi_tasks.k8s.maintenance import repair

    report, out = reporter()
    repair(cluster, report, load_nodes(nodes_file(tmp_path, entry(cluster, "worker1")), cluster), dry_run=True)
    text = out.getvalue()
    assert "worker1: would cordon Node worker1, evict its pods (all but DaemonSets' and static ones), delete the Node" \
        in text
    assert "worker1: would reset the node: rm -rf /etc/kubernetes /var/lib/kubelet" in text
    assert "worker1: would join the cluster: kubeadm join --config /etc/openi/kubeadm/join.yaml" in text
    # Only the named worker is changed; the masters only take the cluster lock (on a majority of them).
    touching = [line for line in text.splitlines() if line.strip().startswith("master2:")]
    assert touching == ["  master2: would take the cluster lock"], touching


# --- the deploy ---------------------------------------------------------------------------


def test_deploy_brings_up_a_working_cluster(testbed, cluster, pki):
    start = time.monotonic()
    deployed(cluster)
    timings["deploy"] = time.monotonic() - start
    version = cluster.kubernetes.kubernetes_version
    k = kube(cluster)
    admin = yaml.safe_load(StateDir.of(cluster).admin_conf.read_text())
    assert admin["clusters"][0]["cluster"]["server"] == f"https://{cluster.endpoint.address}:6443"  # the proxy
    assert StateDir.of(cluster).admin_conf.stat().st_mode & 0o077 == 0
    # Every node Ready at the configured version, the proxy node among them.
    nodes = k.wait_ready(NODES, version)
    assert testbed.node("worker2").exec("docker version --format '{{.Server.Version}}'")[0] == 0  # was bare
    # Every machine flag is a node label; the control plane is where kubeadm put it.
    for machine in cluster.machines:
        labels = nodes[machine.hostname]["labels"]
        for key, value in machine.labels.items():
            assert labels.get(key) == value, (machine.hostname, key)
    assert {n for n, v in nodes.items() if "node-role.kubernetes.io/control-plane" in v["labels"]} == \
        {"master1", "master2", "master3"}
    # Every kube-system pod runs: the control plane on each master, kube-proxy and flannel everywhere.
    pods = k.wait_running("kube-system")
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert sorted(p.spec.node_name for p in pods if p.metadata.name.startswith(component)) == \
            ["master1", "master2", "master3"], component
    assert sorted(p.spec.node_name for p in pods if p.metadata.name.startswith("kube-proxy")) == sorted(NODES)
    assert sorted(p.spec.node_name for p in k.wait_running("kube-flannel")) == sorted(NODES)
    # The workers and the proxy found kube-proxy's and flannel's images in place, pulled by the
    # images phase while the control plane came up.
    events = [e for namespace in ("kube-system", "kube-flannel") for e in k.core.list_namespaced_event(namespace).items
              if e.involved_object.name.startswith(("kube-proxy-", "kube-flannel-ds-"))
              and e.source.host in ("proxy", "worker1", "worker2")]
    assert not [(e.source.host, e.message) for e in events if e.reason == "Pulling"]
    assert {e.source.host for e in events if e.reason == "Pulled" and "already present on machine" in e.message} == \
        {"proxy", "worker1", "worker2"}
    # The dashboard (a STAND-IN) on the host flagged dashboard: "true", and nowhere else.
    dashboard = k.wait_running("kubernetes-dashboard")
    flagged = [m.hostname for m in cluster.machines if m.labels.get("dashboard") == "true"]
    assert {p.spec.node_name for p in dashboard} == set(flagged) and len(dashboard) == 2
    # etcd with TLS: what one member stores the others read; a client without a certificate is refused.
    assert healthy_members(cluster, pki) == ["etcd1", "etcd2", "etcd3"]
    client(pki, cluster.etcd_members[0].client_url).put("/openi-test/written", "via etcd1")
    for member in cluster.etcd_members[1:]:
        assert client(pki, member.client_url).get("/openi-test/written") == [b"via etcd1"]
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(f"{cluster.etcd_members[0].client_url}/v3/kv/range", json={"key": "Lw=="},
                      verify=str(pki.etcd_dir / "ca.crt"), timeout=5)
    keys = testbed.node("master1").exec("stat -c '%a %n' /etc/openi/etcd/pki/*.key /etc/kubernetes/pki/*.key")[1]
    assert keys and all(line.startswith("600 ") for line in keys.splitlines()), keys


def test_pods_resolve_names_and_reach_each_other_across_workers(cluster):
    k = kube(cluster)
    stand_in = f"{registry(cluster)}/dashboard-stand-in:{cluster.kubernetes.dashboard_version}"
    tools = cluster.etcd_image  # Debian with bash and getent: enough to probe from a pod
    try:
        server = k.run_pod("probe-server", stand_in, "worker1", env={"STAND_IN_HTTP_PORTS": "8080",
                                                                      "STAND_IN_HTTPS_PORTS": ""})
        k.run_pod("probe-client", tools, "worker2", command=["sleep", "3600"])
        resolved = k.exec("probe-client", ["getent", "hosts", "kubernetes.default.svc.cluster.local"])
        assert resolved.split()[:2] == ["10.96.0.1", "kubernetes.default.svc.cluster.local"]
        # Through flannel's VXLAN: a pod on worker2 talks to a pod on worker1.
        ip = server.status.pod_ip
        answer = k.exec("probe-client", ["bash", "-c", f"exec 3<>/dev/tcp/{ip}/8080; "
                                         "printf 'GET /across HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"])
        assert "STAND-IN for dashboard (not the real dashboard): GET /across" in answer
        # Names outside the cluster go upstream: kubernetes.cluster-dns (the testbed's DNS server).
        assert k.exec("probe-client", ["getent", "hosts", "master1"]).split()[0] == cluster.by_name["master1"].address
    finally:
        k.delete_pod("probe-server")
        k.delete_pod("probe-client")


def test_status_shows_nodes_members_and_backends(cluster):
    report, out = reporter()
    assert show_status(cluster, report) is True
    text = out.getvalue()
    assert re.search(r"master2\s.*Ready.*control-plane.*" + re.escape(cluster.kubernetes.kubernetes_version), text)
    assert re.search(r"worker1\s.*Ready", text) and "leader" in text
    for master in ("master1", "master2", "master3"):
        assert re.search(rf"{master}\s.*UP", text), f"haproxy's backend {master} is UP"
    assert "certificates: the first to expire is" in text, text


def test_certs_shows_every_certificate_with_the_expiry_on_the_host(testbed, cluster):
    from openi_tasks.k8s.certs import show_certificates

    report, out = reporter()
    assert show_certificates(cluster, report) is True
    rows = [line for line in out.getvalue().splitlines() if line.startswith("│")]

    def row(host: str, path: str) -> str:
        found = [r for r in rows if re.search(rf"│ {re.escape(host)}\s+│ {re.escape(path)}\s", r)]
        assert len(found) == 1, (host, path, out.getvalue())
        return found[0]

    def expiry_on(node: str, path: str) -> str:
        return not_after_on(testbed, node, path).strftime("%Y-%m-%d %H:%M")

    for master in ("master1", "master2", "master3"):
        for path in ("/etc/kubernetes/pki/apiserver.crt", "/etc/kubernetes/pki/front-proxy-client.crt",
                     "/etc/openi/etcd/pki/server.crt", "/etc/openi/etcd/pki/peer.crt", "/etc/kubernetes/pki/ca.crt"):
            assert expiry_on(master, path) in row(master, path)
        for conf in ("admin", "controller-manager", "scheduler"):
            row(master, f"/etc/kubernetes/{conf}.conf")
    for node in NODES:
        path = "/var/lib/kubelet/pki/kubelet-client-current.pem"
        assert expiry_on(node, path) in row(node, path)
    assert "kube-apiserver-etcd-client" in out.getvalue() and "(this machine)" in out.getvalue()
    assert "PRIVATE" not in out.getvalue()
    # kubeadm's certificates last a year: asked about the next 400 days, they are due.
    report, out = reporter()
    assert show_certificates(cluster, report, within=400) is False
    assert re.search(r"warning:.*master1: /etc/kubernetes/pki/apiserver.crt \(kube-apiserver\) expires on", out.getvalue())


def not_after_on(testbed, node: str, path: str):
    """A certificate's expiry, read through docker exec (a kubeconfig's embedded one too), not
    through the code under test."""
    import base64

    from cryptography import x509

    text = testbed.node(node).exec(f"cat {path}")[1]
    if path.endswith(".conf"):
        pem = base64.b64decode(re.search(r"client-certificate-data:\s*(\S+)", text).group(1))
    else:
        pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S).group(0).encode()
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc


def presented_not_after(testbed, node: str, port: int):
    """The expiry of the certificate that the etcd member on `node` presents on a new connection
    to `port`, asked with openssl on the node itself (with the member's own peer certificate)."""
    from cryptography import x509

    address = testbed.node(node).info.address
    pki = "/etc/openi/etcd/pki"
    code, text = testbed.node(node).exec(
        f"openssl s_client -connect {address}:{port} -CAfile {pki}/ca.crt -cert {pki}/peer.crt -key {pki}/peer.key "
        f"</dev/null 2>/dev/null | openssl x509")
    assert code == 0, text
    return x509.load_pem_x509_certificate(text.encode()).not_valid_after_utc


def etcd_container(testbed, node: str) -> str:
    """The etcd container's id and start time on `node`."""
    return testbed.node(node).exec("docker inspect --format '{{.Id}} {{.State.StartedAt}}' $(docker ps -q "
                                   "--filter label=openi.component=etcd)")[1].strip()


RENEWED_ON_MASTERS = ("/etc/kubernetes/pki/apiserver.crt", "/etc/kubernetes/pki/apiserver-kubelet-client.crt",
                      "/etc/kubernetes/pki/front-proxy-client.crt", "/etc/kubernetes/pki/apiserver-etcd-client.crt",
                      "/etc/kubernetes/admin.conf", "/etc/kubernetes/controller-manager.conf",
                      "/etc/kubernetes/scheduler.conf", "/etc/openi/etcd/pki/server.crt", "/etc/openi/etcd/pki/peer.crt")


def test_certificates_renewed_one_master_at_a_time_while_the_api_keeps_serving(testbed, cluster, pki):
    config = str(testbed.config_dir)
    masters = ("master1", "master2", "master3")
    before = {(m, p): not_after_on(testbed, m, p) for m in masters for p in RENEWED_ON_MASTERS}
    ca_before = {m: not_after_on(testbed, m, "/etc/kubernetes/pki/ca.crt") for m in masters}
    etcd_before = {m: etcd_container(testbed, m) for m in masters}
    dry = openi("k8s.certs", "-p", config, "--renew", "--all", "--dry-run")
    assert dry.returncode == 0 and "would renew with kubeadm: apiserver" in dry.stdout, dry.stdout + dry.stderr
    assert {(m, p): not_after_on(testbed, m, p) for m, p in before} == before, "a dry run renews nothing"
    time.sleep(2)  # kubeadm's new certificates must differ from the old ones in their expiry
    writer = ApiWriter(cluster, prefix="renew")
    writer.start()
    start, started = time.monotonic(), time.time()
    try:
        renewed = openi("k8s.certs", "-p", config, "--renew", "--all")
        timings["renew"] = time.monotonic() - start
        time.sleep(3)
    finally:
        writer.stop()
    print(f"\nk8s.certs --renew --all: {timings['renew']:.0f}s; {len(writer.acknowledged)} ConfigMaps created, "
          f"{len(writer.failed)} failed: {writer.failed[:3]}; {len(writer.closed)} sent again after their "
          f"connection closed with no answer: {writer.closed[:3]}")
    assert renewed.returncode == 0, renewed.stdout[-6000:] + renewed.stderr
    for (master, path), expiry in before.items():
        assert not_after_on(testbed, master, path) > expiry, f"{master}: {path} was not renewed"
    assert {m: not_after_on(testbed, m, "/etc/kubernetes/pki/ca.crt") for m in masters} == ca_before
    # etcd presents its new certificates without a restart: a restart would move the leadership,
    # and a write that a follower forwards meanwhile is dropped ("etcdserver: request timed out").
    for master in masters:
        for port, path in ((2379, "/etc/openi/etcd/pki/server.crt"), (2380, "/etc/openi/etcd/pki/peer.crt")):
            assert presented_not_after(testbed, master, port) == not_after_on(testbed, master, path) > before[master, path]
    assert {m: etcd_container(testbed, m) for m in masters} == etcd_before, "an etcd member was restarted"
    # No create fails. The writer's keep-alive connection goes to one master at a time, and a
    # stopping API server may close it under a request: at most once per master (3), each create
    # then sent again (seen: 0, 1 and 2 in a run, where the test failed before it sent them again).
    diagnosis = (writer.failed, writer.closed, renewed.stdout[-3000:], endpoint_sessions(testbed, started))
    assert not writer.failed and len(writer.closed) <= len(masters), diagnosis
    assert len(writer.acknowledged) > 50 and not writer.missing(cluster)
    assert healthy_members(cluster, pki) == ["etcd1", "etcd2", "etcd3"]
    # The operator's admin.conf carries the first master's renewed client certificate.
    ours = re.search(r"client-certificate-data:\s*(\S+)", StateDir.of(cluster).admin_conf.read_text()).group(1)
    assert ours in testbed.node("master1").exec("cat /etc/kubernetes/admin.conf")[1]
    kube(cluster).wait_ready(NODES, cluster.kubernetes.kubernetes_version)
    # Nothing is due now: a second renewal changes nothing and says so.
    again = openi("k8s.certs", "-p", config, "--renew")
    assert again.returncode == 0 and "no changes" in again.stdout, again.stdout[-4000:]


def test_a_second_deploy_changes_nothing_and_is_quick(cluster):
    start = time.monotonic()
    text = deployed(cluster)
    seconds = time.monotonic() - start
    assert "everything is already as configured: no changes" in text, text[-3000:]
    assert seconds < 0.2 * timings.get("deploy", 120), (seconds, timings)


def other_version(testbed, tmp_path: Path, version: str, etcd: str | None = None) -> str:
    """A copy of the testbed's configuration that says `version` (and `etcd`'s version when given;
    its bundle still the cluster's)."""
    config = tmp_path / "configuration"
    config.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-r", str(testbed.config_dir), str(config)], check=True)
    settings = config / "kubernetes-configuration.yaml"
    text = re.sub(r"kubernetes-version: \S+", f"kubernetes-version: {version}", settings.read_text())
    settings.write_text(text + (f"  etcd-version: {etcd}\n" if etcd else ""))
    return str(config)


def test_upgrade_at_the_target_changes_nothing_and_a_skipped_minor_is_refused_before_any_change(testbed, cluster,
                                                                                                 tmp_path):
    version = cluster.kubernetes.kubernetes_version
    same = openi("k8s.upgrade", "-p", str(testbed.config_dir), "--to", version)
    assert same.returncode == 0, same.stdout[-4000:] + same.stderr[-2000:]
    assert f"every node runs {version} already, and etcd its configured version: nothing to upgrade" in same.stdout
    assert "no changes" in same.stdout and snapshots_before(cluster, "upgrade") == []
    running = cluster.kubernetes.etcd_version.split("-")[0]  # what the members answer, in the plan's table
    assert len(re.findall(rf"etcd\d\s+│ {re.escape(running)}\s+│ none", same.stdout)) == 3, same.stdout[-4000:]
    # etcd two minor versions ahead, or one back: refused per member, before any change.
    major, minor, _ = (int(part) for part in running.split("."))
    before = fingerprints(testbed)
    for etcd, reason in ((f"{major}.{minor + 2}.0-0", "skips a minor version"), (f"{major}.{minor - 1}.9-0",
                                                                                "etcd's downgrade procedure")):
        refused = openi("k8s.upgrade", "-p", other_version(testbed, tmp_path / etcd, version, etcd), "--to", version)
        assert refused.returncode == 1 and "nothing was changed" in refused.stdout + refused.stderr, refused.stdout[-3000:]
        assert len(re.findall(rf"etcd member etcd\d runs etcd {re.escape(running)}; etcd-version asks for "
                              rf"{re.escape(etcd.split('-')[0])}: [^;]*{reason}", refused.stdout + refused.stderr)) >= 3
    assert fingerprints(testbed) == before
    # Two minor versions ahead, with the bundle of the running version: refused, every reason named.
    major, minor, _ = (int(part) for part in version.lstrip("v").split("."))
    skip = f"v{major}.{minor + 2}.0"
    before = fingerprints(testbed)
    refused = openi("k8s.upgrade", "-p", other_version(testbed, tmp_path, skip), "--to", skip)
    text = refused.stdout + refused.stderr
    assert refused.returncode == 1, text[-4000:]
    assert f"{skip} skips a minor version: the API servers run {version}, so the next upgrade is to " \
           f"v{major}.{minor + 1}.x" in text, text[-4000:]
    assert f"is for {version}, not {skip}: make the target's bundle" in text
    assert "Traceback" not in text
    assert fingerprints(testbed) == before
    # A deploy with a configuration that says another version leaves the change to k8s.upgrade.
    report, out = reporter()
    with pytest.raises(RunFailed, match="phase facts failed"):
        deploy(load_cluster(other_version(testbed, tmp_path / "deploy", skip)), report)
    assert f"a version change is an upgrade (inv k8s.upgrade --to {skip})" in out.getvalue(), out.getvalue()[-3000:]
    assert fingerprints(testbed) == before


def test_a_held_lock_stops_a_deploy_until_broken(testbed, cluster):
    testbed.node("master2").exec(f"mkdir -p {LOCK} && echo 'someone@elsewhere pid 1' > {LOCK}/owner")
    report, out = reporter()
    with pytest.raises(RunFailed, match="phase lock failed"):
        deploy(cluster, report)
    assert "locked by someone@elsewhere pid 1" in out.getvalue() and "--break-lock" in out.getvalue()
    deployed(cluster, break_lock=True)
    assert testbed.node("master2").exec(f"test -e {LOCK}")[0] != 0, "the broken lock is gone after the run"


def test_install_kubectl_installs_the_bundles_kubectl_and_merges_the_context(cluster, tmp_path):
    lines = install_kubectl(cluster, tmp_path / "bin", tmp_path / "kubeconfig")
    assert "installed kubectl " + cluster.kubernetes.kubernetes_version in lines[0]
    listed = subprocess.run([str(tmp_path / "bin" / "kubectl"), "--kubeconfig", str(tmp_path / "kubeconfig"),
                             "--context", cluster.id, "get", "nodes", "-o", "name"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split()) == sorted(f"node/{n}" for n in NODES)


# --- a master down ------------------------------------------------------------------------


def test_the_api_keeps_serving_through_the_endpoint_with_a_master_down(testbed, cluster):
    writer = ApiWriter(cluster, prefix="ha")
    writer.start()
    node = testbed.node("master2")
    try:
        time.sleep(3)
        stopped = time.monotonic()
        node.stop()
        time.sleep(20)
        reads = kube(cluster).core.list_namespaced_config_map("default", _request_timeout=10)
        assert reads.items
        during = len(writer.acknowledged)
    finally:
        node.start()
    kube(cluster).wait_ready(NODES, cluster.kubernetes.kubernetes_version)
    writer.stop()
    failed_after_stop = [f for f in writer.failed if f[0] >= stopped]
    print(f"\nHA: {len(writer.acknowledged)} ConfigMaps created through the endpoint, {len(writer.failed)} "
          f"failed ({len(failed_after_stop)} after master2 stopped): {writer.failed[:3]}; {len(writer.closed)} "
          f"sent again after their connection closed with no answer")
    assert during > 100, "writes went on while master2 was down"
    assert not writer.missing(cluster)
    assert len(writer.failed) <= 5, writer.failed


# --- etcd repaired, backed up and restored under a real API server -------------------------


def snapshots_before(cluster, label: str) -> list[Path]:
    """The automatic snapshots taken before `label`, each checked against its .sha256."""
    found = sorted(StateDir.of(cluster).snapshots.glob(f"etcd-{cluster.id}-*-before-{label}.db"))
    for snapshot in found:
        verify(snapshot)
        assert snapshot.stat().st_size > 10_000 and snapshot.stat().st_mode & 0o077 == 0
    return found


def nodes_file(tmp_path: Path, *entries: dict) -> Path:
    path = tmp_path / "nodes.yaml"
    path.write_text(yaml.safe_dump({"machine-list": list(entries)}, sort_keys=False))
    return path


def entry(cluster, hostname: str, **changes) -> dict:
    """The machine's whole entry, as the operator's nodes file gives it: its login and its flags too."""
    machine = cluster.by_name[hostname]
    data = {"hostname": hostname, "hostip": machine.address, "machine-type": machine.sku_name, "k8s-role": machine.role}
    if machine.etcdid:
        data["etcdid"] = machine.etcdid
    if machine.user != cluster.defaults.username:
        data["username"] = machine.user
    if machine.password is not None:
        data["password"] = machine.password.get_secret_value()
    data.update(machine.labels)
    data.update(changes)
    return data


def test_etcdfix_rebuilds_a_destroyed_member_while_the_api_keeps_creating_objects(testbed, cluster, pki, tmp_path):
    writer = ApiWriter(cluster, prefix="etcdfix")
    writer.start()
    try:
        time.sleep(3)
        testbed.node("master2").exec(
            "docker stop etcd-etcd2 >/dev/null; rm -rf /var/lib/openi/etcd/etcd2; docker start etcd-etcd2 >/dev/null")
        time.sleep(3)
        report, out = reporter()
        start = time.monotonic()
        etcdfix(cluster, report, load_nodes(nodes_file(tmp_path, entry(cluster, "master2")), cluster))
        timings["etcdfix"] = time.monotonic() - start
        time.sleep(2)
    finally:
        writer.stop()
    print(f"\netcdfix: {timings['etcdfix']:.1f}s; {len(writer.acknowledged)} ConfigMaps created through the API, "
          f"{len(writer.failed)} failed: {writer.failed[:3]}; {len(writer.closed)} sent again after their "
          f"connection closed with no answer")
    assert len(writer.acknowledged) > 50
    assert not writer.missing(cluster), "every acknowledged create is still there"
    assert len(writer.failed) <= 5, writer.failed
    assert healthy_members(cluster, pki) == ["etcd1", "etcd2", "etcd3"]
    text = out.getvalue()
    assert "etcd members before" in text and "etcd members after" in text and "etcd snapshot:" in text
    assert snapshots_before(cluster, "etcdfix-etcd2")


def test_etcdfix_leaves_a_healthy_member_alone_unless_forced(cluster, tmp_path):
    nodes = load_nodes(nodes_file(tmp_path, entry(cluster, "master3")), cluster)
    with pytest.raises(EtcdfixRefused, match="etcd3 is a healthy member: nothing to repair"):
        etcdfix(cluster, reporter()[0], nodes)


def test_etcdfix_refuses_without_quorum_and_changes_nothing(testbed, cluster, pki, tmp_path):
    before = sorted(m.id for m in members(pki, cluster.etcd_members[2].client_url))
    for name in ("master1", "master2"):
        testbed.node(name).exec(f"docker stop etcd-etcd{name[-1]}")
    try:
        nodes = load_nodes(nodes_file(tmp_path, entry(cluster, "master1")), cluster)
        with pytest.raises(EtcdfixRefused) as info:
            etcdfix(cluster, reporter()[0], nodes)
        # etcd3 may still answer its status for a moment, or already not (it lost its leader).
        assert re.search(r"only (1|0) of the 2 other members answer \((etcd3|none)\); repairing etcd1 needs 2 "
                         r"\(a quorum of 3 members\)\. Nothing was changed", str(info.value)), str(info.value)
        assert testbed.node("master1").exec("test -d /var/lib/openi/etcd/etcd1")[0] == 0, "data left alone"
    finally:
        for name in ("master1", "master2"):
            testbed.node(name).exec(f"docker start etcd-etcd{name[-1]}")
    wait_for("three healthy members", lambda: healthy_members(cluster, pki) == ["etcd1", "etcd2", "etcd3"], 60)
    assert sorted(m.id for m in members(pki, cluster.etcd_members[0].client_url)) == before


def test_etcdfix_removes_an_unreachable_member_and_brings_it_back_later(testbed, cluster, pki, tmp_path):
    node = testbed.node("master3")
    nodes = load_nodes(nodes_file(tmp_path, entry(cluster, "master3")), cluster)
    node.stop()
    try:
        report, out = reporter()
        with pytest.raises(OpenIError, match="etcd is healthy on 2 members without etcd3, but master3 could not be wiped"):
            etcdfix(cluster, report, nodes)
        names = sorted(m.name for m in members(pki, cluster.etcd_members[0].client_url))
        assert names == ["etcd1", "etcd2"]
        client(pki, cluster.etcd_members[1].client_url).put("/two-members/write", "ok")
        assert client(pki, cluster.etcd_members[0].client_url).get("/two-members/write") == [b"ok"]
    finally:
        node.start()
    etcdfix(cluster, reporter()[0], nodes)
    assert healthy_members(cluster, pki) == ["etcd1", "etcd2", "etcd3"]
    assert client(pki, cluster.etcd_members[2].client_url).get("/two-members/write") == [b"ok"]
    kube(cluster).wait_ready(NODES, cluster.kubernetes.kubernetes_version)


def test_backup_then_restore_brings_back_exactly_the_objects_of_the_snapshot(cluster, tmp_path):
    core = kube(cluster).core
    for name in ("kept-1", "kept-2"):
        core.create_namespaced_config_map("default", kclient.V1ConfigMap(metadata=kclient.V1ObjectMeta(name=name)))
    snapshot = backup(cluster, out=tmp_path)
    assert (tmp_path / snapshot.name).is_file() and Path(f"{snapshot}.sha256").is_file()
    assert snapshot.stat().st_mode & 0o077 == 0
    core.create_namespaced_config_map("default", kclient.V1ConfigMap(metadata=kclient.V1ObjectMeta(name="later")))
    core.delete_namespaced_config_map("kept-2", "default")
    report, out = reporter()
    before = snapshots_before(cluster, "restore")
    start = time.monotonic()
    restore(cluster, report, snapshot)
    timings["restore"] = time.monotonic() - start
    # etcd as it was before the restore ("later" in it) was kept first.
    assert len(set(snapshots_before(cluster, "restore")) - set(before)) == 1, out.getvalue()[-3000:]
    names = {c.metadata.name for c in kube(cluster).core.list_namespaced_config_map("default").items}
    assert {"kept-1", "kept-2"} <= names and "later" not in names
    kube(cluster).wait_ready(NODES, cluster.kubernetes.kubernetes_version)
    kube(cluster).wait_running("kube-system")


def test_restore_refuses_a_snapshot_that_does_not_match_its_checksum(cluster, tmp_path):
    snapshot = backup(cluster, out=tmp_path)
    Path(f"{snapshot}.sha256").write_text("0" * 64 + "  x\n")
    with pytest.raises(OpenIError, match="does not match its checksum"):
        restore(cluster, reporter()[0], snapshot)


def scheduled_on(testbed, node: str, directory: str = SNAPSHOTS) -> list[str]:
    """The scheduled snapshots in a master's directory, oldest first; each checked against its .sha256."""
    code, out = testbed.node(node).exec(f"cd {directory} 2>/dev/null && ls -1 | grep -E '^etcd-.*[.]db$' | sort")
    names = out.split()
    if names:
        code, check = testbed.node(node).exec(f"cd {directory} && " + " && ".join(f"sha256sum -c {n}.sha256" for n in names))
        assert code == 0, check
    return names


def test_scheduled_snapshots_fire_keep_the_newest_and_bring_back_what_was_before_them(testbed, cluster, tmp_path):
    core = kube(cluster).core
    before, after = (f"{when}-{secrets.token_hex(3)}" for when in ("before-schedule", "after-snapshot"))
    core.create_namespaced_config_map("default", kclient.V1ConfigMap(metadata=kclient.V1ObjectMeta(name=before)))
    to_dir = "/mnt/etcd-backups"
    outcomes = schedule_backups(cluster, reporter()[0], parse_schedule("10s"), keep=2, to_dir=to_dir)
    assert {h.status for o in outcomes if o.phase.name == "backup-schedule" for h in o.hosts} == {"changed"}
    seen: set[str] = set()

    def pruned() -> bool:
        names = scheduled_on(testbed, "master1")
        seen.update(names)
        return len(seen) >= 3 and names == sorted(seen)[-2:]  # the oldest went, the newest two stayed

    wait_for("three snapshots on master1, the newest two kept", pruned, timeout=120, interval=1)
    for master in ("master1", "master2", "master3"):
        kept = scheduled_on(testbed, master)
        member = next(m.name for m in cluster.etcd_members if m.machine.hostname == master)
        assert 1 <= len(kept) <= 2 and all(f"-{member}-" in n for n in kept), kept
        assert 1 <= len(scheduled_on(testbed, master, to_dir)) <= 2
    again = schedule_backups(cluster, reporter()[0], parse_schedule("10s"), keep=2, to_dir=to_dir)
    assert {h.status for o in again if o.phase.name == "backup-schedule" for h in o.hosts} == {"unchanged"}

    report, out = reporter()
    assert show_status(cluster, report) is True, out.getvalue()[-3000:]
    assert re.search(r"master1\s.*10s\s.*etcd-\S+\.db\s.*\sok", out.getvalue()), out.getvalue()[-3000:]
    testbed.node("master2").exec(f"systemctl stop {UNIT}.timer")
    report, out = reporter()
    assert show_status(cluster, report) is False
    assert re.search(r"master2\s.*the timer is inactive", out.getvalue()), out.getvalue()[-3000:]

    # The newest snapshot, taken after before-schedule existed, restores into a throwaway etcd and
    # into the cluster; what came after it is gone again.
    newest = scheduled_on(testbed, "master1")[-1]
    core.create_namespaced_config_map("default", kclient.V1ConfigMap(metadata=kclient.V1ObjectMeta(name=after)))
    schedule_backups(cluster, reporter()[0], None, 0, "")
    for master in ("master1", "master2", "master3"):
        code, out = testbed.node(master).exec(f"systemctl is-active {UNIT}.timer; ls {JOB_DIR} {' '.join(UNIT_FILES)}")
        assert "No such file" in out and out.split()[0] != "active", out
    code, data = testbed.node("master1").exec(f"base64 -w0 {SNAPSHOTS}/{newest}; echo; cat {SNAPSHOTS}/{newest}.sha256")
    assert code == 0
    encoded, checksum = data.split("\n", 1)
    snapshot = tmp_path / newest
    snapshot.write_bytes(base64.b64decode(encoded))
    Path(f"{snapshot}.sha256").write_text(checksum)
    drilled = drill(cluster, snapshot)
    assert f"/registry/configmaps/default/{before}" in drilled.keys
    assert f"/registry/configmaps/default/{after}" not in drilled.keys
    assert drilled.revision > 0 and drilled.resources["pods"] > 0
    restore(cluster, reporter()[0], snapshot)
    names = {c.metadata.name for c in kube(cluster).core.list_namespaced_config_map("default").items}
    assert before in names and after not in names
    kube(cluster).wait_ready(NODES, cluster.kubernetes.kubernetes_version)
    kube(cluster).wait_running("kube-system")


# --- repair, remove, add ------------------------------------------------------------------


def test_status_fails_on_a_dead_worker_and_repair_brings_it_back(testbed, cluster, tmp_path):
    from openi_tasks.k8s.maintenance import repair

    node = testbed.node("worker1")
    node.exec("systemctl stop kubelet; pkill -9 -f containerd-shim || true")
    wait_for("worker1 NotReady", lambda: not kube(cluster).nodes()["worker1"]["ready"], 120)
    report, out = reporter()
    assert show_status(cluster, report) is False
    assert re.search(r"worker1\s.*NotReady", out.getvalue())
    repair(cluster, reporter()[0], load_nodes(nodes_file(tmp_path, entry(cluster, "worker1")), cluster))
    k = kube(cluster)
    nodes = k.wait_ready(NODES, cluster.kubernetes.kubernetes_version)
    assert nodes["worker1"]["labels"].get("pai-worker") == "true", "the rejoined node has its flags again"
    try:  # and pods run there again, on the pod subnet it was given this time
        pod = k.run_pod("after-repair", cluster.etcd_image, "worker1", command=["sleep", "3600"])
        assert pod.status.pod_ip
    finally:
        k.delete_pod("after-repair")
    assert show_status(cluster, reporter()[0]) is True


def openi(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """The installed command's entry point, as an operator runs it."""
    import sys

    return run_command([sys.executable, "-m", "openi_tasks.main", *args], timeout)


def workload_on(cluster, name: str, node: str, replicas: int = 2) -> None:
    """A Deployment of pai-worker pods, all started on `node`: the other workers are cordoned while
    it starts, then uncordoned, so that its pods have somewhere to go when `node` is drained."""
    k = kube(cluster)
    others = [n for n, v in k.nodes().items() if v["labels"].get("pai-worker") == "true" and n != node]
    for other in others:
        k.core.patch_node(other, {"spec": {"unschedulable": True}})
    stand_in = f"{registry(cluster)}/dashboard-stand-in:{cluster.kubernetes.dashboard_version}"
    template = kclient.V1PodTemplateSpec(
        metadata=kclient.V1ObjectMeta(labels={"app": name}),
        spec=kclient.V1PodSpec(node_selector={"pai-worker": "true"}, termination_grace_period_seconds=1,
                               containers=[kclient.V1Container(name="main", image=stand_in, env=[
                                   kclient.V1EnvVar(name="STAND_IN_HTTP_PORTS", value="8080")])]))
    try:
        k.apps.create_namespaced_deployment("default", kclient.V1Deployment(
            metadata=kclient.V1ObjectMeta(name=name),
            spec=kclient.V1DeploymentSpec(replicas=replicas, selector=kclient.V1LabelSelector(
                match_labels={"app": name}), template=template)))
        wait_for(f"{replicas} replicas of {name} on {node}", lambda: placed(cluster, name) == [node] * replicas, 120)
    finally:
        for other in others:
            k.core.patch_node(other, {"spec": {"unschedulable": False}})


def placed(cluster, app: str) -> list[str]:
    pods = kube(cluster).core.list_namespaced_pod("default", label_selector=f"app={app}").items
    ready = [p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp
             and all(c.ready for c in p.status.container_statuses or [])]
    return sorted(p.spec.node_name for p in ready)


def test_remove_a_worker_running_pods_then_add_it_back(testbed, cluster, tmp_path):
    config = str(testbed.config_dir)
    workload_on(cluster, "spread", "worker1")
    nodes = nodes_file(tmp_path, entry(cluster, "worker1"))
    removed = openi("k8s.remove", "-p", config, "--nodes", str(nodes), "--yes", "--update-config")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "worker1" not in kube(cluster).nodes()
    assert wait_for("both replicas rescheduled onto worker2",
                    lambda: placed(cluster, "spread") == ["worker2", "worker2"], 120)
    assert "worker1" not in (testbed.config_dir / "cluster-configuration.yaml").read_text()
    # The cluster's own state stays: status, kubectl and the services still reach the API.
    assert StateDir.of(cluster).admin_conf.is_file() and StateDir.of(cluster).bootstrap_token.is_file()
    status = openi("k8s.status", "-p", config)
    assert status.returncode == 0, status.stdout + status.stderr
    services = openi("services.status", "-p", config)
    assert services.returncode == 0, services.stdout + services.stderr
    added = openi("k8s.add", "-p", config, "--nodes", str(nodes), "--update-config")
    assert added.returncode == 0, added.stdout + added.stderr
    grown = load_cluster(testbed.config_dir)
    assert "worker1" in grown.by_name
    kube(cluster).wait_ready(NODES, cluster.kubernetes.kubernetes_version)
    assert kube(cluster).nodes()["worker1"]["labels"].get("pai-worker") == "true"
    kube(cluster).apps.delete_namespaced_deployment("spread", "default")


def test_remove_a_master_then_add_it_back(testbed, cluster, pki, tmp_path):
    config = str(testbed.config_dir)
    nodes = nodes_file(tmp_path, entry(cluster, "master3"))
    # etcd3 leads when master3 is removed: its leadership must be handed over first.
    leader = next(r for r in member_health(cluster, pki) if r.leader)
    if leader.name != "etcd3":
        ids = {m.name: m.id for m in members(pki, leader.url)}
        etcd = client(pki, leader.url)
        etcd.post(etcd.get_url("/maintenance/transfer-leadership"), json={"targetID": str(ids["etcd3"])})
    wait_for("etcd3 leads", lambda: any(r.leader and r.name == "etcd3" for r in member_health(cluster, pki)), 60)
    writer = ApiWriter(cluster, prefix="remove-master")
    writer.start()
    try:
        removed = openi("k8s.remove", "-p", config, "--nodes", str(nodes), "--yes", "--update-config")
        assert removed.returncode == 0, removed.stdout + removed.stderr
        # Not through etcd3 itself, the leader when the run began: a member removed through itself
        # stops before its answer may get out (CI, 2026-12-07: 42 s of "connection refused").
        leave = re.search(r"master3: remove etcd member etcd3 \(\w+\) through (\S+),", removed.stdout)
        assert leave and leave.group(1) in {m.client_url for m in cluster.etcd_members if m.name != "etcd3"}, \
            removed.stdout
        assert snapshots_before(cluster, "remove") and "etcd snapshot:" in removed.stdout
        assert sorted(m.name for m in members(pki, cluster.etcd_members[0].client_url)) == ["etcd1", "etcd2"]
        assert "master3" not in kube(cluster).nodes()
        # The endpoint stopped sending requests to master3 before it was reset.
        assert "server master3 " not in testbed.node("proxy").exec("cat /etc/openi/haproxy/haproxy.cfg")[1]
        time.sleep(5)
    finally:
        writer.stop()
    print(f"\nremove master3: {len(writer.acknowledged)} ConfigMaps created, {len(writer.failed)} failed: "
          f"{writer.failed[:3]}; {len(writer.closed)} sent again after their connection closed with no answer")
    # At most one failure, and no acknowledged write lost. The writer is one keep-alive connection
    # that does not retry a POST: when haproxy had pinned it to master3, the request in flight as
    # master3's API server stops can fail (seen: a connection closed without response; a 500).
    assert len(writer.acknowledged) > 20 and len(writer.failed) <= 1, writer.failed
    assert not writer.missing(cluster)
    added = openi("k8s.add", "-p", config, "--nodes", str(nodes), "--update-config")
    assert added.returncode == 0, added.stdout + added.stderr
    assert sorted(m.name for m in members(pki, cluster.etcd_members[0].client_url)) == ["etcd1", "etcd2", "etcd3"]
    assert "server master3 " in testbed.node("proxy").exec("cat /etc/openi/haproxy/haproxy.cfg")[1]
    nodes_now = kube(cluster).wait_ready(NODES, cluster.kubernetes.kubernetes_version)
    assert "node-role.kubernetes.io/control-plane" in nodes_now["master3"]["labels"]
    assert healthy_members(cluster, pki) == ["etcd1", "etcd2", "etcd3"]


def test_remove_refuses_to_leave_no_master(cluster):
    from openi_tasks.k8s.maintenance import remove

    with pytest.raises(UsageError, match="without a master"):
        remove(cluster, reporter()[0], list(cluster.masters))


# --- scheduled snapshots in S3 -----------------------------------------------------------


def s3_keys(url: str, bucket: str, prefix: str, keys: tuple[str, str], ca: Path) -> list[str]:
    """The bucket's keys under `prefix`, as the S3 server lists them to a signed request of this test's own."""
    listing = subprocess.run(
        ["curl", "-sS", "--fail", "--cacert", str(ca), "--aws-sigv4", "aws:amz:us-east-1:s3", "-u", ":".join(keys),
         f"{url}/{bucket}?list-type=2&prefix={prefix.replace('/', '%2F')}"],
        capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    return sorted(key[len(prefix):] for key in re.findall(r"<Key>([^<]*)</Key>", listing.stdout))


def test_scheduled_snapshots_go_to_s3_signed_and_only_the_newest_stay_there(testbed, cluster, tmp_path):
    """--to-s3 against a real S3 server (SeaweedFS on the testbed's network, TLS from the testbed's
    CA, every request's signature checked): the keys come from the configuration and never show."""
    keys = (f"openi{secrets.token_hex(4)}", secrets.token_urlsafe(24))
    url, ca = testbed.start_s3(*keys, bucket="etcd-backups")
    settings = testbed.config_dir / "kubernetes-configuration.yaml"
    original = settings.read_text()
    config = str(testbed.config_dir)
    document = yaml.safe_load(original)
    document["kubernetes"].update({"etcd-backup-s3-access-key": keys[0], "etcd-backup-s3-secret-key": keys[1],
                                   "etcd-backup-s3-ca-file": str(ca)})
    settings.write_text(yaml.safe_dump(document, sort_keys=False))
    member = next(m.name for m in cluster.etcd_members if m.machine.hostname == "master1")
    try:
        scheduled = openi("k8s.backup", "-p", config, "--schedule", "10s", "--keep", "2",
                          "--to-s3", f"{url}/etcd-backups/cluster-a")
        assert scheduled.returncode == 0, scheduled.stdout + scheduled.stderr
        code, out = testbed.node("master1").exec(f"stat -c %a {JOB_DIR}/s3.curl; ps -eo args")
        assert out.split()[0] == "600" and keys[1] not in out
        seen: set[str] = set()

        def pruned() -> bool:
            names = [n for n in s3_keys(url, "etcd-backups", "cluster-a/", keys, ca) if f"-{member}-" in n]
            seen.update(n for n in names if n.endswith(".db"))
            kept = [n for n in names if n.endswith(".db")]
            return len(seen) >= 3 and kept == sorted(seen)[-2:] and len(names) == 2 * len(kept)

        wait_for(f"three of {member}'s snapshots uploaded, the newest two kept with their checksums", pruned,
                 timeout=150, interval=2)
        # Every master's job quiet first: between an upload and its pruning a member has one more.
        for master in ("master1", "master2", "master3"):
            testbed.node(master).exec(f"systemctl stop {UNIT}.timer; "
                                      f"while systemctl is-active --quiet {UNIT}.service; do sleep 0.5; done")
        everything = s3_keys(url, "etcd-backups", "cluster-a/", keys, ca)
        for other in (m.name for m in cluster.etcd_members):
            assert 1 <= len([n for n in everything if f"-{other}-" in n and n.endswith(".db")]) <= 2, everything
        # The newest uploaded snapshot is whole: it matches its checksum and restores.
        newest = sorted(seen)[-1]
        for name in (newest, f"{newest}.sha256"):
            got = subprocess.run(["curl", "-sS", "--fail", "--cacert", str(ca), "--aws-sigv4", "aws:amz:us-east-1:s3",
                                  "-u", ":".join(keys), "-o", str(tmp_path / name), f"{url}/etcd-backups/cluster-a/{name}"],
                                 capture_output=True, text=True, timeout=60)
            assert got.returncode == 0, got.stderr
        assert drill(cluster, tmp_path / newest).revision > 0
        logs = "".join(p.read_text(errors="replace") for p in (StateDir.of(cluster).root / "logs").glob("*.log"))
        assert keys[1] not in scheduled.stdout + scheduled.stderr + logs
    finally:
        off = openi("k8s.backup", "-p", config, "--schedule", "off")
        settings.write_text(original)
    assert off.returncode == 0, off.stdout + off.stderr
    assert testbed.node("master1").exec(f"ls {JOB_DIR}")[0] != 0


# --- clean, an interrupted deploy, and the deploy that completes it ------------------------


POD_NETWORK_STATE = ("ip -o link show | grep -E 'cni0|flannel' ; find /var/lib/cni -maxdepth 3 2>/dev/null | head -20; "
                     "stat -c '%n written %z' /etc/cni/net.d/* 2>/dev/null; "
                     "ps -eo pid,ppid,lstart,args | grep -E 'flannel|kube|pause|containerd-shim' | grep -v grep; "
                     f"{OWN.ctr} -n k8s.io tasks ls 2>&1 | head; systemctl is-active kubelet")
CONFLIST = "/etc/cni/net.d/10-flannel.conflist"


def test_clean_removes_everything_and_a_second_clean_changes_nothing(testbed, cluster):
    """The clean starts while the pod network starts on every node, as right after a deploy or a
    join: flannel's pods are replaced and their CNI configuration removed, so each new pod's init
    container writes it again while the clean runs. (A clean that read a host before the kubelet
    was stopped left what was written after: CI found master1's conflist in a second clean.)"""
    before = snapshots_before(cluster, "clean")
    kube(cluster).core.delete_collection_namespaced_pod("kube-flannel", label_selector="app=flannel",
                                                        grace_period_seconds=0)
    for name in NODES:
        testbed.node(name).exec(f"rm -f {CONFLIST}")
    cleaned = openi("k8s.clean", "-p", str(testbed.config_dir), "--yes")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    changes = [line.strip() for line in cleaned.stdout.splitlines() if line.startswith("  ")]
    assert len(changes) == len(set(changes)), "a change listed twice: " + cleaned.stdout
    # One new snapshot (compared by name: the state directory keeps the newest 10 automatic ones).
    taken = set(snapshots_before(cluster, "clean")) - set(before)
    assert len(taken) == 1, cleaned.stdout
    for name, state in fingerprints(testbed).items():
        lines = [line for line in state.splitlines() if not line.startswith(("active", "inactive"))]
        assert not any(word in state for word in ("etcd-", "openi-haproxy", "/etc/kubernetes/", "/etc/openi/")), \
            (name, state)
        assert "/var/lib/openi/etcd" not in state, lines
    assert not StateDir.of(cluster).admin_conf.exists()
    # What the pod network left on each host right after the clean, and what still runs there.
    leftovers = {name: testbed.node(name).exec(POD_NETWORK_STATE)[1] for name in NODES}
    again = openi("k8s.clean", "-p", str(testbed.config_dir), "--yes")
    if "no changes" not in again.stdout:  # shown in full under the failure's captured output
        print("the second clean:\n" + again.stdout + again.stderr)
        print("\n".join(f"after the first clean, {name}:\n{state}" for name, state in leftovers.items()))
    assert again.returncode == 0 and "no changes" in again.stdout, "the second clean changed something: see its output"
    # Nothing left to snapshot: it says so, and takes none.
    assert "no etcd member answers" in again.stdout and set(snapshots_before(cluster, "clean")) - set(before) == taken


def test_a_deploy_interrupted_in_control_plane_completes_when_run_again(testbed, cluster, ctrl_c):
    import _thread

    master1 = testbed.node("master1")

    seen: list[str] = []

    def interrupt_after_init():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if master1.exec("test -f /etc/kubernetes/admin.conf")[0] == 0:
                seen.append(f"admin.conf seen {time.monotonic() - start:.0f}s into the deploy")
                _thread.interrupt_main()  # Ctrl-C, as the operator presses it
                return
            time.sleep(0.5)

    report, out = reporter()
    start = time.monotonic()
    watcher = threading.Thread(target=interrupt_after_init, daemon=True)
    watcher.start()
    try:
        deploy(cluster, report)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError(f"the deploy was not interrupted ({seen}): {out.getvalue()[-4000:]}")
    stopped = time.monotonic()
    text = out.getvalue()
    assert "interrupted in phase control-plane" in text, text[-2000:]
    for name in ("master1", "master2", "master3"):
        assert testbed.node(name).exec(f"test -e {LOCK}")[0] != 0, f"the lock on {name} was not released"
    print(f"\ninterrupted {stopped - start:.0f}s into the deploy")
    deployed(cluster)
    kube(cluster).wait_ready(NODES, cluster.kubernetes.kubernetes_version)
    kube(cluster).wait_running("kube-system")
    assert show_status(cluster, reporter()[0]) is True
