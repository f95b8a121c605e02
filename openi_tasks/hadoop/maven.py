"""Hadoop's runtime assembled from its Maven artifacts, in place of the tarball `hadoop.prepare`
would otherwise download (`hadoop.hadoop-maven-repository`).

For networks that mirror a Maven repository but not Apache's release archive. Maven resolves the
daemons' and MapReduce's artifacts with their dependencies (Maven's resolver, not ours). The jars
go into a tarball with the top of Apache's layout, `hadoop-<version>/{bin,etc/hadoop,share/hadoop}`,
so the hadoop-run image and every role's configuration take it as they take Apache's. What Maven
does not have comes from templates/hadoop/runtime: one script for `hadoop`, `hdfs`, `yarn` and
`mapred`, `etc/hadoop`'s starting files, and the empty web-application directories that HDFS's
HTTP servers look up (Apache ships their pages; the JMX and REST endpoints do not need them).
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..bundle.cache import cache_dir
from ..errors import OpenIError
from ..localfiles import file_digest
from ..render import TEMPLATES, render

RUNTIME = TEMPLATES / "hadoop" / "runtime"
COMMANDS = ("hadoop", "hdfs", "yarn", "mapred")
HDFS_WEBAPPS = ("hdfs", "datanode", "secondary", "journal")
MAVEN_TIMEOUT = 1800
# Pinned, and named in full: Maven resolves no plugin prefix or newest version from the mirror.
COPY_DEPENDENCIES = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"


@dataclass(frozen=True)
class Artifact:
    name: str
    classifier: str = ""


# The daemons the platform runs, MapReduce on YARN, and the job client's test jar (its `sleep`
# job is what a cluster's check submits: Maven Central has no hadoop-mapreduce-examples 3.5).
ARTIFACTS = (
    Artifact("hadoop-common"), Artifact("hadoop-hdfs"), Artifact("hadoop-hdfs-client"),
    Artifact("hadoop-yarn-server-resourcemanager"), Artifact("hadoop-yarn-server-nodemanager"),
    Artifact("hadoop-yarn-server-timelineservice"),  # the resource manager loads its classes
    Artifact("hadoop-yarn-client"), Artifact("hadoop-mapreduce-client-app"),
    Artifact("hadoop-mapreduce-client-jobclient"), Artifact("hadoop-mapreduce-client-shuffle"),
    Artifact("hadoop-mapreduce-client-hs"), Artifact("hadoop-mapreduce-client-jobclient", "tests"),
)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def assemble(version: str, repository: str, target: Path, mvn: str = "mvn",
             credentials: Credentials | None = None) -> bool:
    """`target` (hadoop-<version>.tar.gz) assembled from `repository`, unless the one there was
    assembled from the same inputs and is intact; whether it was assembled now."""
    pom = render("hadoop/runtime/pom.xml.j2", version=version, artifacts=ARTIFACTS)
    # The credentials change how the artifacts are fetched, not what is assembled: the digest of
    # the inputs (kept beside the tarball) is taken without them.
    inputs = _inputs_digest(pom, render("hadoop/runtime/settings.xml.j2", repository=repository, credentials=None))
    stamp, checksum = Path(f"{target}.inputs"), Path(f"{target}.sha512")
    if (target.is_file() and stamp.is_file() and checksum.is_file() and stamp.read_text().strip() == inputs
            and file_digest(target, "sha512") == checksum.read_text().strip()):
        return False
    program = shutil.which(mvn)
    if program is None:
        raise OpenIError(f"hadoop-maven-repository is set: assembling Hadoop {version} needs Maven "
                         f"({mvn}) on this machine's PATH (Debian: apt-get install maven)")
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="openi-hadoop-maven-") as tmp:
        work = Path(tmp)
        (work / "pom.xml").write_text(pom)
        settings = work / "settings.xml"
        settings.touch(mode=0o600)
        settings.write_text(render("hadoop/runtime/settings.xml.j2", repository=repository, credentials=credentials))
        lib = work / "lib"
        _copy_dependencies(program, work, lib, version, repository)
        partial = target.with_name(target.name + ".partial")
        _write_tarball(partial, version, lib)
    checksum.write_text(file_digest(partial, "sha512") + "\n")
    partial.rename(target)
    stamp.write_text(inputs + "\n")
    return True


def _inputs_digest(pom: str, settings: str) -> str:
    """What the tarball is made from: the pom, the repository, and every file of RUNTIME."""
    digest = hashlib.sha256(pom.encode() + b"\0" + settings.encode())
    for path in sorted(p for p in RUNTIME.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(RUNTIME)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _copy_dependencies(mvn: str, work: Path, lib: Path, version: str, repository: str) -> None:
    # -U: a failure Maven cached (an artifact the mirror lacked then) is tried again.
    command = [mvn, "-B", "-q", "-U", "-s", str(work / "settings.xml"), "-f", str(work / "pom.xml"),
               f"-Dmaven.repo.local={cache_dir() / 'maven'}", COPY_DEPENDENCIES,
               f"-DoutputDirectory={lib}", "-DincludeScope=runtime"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=MAVEN_TIMEOUT, cwd=work)
    except subprocess.TimeoutExpired:
        raise OpenIError(f"Maven did not resolve Hadoop {version} from {repository} "
                         f"within {MAVEN_TIMEOUT} s") from None
    if result.returncode != 0:
        output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr).splitlines()  # colours
        errors = [line for line in output if line.startswith("[ERROR]")]
        # Maven's own first errors say what failed; what follows a blank [ERROR] is its advice.
        errors = errors[:errors.index("[ERROR] ")] if "[ERROR] " in errors else errors
        errors = errors[:6] or output[-6:]
        raise OpenIError(f"Maven could not resolve Hadoop {version}'s artifacts from {repository}:\n    "
                         + "\n    ".join(errors))


def _write_tarball(path: Path, version: str, lib: Path) -> None:
    """Apache's top-level layout: bin/, etc/hadoop/, share/hadoop/lib (the runtime's jars),
    share/hadoop/mapreduce (the test jar, off the daemons' classpath) and share/hadoop/hdfs/webapps."""
    top = f"hadoop-{version}"

    def add(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, source: Path | None = None,
            link: str = "") -> None:
        info = tarfile.TarInfo(f"{top}/{name}")
        info.type, info.mode, info.linkname = kind, mode, link
        if source is None:
            archive.addfile(info)
            return
        info.size = source.stat().st_size
        with open(source, "rb") as content:
            archive.addfile(info, content)

    # No timestamps (gzip's and the entries' are 0): the same inputs make the same bytes, so the
    # image built from it reuses its layers.
    with gzip.GzipFile(path, "wb", mtime=0) as compressed, tarfile.open(fileobj=compressed, mode="w") as archive:
        add("bin/hadoop", mode=0o755, source=RUNTIME / "hadoop.sh")
        for command in COMMANDS[1:]:
            add(f"bin/{command}", tarfile.SYMTYPE, 0o777, link="hadoop")
        for source in sorted((RUNTIME / "etc-hadoop").iterdir()):
            add(f"etc/hadoop/{source.name}", source=source)
        for jar in sorted(lib.glob("*.jar")):
            where = "share/hadoop/mapreduce" if jar.name.endswith("-tests.jar") else "share/hadoop/lib"
            add(f"{where}/{jar.name}", source=jar)
        for webapp in HDFS_WEBAPPS:
            add(f"share/hadoop/hdfs/webapps/{webapp}", tarfile.DIRTYPE, 0o755)
