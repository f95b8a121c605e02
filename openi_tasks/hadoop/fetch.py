"""Getting Hadoop's tarball into the state directory, where the hadoop-run image takes it from.

From `custom-hadoop-binary-path` when set; else assembled from `hadoop-maven-repository` when that
is set (maven.py); else downloaded from `hadoop-download-url`, and checked against the sha512
published beside it. A tarball already there with a matching checksum is kept.
"""

from __future__ import annotations

import re
import shutil
import tarfile
import urllib.request
from pathlib import Path, PurePosixPath

from ..config import Cluster
from ..errors import OpenIError
from ..localfiles import file_digest
from ..state import StateDir
from .maven import Credentials, assemble


def tarball_path(cluster: Cluster) -> Path:
    return StateDir.of(cluster).hadoop_tarball(cluster.services.hadoop.hadoop_version)


def _published_sha512(text: str) -> str:
    """The digest from a .sha512 file in either form Apache uses: `<hex>  <file>`, or
    `SHA512 (<file>) = <hex split in groups>`."""
    if "=" in text:
        text = "".join(text.split("=", 1)[1].split())
    match = re.search(r"\b([0-9a-fA-F]{128})\b", text)
    if not match:
        raise OpenIError(f"cannot read a sha512 digest from: {text[:120]!r}")
    return match.group(1).lower()


def _download(url: str, target: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=600) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        raise OpenIError(f"cannot download {url}: {exc}") from None


def fetch(cluster: Cluster) -> Path:
    """The tarball for the configured version, in the state directory."""
    hadoop = cluster.services.hadoop
    target = tarball_path(cluster)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if hadoop.custom_hadoop_binary_path:
        source = cluster.path / Path(hadoop.custom_hadoop_binary_path).expanduser()
        if source.is_dir():
            source = source / f"hadoop-{hadoop.hadoop_version}.tar.gz"
        if not source.is_file():
            raise OpenIError(f"custom-hadoop-binary-path {source} does not exist")
        if not target.is_file() or file_digest(target, "sha512") != file_digest(source, "sha512"):
            shutil.copyfile(source, target)
        return target
    if hadoop.hadoop_maven_repository:
        credentials = Credentials(hadoop.hadoop_maven_username, hadoop.hadoop_maven_password.get_secret_value()) \
            if hadoop.hadoop_maven_password is not None else None
        assemble(hadoop.hadoop_version, hadoop.hadoop_maven_repository, target, credentials=credentials)
        return target
    checksum = Path(f"{target}.sha512")
    assembled = Path(f"{target}.inputs")  # what maven.py assembled is not Apache's tarball
    if (target.is_file() and checksum.is_file() and not assembled.exists()
            and file_digest(target, "sha512") == checksum.read_text().strip()):
        return target
    url = f"{hadoop.hadoop_download_url.rstrip('/')}/hadoop-{hadoop.hadoop_version}/hadoop-{hadoop.hadoop_version}.tar.gz"
    partial = target.with_name(target.name + ".partial")
    _download(url, partial)
    published = Path(f"{partial}.sha512")
    _download(url + ".sha512", published)
    expected, actual = _published_sha512(published.read_text()), file_digest(partial, "sha512")
    published.unlink()
    if expected != actual:
        partial.unlink()
        raise OpenIError(f"{url} does not match its published sha512; nothing was kept")
    assembled.unlink(missing_ok=True)
    partial.rename(target)
    checksum.write_text(actual + "\n")
    return target


def extract_defaults(tarball: Path, into: Path, version: str) -> Path:
    """Hadoop's own etc/hadoop from the tarball, as the starting point of every role's configuration."""
    prefix = f"hadoop-{version}/etc/hadoop/"
    with tarfile.open(tarball) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(prefix) and m.isfile()]
        if not members:
            raise OpenIError(f"{tarball} has no {prefix} (is it hadoop-{version}?)")
        for member in members:
            # Read and written by hand rather than TarFile.extract(filter="data"): Debian 12's Python
            # 3.11.2 (the operator image's) has no extraction filters.
            relative = PurePosixPath(member.name[len(prefix):])
            if relative.is_absolute() or ".." in relative.parts:
                raise OpenIError(f"{tarball}: {member.name} points outside {prefix}: not extracted")
            target = into.joinpath(*relative.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.extractfile(member) as source, open(target, "wb") as written:
                shutil.copyfileobj(source, written)
    return into
