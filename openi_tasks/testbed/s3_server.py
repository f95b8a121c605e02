"""A real S3 server on a testbed's network: SeaweedFS (Apache-2.0), built from its Go module, its
all-in-one `weed mini` (master, volume server, filer and S3 gateway) in one container.

It serves https with a certificate of the testbed's CA and checks every request's AWS Signature
Version 4 against the one identity it is given. Used to prove `k8s.backup --to-s3` end to end
(tests/test_cluster.py). Not MinIO: its server is AGPL.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..bundle.cache import cache_dir
from ..bundle.gobuild import Go, GoBuild
from ..state import write_private

MODULE = "github.com/seaweedfs/seaweedfs"
VERSION = "v0.0.0-20261109003541-7506e5f91cd6"  # the newest the module proxy here serves
PORT = 8333


def build() -> Path:
    """`weed`, built once and cached beside the bundle's builds (7m46s of CPU on 2 cores, empty caches)."""
    spec = GoBuild(name=f"seaweedfs-{VERSION[-12:]}", requires={MODULE: VERSION},
                   binaries={"weed": f"{MODULE}/weed"}, ldflags=("-s", "-w"))
    return Go().build(spec, cache_dir() / "build" / spec.name)["weed"]


def identity_config(access_key: str, secret_key: str) -> str:
    """SeaweedFS's S3 identities: one, allowed everything (`-s3.config`)."""
    return json.dumps({"identities": [{
        "name": "openi-tasks-test",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }]}, indent=2)


def command(address: str, bucket: str) -> list[str]:
    return ["/usr/local/bin/weed", "mini", "-dir=/data", f"-ip={address}", "-ip.bind=0.0.0.0",
            f"-s3.port={PORT}", "-s3.config=/etc/seaweedfs/s3.json", "-s3.cert.file=/etc/seaweedfs/tls/s3.crt",
            "-s3.key.file=/etc/seaweedfs/tls/s3.key", f"-bucket={bucket}", "-webdav=false", "-admin.ui=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0"]


def write_files(directory: Path, access_key: str, secret_key: str) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(directory / "s3.json", identity_config(access_key, secret_key))


def wait_answering(url: str, ca_file: Path, timeout: float = 120) -> None:
    """Until the S3 gateway answers over TLS (an unsigned request's 403 is an answer)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, context=context, timeout=5)
            return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
            time.sleep(1)
    raise TimeoutError(f"SeaweedFS's S3 gateway at {url} did not answer within {timeout:.0f}s: {last}")
