"""Where scheduled etcd snapshots go in S3 (`k8s.backup --schedule ... --to-s3 URL`), and how the
masters' job signs its requests.

The URL is path-style: the endpoint, the bucket, and an optional prefix
(`https://s3.example.com/etcd-backups/cluster-a`). Only https: a snapshot holds every Secret of
the cluster. The keys come from kubernetes-configuration.yaml (`etcd-backup-s3-access-key`,
`etcd-backup-s3-secret-key`, `etcd-backup-s3-region`, and `etcd-backup-s3-ca-file` for an endpoint
whose certificate a private CA signed). They reach a master in a curl configuration file of mode
0600, read with `curl --config`: never on a command line, so never in `ps`. curl signs each
request itself with AWS Signature Version 4 (`aws-sigv4`, curl 7.75 or newer; Debian 12 has 7.88).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from ..config.files import KubernetesSettings
from ..errors import UsageError

BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's rules for a bucket's name
PREFIX = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
HOST = re.compile(r"[A-Za-z0-9.-]+(:\d{1,5})?|\[[0-9a-fA-F:]+\](:\d{1,5})?")


@dataclass(frozen=True)
class S3Target:
    endpoint: str  # https://host[:port]
    bucket: str
    prefix: str  # "" or ending in "/"

    def __str__(self) -> str:
        return f"{self.endpoint}/{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def bucket_url(self) -> str:
        return f"{self.endpoint}/{self.bucket}"

    @property
    def list_query(self) -> str:
        """ListObjectsV2 of the prefix, encoded as SigV4's canonical query wants it."""
        return "list-type=2&prefix=" + quote(self.prefix, safe="")


def parse_s3_url(text: str, flag: str = "--to-s3") -> S3Target:
    """The operator's URL, or a UsageError naming every problem with it."""
    parts = urlsplit(text.strip())
    problems = []
    if parts.scheme != "https":
        problems.append("must be an https:// URL: a snapshot holds every Secret of the cluster (for a private CA, "
                        "set kubernetes.etcd-backup-s3-ca-file)")
    if not HOST.fullmatch(parts.netloc or ""):
        problems.append("names no host (https://host[:port]/bucket[/prefix])")
    if parts.query or parts.fragment or "@" in parts.netloc:
        problems.append("must have no user, query or fragment (the keys come from the configuration)")
    bucket, _, prefix = parts.path.strip("/").partition("/")
    if not BUCKET.fullmatch(bucket):
        problems.append(f"needs a bucket after the host: {bucket!r} is not a bucket name (3-63 of a-z, 0-9, '.', '-')")
    if prefix and not PREFIX.fullmatch(prefix):
        problems.append(f"prefix {prefix!r}: only letters, digits, '.', '_', '-' and '/' between them")
    if problems:
        raise UsageError(f"{flag} {text!r} " + "; ".join(problems))
    return S3Target(f"https://{parts.netloc}", bucket, f"{prefix}/" if prefix else "")


def credential_problems(k: KubernetesSettings) -> list[str]:
    """What kubernetes-configuration.yaml lacks for --to-s3."""
    problems = [f"kubernetes.{key} is not set (needed by --to-s3)"
                for key, value in (("etcd-backup-s3-access-key", k.etcd_backup_s3_access_key),
                                   ("etcd-backup-s3-secret-key", k.etcd_backup_s3_secret_key)) if not value]
    secret = k.etcd_backup_s3_secret_key.get_secret_value() if k.etcd_backup_s3_secret_key else ""
    if any(c in secret for c in "\r\n\0"):
        problems.append("kubernetes.etcd-backup-s3-secret-key holds a line break")  # never the value
    if k.etcd_backup_s3_ca_file and not Path(k.etcd_backup_s3_ca_file).expanduser().is_file():
        problems.append(f"kubernetes.etcd-backup-s3-ca-file {k.etcd_backup_s3_ca_file} is not a file on this machine")
    return problems


def curl_config(k: KubernetesSettings, ca_path: str | None) -> str:
    """The job's curl configuration: the keys, the signature, the CA, and patience."""
    assert k.etcd_backup_s3_access_key and k.etcd_backup_s3_secret_key, "credential_problems() first"
    user = f"{k.etcd_backup_s3_access_key}:{k.etcd_backup_s3_secret_key.get_secret_value()}"
    lines = [
        "# S3 for the scheduled etcd snapshots, rendered by openi-tasks (inv k8s.backup --to-s3). Mode 0600.",
        f"user = {_quoted(user)}",
        f"aws-sigv4 = {_quoted(f'aws:amz:{k.etcd_backup_s3_region}:s3')}",
        "fail-with-body",
        "silent",
        "show-error",
        "connect-timeout = 20",
        "max-time = 900",
        "retry = 3",
    ]
    if ca_path:
        lines.append(f"cacert = {_quoted(ca_path)}")
    return "\n".join(lines) + "\n"


def _quoted(value: str) -> str:
    """A value as curl's configuration file reads it between double quotes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
