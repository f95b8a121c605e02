"""k8s.certs: what is read from a host (certificates only, never keys) and how expiry is reported."""

from __future__ import annotations

import base64
import datetime
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from openi_tasks.k8s.certs import THIS_MACHINE, collect_command, local_certificates, parse_collected

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def certificate(name: str, days: int) -> tuple[bytes, bytes]:
    """A self-signed certificate expiring `days` from now, and its key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - datetime.timedelta(days=10))
            .not_valid_after(NOW + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def test_a_host_gives_only_certificates_never_keys(tmp_path):
    root = tmp_path / "host"
    (root / "etc/kubernetes/pki/etcd").mkdir(parents=True)
    (root / "var/lib/kubelet/pki").mkdir(parents=True)
    (root / "etc/openi/etcd/pki").mkdir(parents=True)
    apiserver, apiserver_key = certificate("kube-apiserver", 365)
    (root / "etc/kubernetes/pki/apiserver.crt").write_bytes(apiserver)
    (root / "etc/kubernetes/pki/apiserver.key").write_bytes(apiserver_key)
    (root / "etc/openi/etcd/pki/server.crt").write_bytes(certificate("etcd-1", 825)[0])
    kubelet, kubelet_key = certificate("system:node:worker1", 20)
    (root / "var/lib/kubelet/pki/kubelet-client-current.pem").write_bytes(kubelet + kubelet_key)  # as kubelet keeps it
    admin, admin_key = certificate("kubernetes-admin", 200)
    (root / "etc/kubernetes/admin.conf").write_text(
        "users:\n- name: kubernetes-admin\n  user:\n"
        f"    client-certificate-data: {base64.b64encode(admin).decode()}\n"
        f"    client-key-data: {base64.b64encode(admin_key).decode()}\n")
    (root / "etc/kubernetes/pki/broken.crt").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")

    output = subprocess.run(["sh", "-c", collect_command(str(root))], capture_output=True, text=True, check=True).stdout
    assert "PRIVATE KEY" not in output and "client-key-data" not in output
    found, unreadable = parse_collected("worker1", output)
    by_subject = {c.subject: c for c in found}
    assert set(by_subject) == {"kube-apiserver", "etcd-1", "system:node:worker1", "kubernetes-admin"}
    assert by_subject["kube-apiserver"].not_after == NOW + datetime.timedelta(days=365)
    assert by_subject["kube-apiserver"].path == f"{root}/etc/kubernetes/pki/apiserver.crt"
    assert by_subject["system:node:worker1"].not_after == NOW + datetime.timedelta(days=20)
    assert by_subject["kubernetes-admin"].path == f"{root}/etc/kubernetes/admin.conf"
    assert round(by_subject["etcd-1"].days_left(NOW)) == 825
    assert unreadable == [f"worker1: {root}/etc/kubernetes/pki/broken.crt"]


def test_the_state_directory_and_the_operators_admin_conf_are_read(tmp_path):
    pki = tmp_path / "pki"
    (pki / "etcd" / "members" / "etcd-1").mkdir(parents=True)
    (pki / "ca.crt").write_bytes(certificate("kubernetes", 3650)[0])
    (pki / "etcd" / "operator.crt").write_bytes(certificate("openi-operator", -2)[0])
    (pki / "etcd" / "members" / "etcd-1" / "server.crt").write_bytes(certificate("etcd-1", 825)[0])  # the hosts' copy
    admin = tmp_path / "admin.conf"
    admin.write_text(f"    client-certificate-data: {base64.b64encode(certificate('kubernetes-admin', 100)[0]).decode()}\n")
    found, unreadable = local_certificates(pki, admin)
    assert unreadable == []
    assert {c.subject for c in found} == {"kubernetes", "openi-operator", "kubernetes-admin"}
    assert all(c.host == THIS_MACHINE for c in found)
    expired = next(c for c in found if c.subject == "openi-operator")
    assert expired.days_left(NOW) < 0
