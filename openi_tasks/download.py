"""Downloads checked against a published sha256, for kubectl and for bundles from upstream releases.

A release site publishes `<file>.sha256` beside each file: the hex digest, alone (dl.k8s.io) or
followed by the file's name (GitHub releases). A file is written to its place only once its digest
matches, so a failed or tampered download never replaces what was there.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable

from .errors import OpenIError

TIMEOUT = 120  # seconds without a byte before a download is given up
CHUNK = 1 << 20


class DownloadFailed(OpenIError):
    """A file could not be downloaded, or its digest is not the published one; names the URL."""


def fetch(url: str, limit: int = 1 << 16) -> bytes:
    """A small file (at most `limit` bytes: a checksum, a version), whole."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            data = response.read(limit + 1)
    except OSError as exc:
        raise DownloadFailed(f"cannot download {url}: {exc}") from None
    if len(data) > limit:
        raise DownloadFailed(f"{url} is larger than {limit} bytes; it is not what was expected there")
    return data


def published_sha256(url: str, name: str | None = None) -> str:
    """The digest published at `url` (a `.sha256` file); with `name`, the line of that file in a
    list of them (`<digest>  <name>` lines, as runc's releases publish)."""
    text = fetch(url).decode(errors="replace").strip()
    if name is not None:
        found = re.search(rf"^([0-9a-fA-F]{{64}})\s+\*?{re.escape(name)}\s*$", text, re.M)
        if not found:
            raise DownloadFailed(f"{url} lists no sha256 digest for {name}")
        return found[1].lower()
    found = re.match(r"([0-9a-fA-F]{64})(\s|$)", text)
    if not found:
        raise DownloadFailed(f"{url} holds no sha256 digest (it starts {text[:40]!r})")
    return found[1].lower()


def download_checked(url: str, target: Path, expected: str, progress: Callable[[str], None] = lambda _: None) -> None:
    """Write `url` to `target` if and only if its sha256 is `expected`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    handle, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            for chunk in iter(lambda: response.read(CHUNK), b""):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                progress(f"{target.name}: {done >> 20} of {total >> 20} MiB" if total else
                         f"{target.name}: {done >> 20} MiB")
        if digest.hexdigest() != expected:
            raise DownloadFailed(f"{url}: its sha256 is {digest.hexdigest()}, not the published {expected}; "
                                 f"{target} was left as it was")
        os.replace(partial, target)
    except OSError as exc:
        raise DownloadFailed(f"cannot download {url}: {exc}") from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
