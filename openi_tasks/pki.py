"""Keys and certificates, made with `cryptography`: a CA, certificates it signs, SSH keys.

The etcd CA of a cluster and the testbed's registry CA are both `CertificateAuthority`s kept as
PEM files (keys 0600) in a state directory.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .state import write_private

_VALID_CA = datetime.timedelta(days=3650)
_VALID_LEAF = datetime.timedelta(days=825)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM."""

    cert: bytes
    key: bytes

    def write(self, directory: Path, name: str) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        (directory / f"{name}.crt").write_bytes(self.cert)
        write_private(directory / f"{name}.key", self.key)


class CertificateAuthority:
    """A CA whose certificate and key live as `ca.crt`/`ca.key` in a directory."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self.key = key

    @classmethod
    def load_or_create(cls, directory: Path, common_name: str) -> "CertificateAuthority":
        """The CA stored in `directory`, or a new one written there (key 0600)."""
        cert_path, key_path = directory / "ca.crt", directory / "ca.key"
        if cert_path.is_file() and key_path.is_file():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            return cls(cert, key)  # type: ignore[arg-type]
        ca = cls.create(common_name)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        cert_path.write_bytes(ca.cert_pem)
        write_private(key_path, key_pem(ca.key))
        return ca

    @classmethod
    def create(cls, common_name: str) -> "CertificateAuthority":
        """A new CA, in memory only."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now() - datetime.timedelta(minutes=5))
            .not_valid_after(now() + _VALID_CA)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        common_name: str,
        *,
        addresses: Iterable[str] = (),
        names: Iterable[str] = (),
        server: bool = True,
        client: bool = False,
        days: int | None = None,
    ) -> Issued:
        """A new key and a certificate for it, valid for the given IP addresses and DNS names, for
        `days` (default 825)."""
        key = ec.generate_private_key(ec.SECP256R1())
        alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now() - datetime.timedelta(minutes=5))
            .not_valid_after(now() + (datetime.timedelta(days=days) if days else _VALID_LEAF))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), key_pem(key))


@dataclass(frozen=True)
class SshKey:
    """An Ed25519 key pair in OpenSSH formats."""

    private: bytes
    public: str  # "ssh-ed25519 AAAA..."

    @classmethod
    def generate(cls, comment: str = "") -> "SshKey":
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        return cls(private, (public.decode() + (f" {comment}" if comment else "")).strip())

    @classmethod
    def load(cls, path: Path) -> "SshKey":
        private = path.read_bytes()
        key = serialization.load_ssh_private_key(private, password=None)
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        return cls(private, public.decode())
