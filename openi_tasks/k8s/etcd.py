"""Talking to the cluster's etcd: its v3 API through the JSON gateway (etcd3gw), over TLS.

Every call authenticates with the operator's client certificate from the state directory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlparse

import requests
from etcd3gw.client import Etcd3Client

from ..config import Cluster, EtcdMember
from ..errors import OpenIError
from .pki import ClusterPki


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


def wait_healthy(cluster: Cluster, pki: ClusterPki, timeout: float = 120.0) -> list[MemberHealth]:
    """Wait until every member answers and one of them leads; raise with the table if not."""
    deadline = time.monotonic() + timeout
    while True:
        rows = member_health(cluster, pki)
        if all(r.healthy for r in rows) and sum(r.leader for r in rows) == 1:
            return rows
        if time.monotonic() > deadline:
            detail = "; ".join(f"{r.name}: {'ok' if r.healthy else r.error}" for r in rows)
            raise EtcdUnhealthy(f"etcd did not become healthy within {timeout:.0f}s ({detail})")
        time.sleep(1)


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
        return f"TLS error: {text[:160]}"
    if "Connection refused" in text or "Max retries" in text or "timed out" in text.lower():
        return "does not answer"
    return text[:200]
