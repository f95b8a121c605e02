"""Transient failures of etcd and API calls are retried within a deadline; the final error is one
sentence naming the operation, its target and the cause. (A stalled etcd member on a real cluster
is in test_cluster.py; here the timing and the classification, with a fake clock.)"""

from __future__ import annotations

import threading

import pytest
import requests
from etcd3gw.exceptions import ConnectionFailedError, ConnectionTimeoutError, InternalServerError, PreconditionFailedError

from openi_tasks.k8s import etcd_client
from openi_tasks.k8s.etcd_client import Member, add_member, remove_member, transient
from openi_tasks.kube import transient as api_transient
from openi_tasks.retry import GaveUp, Patience, retried


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(times: int, exc: Exception, result="ok"):
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= times:
            raise exc
        return result

    return call, calls


def test_transient_failures_are_retried_with_growing_pauses():
    time = FakeTime()
    call, calls = failing(3, ConnectionTimeoutError("timed out"))
    assert retried("x", call, transient, sleep=time.sleep, clock=time.clock) == "ok"
    assert len(calls) == 4
    assert time.sleeps[0] < time.sleeps[1] < time.sleeps[2]  # backoff (jitter is at most 20%)


def test_other_errors_are_raised_at_once():
    time = FakeTime()
    call, calls = failing(1, PreconditionFailedError("no"))
    with pytest.raises(PreconditionFailedError):
        retried("x", call, transient, sleep=time.sleep, clock=time.clock)
    assert len(calls) == 1 and time.sleeps == []


@pytest.mark.parametrize("jitter", ["low", "high"])
def test_gives_up_at_the_deadline_with_one_sentence(jitter, monkeypatch):
    # The pause's jitter at either end. With the longest pauses, 27 s have passed when the next
    # pause (5 s, jittered to 6 s) would end past a 32 s deadline: it must not be taken.
    monkeypatch.setattr("openi_tasks.retry.random.uniform", lambda a, b: a if jitter == "low" else b)
    time = FakeTime()
    call, calls = failing(10**6, ConnectionTimeoutError("HTTPSConnectionPool(host='10.0.0.2', port=2379): Read timed out."))
    with pytest.raises(GaveUp) as info:
        retried("listing etcd's members from the member at https://10.0.0.2:2379", call, transient,
                Patience(deadline=32), sleep=time.sleep, clock=time.clock)
    message = str(info.value)
    assert message.startswith("listing etcd's members from the member at https://10.0.0.2:2379 failed ")
    assert "in 2" in message or "in 3" in message  # within the deadline, not past it
    assert message.endswith("last: ConnectionTimeoutError: HTTPSConnectionPool(host='10.0.0.2', port=2379): Read timed out.")
    assert "\n" not in message and time.now <= 32
    assert len(calls) >= 5


@pytest.mark.parametrize("exc, expected", [
    (ConnectionFailedError("refused"), True),
    (ConnectionTimeoutError("slow"), True),
    (requests.ConnectionError("reset"), True),
    (InternalServerError('{"error":"etcdserver: request timed out"}', "Internal Server Error"), True),
    (InternalServerError('{"error":"etcdserver: leader changed"}', "Internal Server Error"), True),
    (InternalServerError('{"error":"etcdserver: member not found"}', "Internal Server Error"), False),
    (PreconditionFailedError("x"), False),
    (ValueError("bad"), False),
])
def test_which_etcd_errors_are_transient(exc, expected):
    assert transient(exc) is expected


def api_exception(status, body=""):
    from kubernetes.client.exceptions import ApiException

    exc = ApiException(status=status, reason="x")
    exc.body = body
    return exc


@pytest.mark.parametrize("exc, expected", [
    (api_exception(503), True),
    (api_exception(429), True),
    (api_exception(500, '{"message":"etcdserver: request timed out"}'), True),
    (api_exception(500, '{"message":"something else"}'), False),
    (api_exception(404), False),
    (api_exception(422), False),
    (ConnectionResetError(), True),
])
def test_which_api_errors_are_transient(exc, expected):
    assert api_transient(exc) is expected


