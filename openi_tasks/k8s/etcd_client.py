"""Talking to the cluster's etcd: its v3 API through the JSON gateway (etcd3gw), over TLS.

Every call authenticates with the operator's client certificate from the state directory.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable
from urllib.parse import urlparse

import requests
from cryptography import x509
from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import ConnectionFailedError, ConnectionTimeoutError, InternalServerError

from ..config import Cluster, EtcdMember
from ..errors import OpenIError
from ..retry import Patience, retried
from .pki import ClusterPki

# etcd refuses a membership change (503) while a member has been connected for less than a few
# seconds, so that the change cannot cost the quorum: that, like a dropped connection, is waited out.
MEMBERSHIP = Patience(deadline=45.0)


def transient(exc: BaseException) -> bool:
    """Whether an etcd call may succeed if asked again: no answer, a refusal for now, a timeout."""
    if isinstance(exc, (ConnectionFailedError, ConnectionTimeoutError, requests.ConnectionError, requests.Timeout,
                        requests.exceptions.ChunkedEncodingError)):
        return True
    if isinstance(exc, InternalServerError):
        text = str(exc.detail_text or "").lower()
        return any(word in text for word in ("timed out", "timeout", "leader", "unavailable", "too many requests"))
    return False


class EtcdUnhealthy(OpenIError):
    """etcd did not become healthy in time."""


@dataclass(frozen=True)
class MemberHealth:
    name: str
    url: str
    healthy: bool
    leader: bool = False
    version: str = ""
    raft_index: int = 0
    error: str = ""


def client(pki: ClusterPki, url: str, timeout: float = 5.0) -> Etcd3Client:
    ca, cert, key = pki.client_paths()
    session = requests.Session()
    # Not from the environment: REQUESTS_CA_BUNDLE would replace the cluster's CA, and a proxy
    # from HTTPS_PROXY must not see etcd traffic.
    session.trust_env = False
    session.verify = ca
    session.cert = (cert, key)
    parsed = urlparse(url)
    return Etcd3Client(host=parsed.hostname, port=parsed.port or 2379, protocol="https", timeout=timeout, session=session)


def member_health(cluster: Cluster, pki: ClusterPki, members: tuple[EtcdMember, ...] | None = None) -> list[MemberHealth]:
    """Ask every member for its status; a member that does not answer is unhealthy, with why."""
    rows = []
    for member in members if members is not None else cluster.etcd_members:
        try:
            status = client(pki, member.client_url).status()
            header = status["header"]
            rows.append(MemberHealth(
                member.name, member.client_url, True,
                leader=int(status["leader"]) == int(header["member_id"]),
                version=status.get("version", ""),
                raft_index=int(status.get("raftIndex", 0)),
            ))
        except Exception as exc:  # every way a member can fail to answer is a row, not a crash
            rows.append(MemberHealth(member.name, member.client_url, False, error=_reason(exc)))
    return rows


def wait_healthy(cluster: Cluster, pki: ClusterPki, timeout: float = 120.0,
                 members: tuple[EtcdMember, ...] | None = None) -> list[MemberHealth]:
    """Wait until every member (or those given) answers and one leads; raise with the table if not."""
    deadline = time.monotonic() + timeout
    while True:
        rows = member_health(cluster, pki, members)
        if all(r.healthy for r in rows) and sum(r.leader for r in rows) == 1:
            return rows
        if time.monotonic() > deadline:
            detail = "; ".join(f"{r.name}: {'ok' if r.healthy else r.error}" for r in rows)
            raise EtcdUnhealthy(f"etcd did not become healthy within {timeout:.0f}s ({detail})")
        time.sleep(1)


def healthy_url(cluster: Cluster, pki: ClusterPki, excluding: Iterable[str] = ()) -> str:
    """A healthy member's client URL (the leader when it answers), not among `excluding`."""
    skip = set(excluding)
    rows = [r for r in member_health(cluster, pki) if r.healthy and r.name not in skip]
    if not rows:
        raise OpenIError("no healthy etcd member answers")
    return sorted(rows, key=lambda r: not r.leader)[0].url


class StaleCertificate(OpenIError):
    """A member kept presenting another certificate than its files hold."""


def presented_certificate(pki: ClusterPki, url: str, timeout: float = 5.0) -> x509.Certificate:
    """The certificate a member presents on a new TLS connection to `url` (its client or peer URL;
    both take the operator's client certificate, which the etcd CA issued)."""
    ca, cert, key = pki.client_paths()
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    parsed = urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname=parsed.hostname) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def wait_presenting(pki: ClusterPki, wanted: dict[str, bytes], timeout: float = 30.0) -> None:
    """Wait until each URL in `wanted` presents the certificate (PEM) given for it on a new
    connection: etcd reads its certificate files again for every one, so new files need no restart."""
    deadline = time.monotonic() + timeout
    certificates = {url: x509.load_pem_x509_certificate(pem) for url, pem in wanted.items()}
    stale = {url: "not asked yet" for url in wanted}
    while True:
        for url in list(stale):
            try:
                presented = presented_certificate(pki, url)
            except (OSError, ssl.SSLError) as exc:  # e.g. a handshake between a new certificate and its key
                stale[url] = f"no TLS connection: {exc}"
                continue
            if presented == certificates[url]:
                del stale[url]
            else:
                stale[url] = f"presents the certificate with serial {presented.serial_number:x}, not the new one"
        if not stale:
            return
        if time.monotonic() > deadline:
            raise StaleCertificate(f"etcd after {timeout:.0f}s: " + "; ".join(f"{url} {why}" for url, why in stale.items()))
        time.sleep(0.5)


