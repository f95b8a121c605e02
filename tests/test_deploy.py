"""k8s.deploy, status and clean on a real testbed: the phases that can run on these machines.

The tests run in order on one testbed: a dry run on fresh nodes, an unreachable node, the
deploy, its no-change re-run, the lock, and clean followed by a second deploy.
"""

from __future__ import annotations

import io
import re
import time

import pytest
import requests
from rich.console import Console

from openi_tasks.config import load_cluster
from openi_tasks.errors import RunFailed
from openi_tasks.k8s.clean import clean
from openi_tasks.k8s.deploy import deploy
from openi_tasks.k8s.etcd_client import client, member_health
from openi_tasks.k8s.phases.lock import LOCK
from openi_tasks.k8s.pki import ClusterPki
from openi_tasks.k8s.status import show_status
from openi_tasks.report import Reporter
from openi_tasks.state import StateDir

pytestmark = pytest.mark.testbed

PHASES = ["connect", "facts", "lock", "prepare", "docker", "etcd", "endpoint", "unlock"]
NODES = ["master1", "master2", "master3", "proxy", "worker1", "worker2"]
FINGERPRINT = (
    "docker ps -a --format '{{.ID}} {{.Names}} {{.State}}' 2>/dev/null | sort; "
    "find /etc/openi /etc/containerd /etc/sysctl.d /etc/modules-load.d /var/lib/openi /etc/kubernetes "
    "-type f 2>/dev/null | sort | xargs -r sha256sum; sha256sum /etc/hosts; "
    "dpkg-query -W docker.io 2>/dev/null; systemctl is-active docker 2>/dev/null; true"
)
timings: dict[str, float] = {}


def reporter() -> tuple[Reporter, io.StringIO]:
    buffer = io.StringIO()
    return Reporter(Console(file=buffer, width=400, highlight=False)), buffer


def fingerprints(testbed, names=NODES) -> dict[str, str]:
    """Each node's state as seen through `docker exec` (not through the code under test)."""
    return {name: testbed.node(name).exec(FINGERPRINT)[1] for name in names}


@pytest.fixture(scope="module")
def cluster(testbed):
    return load_cluster(testbed.config_dir)


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
        "master1: would create /etc/openi/etcd/pki/server.key (mode 600)",
        "(secret: content not shown)",
        "master1: would initialise the control plane: kubeadm init --config /etc/openi/kubeadm/init.yaml",
        "master2: would join the control plane: kubeadm join --config /etc/openi/kubeadm/join.yaml",
        "worker1: would join the cluster: kubeadm join --config /etc/openi/kubeadm/join.yaml",
        "would install kubeadm, kubelet and kubectl v1.36.0 from https://pkgs.k8s.io/core:/stable:/v1.36/deb",
        "master1: would apply DaemonSet kube-flannel/kube-flannel-ds",
        "dry run: nothing was changed",
    ):
        assert expected in text, expected
    assert "BEGIN EC PRIVATE KEY" not in text and "BEGIN PRIVATE KEY" not in text


def test_a_node_off_the_network_stops_the_run_before_anything_changes(testbed, cluster):
    node = testbed.node("worker1")
    others = [n for n in NODES if n != "worker1"]
    before = fingerprints(testbed, others)
    node.disconnect()
    try:
        report, out = reporter()
        with pytest.raises(RunFailed, match="phase connect failed"):
            deploy(cluster, report, only=PHASES)
    finally:
        node.connect()
    row = next(line for line in out.getvalue().splitlines() if "worker1" in line and "failed" in line)
    assert "cannot connect" in row or "timed out" in row
    assert fingerprints(testbed, others) == before


def test_deploy_installs_docker_and_brings_up_tls_etcd_and_the_endpoint(testbed, cluster):
    assert testbed.node("worker2").exec("command -v docker")[0] != 0
    start = time.monotonic()
    report, out = reporter()
    outcomes = deploy(cluster, report, only=PHASES)
    timings["first"] = time.monotonic() - start
    assert [o.phase.name for o in outcomes] == PHASES and not any(o.failed for o in outcomes)

    # Docker was installed on the bare node, from the testbed's own mirror, and runs.
    code, output = testbed.node("worker2").exec("systemctl is-active docker && docker info --format '{{.ServerVersion}}'")
    assert code == 0 and output.startswith("active")

    # Three members, one leader; a key written through one member is read through the others.
    pki = ClusterPki(cluster, StateDir.of(cluster))
    health = member_health(cluster, pki)
    assert [m.healthy for m in health] == [True, True, True] and sum(m.leader for m in health) == 1
    members = cluster.etcd_members
    client(pki, members[0].client_url).put("/openi-test/written-through-1", "hello")
    for member in members[1:]:
        assert client(pki, member.client_url).get("/openi-test/written-through-1") == [b"hello"]

    # A client without a certificate is refused; one with the CA and a certificate gets in.
    ca, cert, key = pki.client_paths()
    session = requests.Session()
    session.trust_env = False
    with pytest.raises(requests.exceptions.RequestException):
        session.get(f"{members[0].client_url}/health", verify=ca, timeout=5)
    assert session.get(f"{members[0].client_url}/health", verify=ca, cert=(cert, key), timeout=5).json()["health"] == "true"

    # Keys are private on every master.
    for name in ("master1", "master2", "master3"):
        modes = testbed.node(name).exec("stat -c '%a %n' /etc/openi/etcd/pki/*.key")[1].split("\n")
        assert all(line.startswith("600 ") for line in modes if line), modes

    # haproxy's configuration passes `haproxy -c` with the image that runs it.
    proxy = testbed.node("proxy")
    image = cluster.kubernetes.haproxy_image
    code, output = proxy.exec(f"docker run --rm -v /etc/openi/haproxy:/usr/local/etc/haproxy:ro {image} "
                              "haproxy -c -f /usr/local/etc/haproxy/haproxy.cfg")
    assert code == 0, output