class FakeEtcd:
    """An etcd whose answer to the first membership change is lost after the change was made."""

    def __init__(self, members: list[Member]) -> None:
        self.members = list(members)
        self.posts: list[str] = []

    def post(self, url, json=None):
        self.posts.append(url.rsplit("/", 1)[1])
        if url.endswith("/member/list"):
            return {"members": [{"ID": str(m.id), "name": m.name, "peerURLs": list(m.peer_urls)} for m in self.members]}
        if url.endswith("/member/add"):
            self.members.append(Member(99, "", tuple(json["peerURLs"]), ()))
        if url.endswith("/member/remove"):
            self.members = [m for m in self.members if m.id != int(json["ID"])]
        if self.posts.count(self.posts[-1]) == 1:
            raise ConnectionTimeoutError("the answer was lost")
        return {"members": [{"ID": str(m.id), "peerURLs": list(m.peer_urls)} for m in self.members]}

    def get_url(self, path):
        return "https://etcd" + path


@pytest.fixture
def fake_etcd(monkeypatch):
    etcd = FakeEtcd([Member(1, "a", ("https://10.0.0.1:2380",), ()), Member(2, "b", ("https://10.0.0.2:2380",), ())])
    monkeypatch.setattr(etcd_client, "client", lambda pki, url, timeout=5.0: etcd)
    monkeypatch.setattr("openi_tasks.retry.time.sleep", lambda s: None)
    return etcd


def test_an_add_whose_answer_was_lost_is_not_made_twice(fake_etcd):
    after = add_member(None, "https://etcd", "https://10.0.0.3:2380")
    assert [m.peer_urls for m in after].count(("https://10.0.0.3:2380",)) == 1
    assert fake_etcd.posts == ["add", "list"]


def test_a_remove_whose_answer_was_lost_is_done(fake_etcd):
    remove_member(None, "https://etcd", 2)
    assert [m.id for m in fake_etcd.members] == [1]
    assert fake_etcd.posts == ["remove", "list"]


def test_waiting_for_nodes_reports_each_as_it_becomes_ready_and_names_the_stragglers(monkeypatch):
    """nodes-ready's wait: one list a poll, a failing list asked again, each node reported once as
    it is first seen Ready (the run log's times), and at the deadline every node that is not, with
    the kubelet's reason."""
    from openi_tasks.kube import KubeApi, NodeState

    def node(name: str, ready: bool) -> NodeState:
        return NodeState(name, ready, "v1.37.2", False, {}, not_ready_reason="" if ready else "network not ready")

    polls = iter([RuntimeError("API server restarting"), {"a": node("a", False)},
                  {"a": node("a", True), "b": node("b", False)}, {"a": node("a", True), "b": node("b", True)}])

    def nodes():
        answer = next(polls)
        if isinstance(answer, Exception):
            raise answer
        return answer

    api = object.__new__(KubeApi)
    api.nodes = nodes
    monkeypatch.setattr("openi_tasks.kube.time.sleep", lambda seconds: None)
    seen: list[str] = []
    api.wait_nodes_ready(["a", "b"], 300, on_ready=seen.append)
    assert seen == ["a", "b"]

    api.nodes = lambda: {"a": node("a", True), "b": node("b", False)}
    with pytest.raises(TimeoutError, match=r"^2 of 3 node\(s\) not Ready within 0s: b: network not ready; c: no Node$"):
        api.wait_nodes_ready(["a", "b", "c"], 0)


def test_the_api_is_discovered_through_a_moment_of_refusals(tmp_path, monkeypatch):
    """Right after `kubeadm init` the endpoint's first answers fail (its load balancer has not yet
    seen the API server healthy; behind it, an API server starting answers 503). A deploy applied
    the pod network then and failed on the client's discovery; it is asked again now. A real HTTP
    server: two 503s, then the discovery answers."""
    import http.server
    import json
    import tempfile

    from openi_tasks.kube import KubeApi

    answers = {"/version": {"major": "1", "minor": "37", "gitVersion": "v1.37.2"},
               "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}}
    refusals = [503, 503]
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            status = refusals.pop(0) if refusals else 200
            body = json.dumps(answers.get(self.path, {}) if status == 200 else {"kind": "Status", "code": status})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    shared = tmp_path / "tmp"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    try:
        KubeApi(kubeconfig)
    finally:
        server.shutdown()
    assert refusals == [] and asked[:3] == ["/version", "/version", "/version"] and "/apis" in asked
    # Its discovery cache is the cluster's own, beside the kubeconfig, not in the shared directory.
    assert list(shared.iterdir()) == [] and (tmp_path / ".kubeconfig.discovery.json").is_file()