def _reason(exc: Exception) -> str:
    if isinstance(exc, (ConnectionFailedError, ConnectionTimeoutError)):
        return "does not answer"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
        return f"TLS error: {text[:160]}"
    if "Connection refused" in text or "Max retries" in text or "timed out" in text.lower():
        return "does not answer"
    return text[:200]


@dataclass(frozen=True)
class Member:
    """A member as the cluster lists it (a member added but not yet started has no name)."""

    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]


def _member(data: dict) -> Member:
    return Member(int(data["ID"]), data.get("name", ""), tuple(data.get("peerURLs", ())), tuple(data.get("clientURLs", ())))


def members(pki: ClusterPki, url: str) -> list[Member]:
    """The member list, as the member at `url` sees it."""
    return retried(f"listing etcd's members from the member at {url}", lambda: _members(pki, url), transient)


def _members(pki: ClusterPki, url: str) -> list[Member]:
    etcd = client(pki, url)
    return [_member(m) for m in etcd.post(etcd.get_url("/cluster/member/list"), json={}).get("members", [])]


def remove_member(pki: ClusterPki, url: str, member_id: int) -> None:
    """Remove a member; asked again after a lost answer, a member already gone is done."""
    asked = False

    def attempt() -> None:
        nonlocal asked
        if asked and all(m.id != member_id for m in _members(pki, url)):
            return
        asked = True
        etcd = client(pki, url)
        etcd.post(etcd.get_url("/cluster/member/remove"), json={"ID": str(member_id)})

    retried(f"removing etcd member {member_id:x} through the member at {url}", attempt, transient, MEMBERSHIP)


def lead_elsewhere(cluster: Cluster, pki: ClusterPki, name: str) -> str | None:
    """If member `name` leads, hand the leadership to another healthy member and wait until it
    leads: removing or stopping a leader costs the requests in flight an election ("leader
    changed", which the API servers answer with 500). The new leader's name, or None if `name`
    did not lead."""
    rows = member_health(cluster, pki)
    leader = next((r for r in rows if r.leader), None)
    if leader is None or leader.name != name:
        return None
    target = next((r for r in rows if r.healthy and r.name != name), None)
    if target is None:
        return None
    ids = {m.name: m.id for m in members(pki, leader.url)}
    etcd = client(pki, leader.url)
    retried(f"handing etcd's leadership from {name} to {target.name}",
            lambda: etcd.post(etcd.get_url("/maintenance/transfer-leadership"), json={"targetID": str(ids[target.name])}),
            transient, MEMBERSHIP)
    wait_healthy(cluster, pki, members=tuple(m for m in cluster.etcd_members if m.name != name))
    return target.name


def add_member(pki: ClusterPki, url: str, peer_url: str) -> list[Member]:
    """Add a member by its peer URL; the member list afterwards. Asked again after a lost answer,
    a member already listed with that peer URL is the one added."""
    asked = False

    def attempt() -> list[Member]:
        nonlocal asked
        if asked:
            current = _members(pki, url)
            if any(peer_url in m.peer_urls for m in current):
                return current
        asked = True
        etcd = client(pki, url)
        result = etcd.post(etcd.get_url("/cluster/member/add"), json={"peerURLs": [peer_url]})
        return [_member(m) for m in result.get("members", [])]

    return retried(f"adding etcd member {peer_url} through the member at {url}", attempt, transient, MEMBERSHIP)


def save_snapshot(pki: ClusterPki, url: str, target: Path) -> int:
    """Stream a snapshot of the member at `url` into `target` (0600); its size in bytes."""
    return retried(f"taking a snapshot from the etcd member at {url}", lambda: _save_snapshot(pki, url, target),
                   transient, Patience(deadline=120.0))


def _save_snapshot(pki: ClusterPki, url: str, target: Path) -> int:
    etcd = client(pki, url, timeout=300)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    size = 0
    with etcd.session.post(etcd.get_url("/maintenance/snapshot"), json={}, stream=True, timeout=300) as response:
        response.raise_for_status()
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            for line in response.iter_lines():
                if not line:
                    continue
                message = json.loads(line)
                if "error" in message:
                    raise OpenIError(f"snapshot from {url} failed: {message['error'].get('message', message['error'])}")
                blob = base64.b64decode(message["result"].get("blob", ""))
                out.write(blob)
                size += len(blob)
    if size == 0:
        partial.unlink(missing_ok=True)
        raise OpenIError(f"snapshot from {url} was empty")
    partial.rename(target)
    return size