def test_status_shows_members_leader_and_backends(testbed, cluster):
    report, out = reporter()
    healthy = show_status(cluster, report)
    text = out.getvalue()
    assert not healthy, "no API server answers behind the endpoint: the cluster is not healthy"
    members = [line for line in text.splitlines() if "https://" in line and ":2379" in line]
    assert len(members) == 3 and sum("leader" in line for line in members) == 1
    assert all(" yes " in line for line in members)
    for name in ("master1", "master2", "master3"):
        assert re.search(rf"{name}\s+.\s+DOWN", text), name
    assert "etcd-etcd1: Up" in text and "openi-haproxy: Up" in text
    assert "Kubernetes nodes: no admin kubeconfig" in text


FAKE_API_SERVER = r"""
# A FAKE Kubernetes API server: real Kubernetes binaries cannot run on these machines. It answers
# /readyz over TLS on the API port, which is all haproxy's health check asks of a master.
import http.server, ssl
class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("0.0.0.0", 6443), Ready)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/etc/openi/etcd/pki/server.crt", "/etc/openi/etcd/pki/server.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


def _backends(testbed) -> dict[str, str]:
    code, output = testbed.node("proxy").exec("curl -fsS 'http://127.0.0.1:8404/stats;csv'")
    assert code == 0, output
    rows = [line.split(",") for line in output.splitlines() if line.startswith("kube-apiserver,")]
    return {row[1]: row[17] for row in rows if row[1] not in ("FRONTEND", "BACKEND")}


def _wait_backends(testbed, wanted: dict[str, str], timeout: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while (seen := _backends(testbed)) != wanted and time.monotonic() < deadline:
        time.sleep(1)
    return seen


def test_the_endpoint_balances_the_masters_and_marks_a_closed_port_down(testbed):
    assert _backends(testbed) == {"master1": "DOWN", "master2": "DOWN", "master3": "DOWN"}
    master1 = testbed.node("master1")
    master1.exec(f"cat > /tmp/fake-apiserver.py <<'EOF'\n{FAKE_API_SERVER}\nEOF\n"
                 "nohup python3 /tmp/fake-apiserver.py >/dev/null 2>&1 &")
    try:
        assert _wait_backends(testbed, {"master1": "UP", "master2": "DOWN", "master3": "DOWN"}) == \
            {"master1": "UP", "master2": "DOWN", "master3": "DOWN"}
        # Through the endpoint, the API port reaches the one master that answers.
        code, output = testbed.node("worker1").exec(f"curl -sk https://{testbed.node('proxy').info.address}:6443/readyz")
        assert output == "ok", output
    finally:
        master1.exec("pkill -f fake-apiserver.py")
    assert _wait_backends(testbed, {"master1": "DOWN", "master2": "DOWN", "master3": "DOWN"}) == \
        {"master1": "DOWN", "master2": "DOWN", "master3": "DOWN"}


def test_a_second_deploy_changes_nothing_and_is_quick(testbed, cluster):
    before = fingerprints(testbed)
    start = time.monotonic()
    report, out = reporter()
    outcomes = deploy(cluster, report, only=PHASES)
    timings["again"] = time.monotonic() - start
    assert all(o.count("changed") == 0 for o in outcomes if not o.phase.bookkeeping), out.getvalue()
    assert "no changes" in out.getvalue()
    assert fingerprints(testbed) == before
    assert timings["again"] <= 0.3 * timings["first"], timings


def test_a_held_lock_stops_a_deploy_until_broken(testbed, cluster):
    testbed.node("master1").exec(f"mkdir -p {LOCK} && echo 'someone@elsewhere pid 1' > {LOCK}/owner")
    report, out = reporter()
    with pytest.raises(RunFailed, match="phase lock failed"):
        deploy(cluster, report, only=["connect", "lock", "unlock"])
    assert "the cluster is locked by someone@elsewhere pid 1" in out.getvalue()
    assert testbed.node("master1").exec(f"cat {LOCK}/owner")[1].strip() == "someone@elsewhere pid 1"
    report, out = reporter()
    deploy(cluster, report, only=["connect", "lock", "unlock"], break_lock=True)
    assert "master1: break the lock held by someone@elsewhere pid 1 and take it" in out.getvalue()
    assert testbed.node("master1").exec(f"test -e {LOCK}")[0] != 0, "the lock is released at the end"


def test_clean_removes_what_deploy_made_and_a_deploy_after_it_works(testbed, cluster):
    report, _ = reporter()
    clean(cluster, report)
    for name in NODES:
        code, output = testbed.node(name).exec(
            "docker ps -aq --filter label=openi.managed=true; ls /etc/openi /var/lib/openi/etcd /etc/containerd/config.toml 2>/dev/null"
        )
        assert output.strip() == "", (name, output)
    assert testbed.node("worker2").exec("command -v docker")[0] == 0, "Docker itself stays"
    report, out = reporter()
    clean(cluster, report)
    assert "no changes" in out.getvalue()

    report, _ = reporter()
    deploy(cluster, report, only=PHASES)
    pki = ClusterPki(cluster, StateDir.of(cluster))
    assert all(m.healthy for m in member_health(cluster, pki))
    # A fresh cluster: what was written before the clean is gone.
    assert client(pki, cluster.etcd_members[0].client_url).get("/openi-test/written-through-1") == []
