"""The cluster's certificates, kept in its state directory and reused while still valid.

    <state>/pki/etcd/ca.{crt,key}                     etcd's CA (clients and peers)
    <state>/pki/etcd/members/<etcdid>/{server,peer}.*  each member's certificates
    <state>/pki/etcd/operator.{crt,key}               this machine's etcd client certificate
    <state>/pki/etcd/apiserver-etcd-client.{crt,key}  the API servers' etcd client certificate

A certificate is issued again only when it is missing, was signed by another CA, has expired
(or expires within `renew_within`: `k8s.certs --renew`), or no longer names the addresses it must
(a replacement machine with a new IP). In a dry run nothing is written: what would be issued is
made in memory only. The CAs are never renewed here.
"""

from __future__ import annotations

import datetime
import ipaddress
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..config import Cluster, EtcdMember
from ..pki import CertificateAuthority, Issued, key_pem, now
from ..state import StateDir, write_private


class ClusterPki:
    def __init__(self, cluster: Cluster, state: StateDir, persist: bool = True,
                 renew_within: datetime.timedelta = datetime.timedelta(0)) -> None:
        self.cluster = cluster
        self.root = state.pki
        self.persist = persist
        self.renew_within = renew_within

    @property
    def etcd_dir(self) -> Path:
        return self.root / "etcd"

    def _ca(self, directory: Path, common_name: str) -> CertificateAuthority:
        if self.persist or (directory / "ca.crt").is_file():
            return CertificateAuthority.load_or_create(directory, common_name)
        return CertificateAuthority.create(common_name)

    @cached_property
    def etcd_ca(self) -> CertificateAuthority:
        return self._ca(self.etcd_dir, f"{self.cluster.id} etcd CA")

    @cached_property
    def kubernetes_ca(self) -> CertificateAuthority:
        return self._ca(self.root / "kubernetes", f"{self.cluster.id} Kubernetes CA")

    @cached_property
    def front_proxy_ca(self) -> CertificateAuthority:
        return self._ca(self.root / "front-proxy", f"{self.cluster.id} front-proxy CA")

    @cached_property
    def service_account_key(self) -> tuple[bytes, bytes]:
        """(private, public) PEM of the key that signs service-account tokens."""
        private_path = self.root / "kubernetes" / "sa.key"
        if private_path.is_file():
            key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        else:
            key = ec.generate_private_key(ec.SECP256R1())
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        if self.persist and not private_path.is_file():
            write_private(private_path, private)
        return private, public

    def control_plane_files(self) -> dict[str, bytes]:
        """What every master needs in /etc/kubernetes/pki before kubeadm runs, by relative path."""
        sa_private, sa_public = self.service_account_key
        client = self.apiserver_etcd_client
        return {
            "ca.crt": self.kubernetes_ca.cert_pem,
            "ca.key": key_pem(self.kubernetes_ca.key),
            "front-proxy-ca.crt": self.front_proxy_ca.cert_pem,
            "front-proxy-ca.key": key_pem(self.front_proxy_ca.key),
            "sa.key": sa_private,
            "sa.pub": sa_public,
            "etcd/ca.crt": self.etcd_ca.cert_pem,
            "apiserver-etcd-client.crt": client.cert,
            "apiserver-etcd-client.key": client.key,
        }

    def member_files(self, member: EtcdMember) -> dict[str, bytes]:
        """The files a member's container reads from /etc/openi/etcd/pki, by name."""
        machine = member.machine
        directory = self.etcd_dir / "members" / member.name
        addresses = [machine.address, "127.0.0.1"]
        names = [machine.hostname, "localhost"]
        # Peers dial each other, and etcd's gateway dials its own server: both usages on both.
        server = self._issued(directory, "server", member.name, addresses, names)
        peer = self._issued(directory, "peer", member.name, [machine.address], [machine.hostname])
        return {
            "ca.crt": self.etcd_ca.cert_pem,
            "server.crt": server.cert,
            "server.key": server.key,
            "peer.crt": peer.cert,
            "peer.key": peer.key,
        }

    @property
    def has_operator_client(self) -> bool:
        """Whether this machine's etcd client certificate is there: etcd was deployed from this
        state directory."""
        return (self.etcd_dir / "operator.crt").is_file()

    @cached_property
    def operator_client(self) -> Issued:
        """This machine's client certificate for etcd (etcd3gw, etcdctl.env)."""
        return self._issued(self.etcd_dir, "operator", "openi-operator", [], [], server=False)

    @cached_property
    def apiserver_etcd_client(self) -> Issued:
        return self._issued(self.etcd_dir, "apiserver-etcd-client", "kube-apiserver-etcd-client", [], [], server=False)

    def client_paths(self) -> tuple[str, str, str]:
        """(CA, certificate, key) file paths of the operator's etcd client, written if needed."""
        self.operator_client  # noqa: B018 - issues (and writes) the certificate when missing
        return (
            str(self.etcd_dir / "ca.crt"),
            str(self.etcd_dir / "operator.crt"),
            str(self.etcd_dir / "operator.key"),
        )

    def _issued(
        self, directory: Path, name: str, common_name: str, addresses: list[str], names: list[str], server: bool = True
    ) -> Issued:
        cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
        if cert_path.is_file() and key_path.is_file():
            existing = Issued(cert_path.read_bytes(), key_path.read_bytes())
            if self._still_valid(existing, addresses, names):
                return existing
        issued = self.etcd_ca.issue(common_name, addresses=addresses, names=names, server=server, client=True,
                                    days=self.cluster.kubernetes.certificate_days)
        if self.persist:
            issued.write(directory, name)
        return issued

    def _still_valid(self, issued: Issued, addresses: list[str], names: list[str]) -> bool:
        cert = x509.load_pem_x509_certificate(issued.cert)
        if cert.issuer != self.etcd_ca.cert.subject or cert.not_valid_after_utc <= now() + self.renew_within:
            return False
        try:
            cert.verify_directly_issued_by(self.etcd_ca.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        if not addresses and not names:
            return True
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        have_ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
        have_names = set(san.get_values_for_type(x509.DNSName))
        return {str(ipaddress.ip_address(a)) for a in addresses} <= have_ips and set(names) <= have_names

