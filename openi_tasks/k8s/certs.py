"""`inv k8s.certs`: every certificate the cluster depends on, with its expiry.

Read from the hosts (kubeadm's under /etc/kubernetes/pki, the client certificates inside the
control plane's kubeconfigs, the kubelets' client and serving certificates, the etcd members'
under /etc/openi/etcd/pki) and from this machine's state directory (the CAs and client
certificates openi-tasks issued, the operator's admin.conf). Only certificate blocks and
`client-certificate-data` lines leave a host: private keys, even those kept in the same file as
their certificate (the kubelet's), are never read.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..config import Cluster
from ..pki import now as utc_now
from ..report import Reporter
from ..run import open_run
from ..ssh import describe_error
from .files import ETCD_PKI
from .kubeadm import PKI

WARN_WITHIN_DAYS = 30  # k8s.status warns about certificates that expire this soon
THIS_MACHINE = "(this machine)"

CERTIFICATE_FILES = (f"{PKI}/*.crt", f"{PKI}/etcd/*.crt", f"{ETCD_PKI}/*.crt",
                     "/var/lib/kubelet/pki/kubelet-client-current.pem", "/var/lib/kubelet/pki/kubelet.crt")
KUBECONFIGS = tuple(f"/etc/kubernetes/{name}.conf" for name in ("admin", "super-admin", "controller-manager", "scheduler"))
MARK = "==> "


def collect_command(root: str = "") -> str:
    """Prints each file's name, then only its certificate blocks (or, for a kubeconfig, only the
    line holding its client certificate): the keys stay on the host. `root` prefixes every path."""
    files = " ".join(shlex.quote(root) + pattern for pattern in CERTIFICATE_FILES) if root else " ".join(CERTIFICATE_FILES)
    kubeconfigs = " ".join(shlex.quote(root + path) for path in KUBECONFIGS)
    return (f"for f in {files}; do [ -f \"$f\" ] || continue; echo \"{MARK}$f\"; "
            "sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' \"$f\"; done; "
            f"for f in {kubeconfigs}; do [ -f \"$f\" ] || continue; echo \"{MARK}$f\"; "
            "grep -E '^[[:space:]]*client-certificate-data:' \"$f\"; done; true")


COLLECT = collect_command()
_DATA = re.compile(r"client-certificate-data:\s*(\S+)")


@dataclass(frozen=True)
class CertificateInfo:
    host: str
    path: str
    subject: str
    not_after: datetime.datetime  # UTC

    def days_left(self, now: datetime.datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400


def _subject(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def _info(host: str, path: str, cert: x509.Certificate) -> CertificateInfo:
    return CertificateInfo(host, path, _subject(cert), cert.not_valid_after_utc)


def parse_collected(host: str, output: str) -> tuple[list[CertificateInfo], list[str]]:
    """The certificates in COLLECT's output (the first of each file: the leaf), and the files
    that held none that could be read."""
    found, unreadable = [], []
    sections: list[tuple[str, list[str]]] = []
    for line in output.splitlines():
        if line.startswith(MARK):
            sections.append((line[len(MARK):], []))
        elif sections:
            sections[-1][1].append(line)
    for path, lines in sections:
        text = "\n".join(lines)
        try:
            if path.endswith(".conf"):
                match = _DATA.search(text)
                if match is None:
                    continue  # a kubeconfig that refers to a certificate file (kubelet.conf does)
                pem = base64.b64decode(match.group(1), validate=True)
            else:
                pem = text.encode()
            found.append(_info(host, path, x509.load_pem_x509_certificates(pem)[0]))
        except (ValueError, binascii.Error):
            unreadable.append(f"{host}: {path}")
    return found, unreadable


def local_certificates(state_pki: Path, admin_conf: Path) -> tuple[list[CertificateInfo], list[str]]:
    """The certificates openi-tasks keeps in the state directory, and the operator's admin.conf."""
    output = []
    for path in sorted(state_pki.glob("*.crt")) + sorted(state_pki.glob("*/*.crt")):
        output += [f"{MARK}{path}", path.read_text(errors="replace")]
    if admin_conf.is_file():
        output += [f"{MARK}{admin_conf}", *(line for line in admin_conf.read_text(errors="replace").splitlines()
                                             if "client-certificate-data:" in line)]
    return parse_collected(THIS_MACHINE, "\n".join(output))


def collect(cluster: Cluster, reporter: Reporter) -> tuple[list[CertificateInfo], list[str]]:
    """Every certificate on every host and here, soonest expiry first; and what could not be read
    (an unreachable host, a damaged file)."""
    with open_run(cluster, reporter, "certs", record=False) as run:
        hosts = run.inventory.hosts()
        done = run.inventory.map(hosts, lambda host: host.sh(COLLECT, check=True).stdout)
        found, problems = local_certificates(run.state.pki, run.state.admin_conf)
    for host in hosts:
        result = done[host]
        if isinstance(result, Exception):
            problems.append(f"{host.name}: {describe_error(result)}")
            continue
        certificates, unreadable = parse_collected(host.name, result)
        found += certificates
        problems += unreadable
    return sorted(found, key=lambda c: (c.not_after, c.host, c.path)), problems


def show_certificates(cluster: Cluster, reporter: Reporter, within: float = WARN_WITHIN_DAYS) -> bool:
    """The table; False when a certificate expires within `within` days or one could not be read."""
    certificates, problems = collect(cluster, reporter)
    now = utc_now()
    reporter.table("certificates, soonest expiry first", ("host", "certificate", "subject", "expires (UTC)", "days left"),
                   [(c.host, c.path, c.subject, c.not_after.strftime("%Y-%m-%d %H:%M"), f"{c.days_left(now):.0f}")
                    for c in certificates])
    for problem in problems:
        reporter.warn(f"could not read {problem}")
    due = [c for c in certificates if c.days_left(now) < within]
    for cert in due:
        verb = "expired" if cert.days_left(now) < 0 else "expires"
        reporter.warn(f"{cert.host}: {cert.path} ({cert.subject}) {verb} on {cert.not_after:%Y-%m-%d}")
    if not due and certificates:
        reporter.info(f"{len(certificates)} certificates; none expires within {within:g} days "
                      f"(the first on {certificates[0].not_after:%Y-%m-%d})")
    return not due and not problems
