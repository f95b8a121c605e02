"""Binaries built from Go modules at pinned versions, through a small wrapper module.

A wrapper module requires the module to build at its version (and holds any small `main` of our
own, such as CoreDNS with only the plugins kubeadm's Corefile uses). Modules that require their
siblings at `v0.0.0` (Kubernetes' staging modules) get a `replace` for each, derived from the
module's own go.mod rather than a list written here. Builds run as upstream builds them
(`-trimpath`, static, stamped with their version), with Go's module and build caches kept under
the cache directory, so a second build of the same inputs is a link or nothing at all.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from ..errors import OpenIError
from .cache import cache_dir

Progress = Callable[[str], None]


class BuildFailed(OpenIError):
    """A Go build failed; the message names the artifact, the step and the compiler's last lines."""


@dataclass(frozen=True)
class GoBuild:
    """What to build: `binaries` maps an output name to its Go package."""

    name: str
    requires: Mapping[str, str]
    binaries: Mapping[str, str]
    ldflags: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    cgo: bool = False
    files: Mapping[str, str] = field(default_factory=dict)  # extra files of the wrapper module
    stage_replaces_of: str = ""  # a module whose v0.0.0 requirements are replaced by `stage_version`
    stage_version: str = ""
    tests: Mapping[str, str] = field(default_factory=dict)  # test binaries (`go test -c`): name -> package

    def key(self, go_version: str) -> str:
        data = json.dumps([self.name, dict(self.requires), dict(self.binaries), self.ldflags, self.tags, self.cgo,
                           dict(self.files), self.stage_replaces_of, self.stage_version, go_version,
                           dict(self.tests)], sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()[:16]


def work_dir(parent: Path) -> Path:
    """This process's directory for the go command's work files (GOTMPDIR), under `parent`. A build
    that is killed (CI's time limit, Ctrl-C) leaves its work there, gigabytes for Kubernetes'
    e2e.test; the directories of processes that no longer run are removed here, by the next one."""
    parent.mkdir(parents=True, exist_ok=True)
    for other in parent.iterdir():
        if other.name.isdigit() and not _running(int(other.name)):
            shutil.rmtree(other, ignore_errors=True)
    mine = parent / str(os.getpid())
    mine.mkdir(exist_ok=True)
    atexit.register(shutil.rmtree, mine, True)
    return mine


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


class Go:
    """The Go toolchain on this machine, with the caches under the cache directory."""

    def __init__(self, progress: Progress = lambda line: None) -> None:
        if shutil.which("go") is None:
            raise OpenIError("building from source needs Go (https://go.dev/dl/) on this machine's PATH")
        self.root = cache_dir() / "go"
        self.progress = progress
        self.env = {**os.environ, "GOMODCACHE": str(self.root / "mod"), "GOCACHE": str(self.root / "build"),
                    "GOTMPDIR": str(work_dir(self.root / "tmp")), "GOFLAGS": "-mod=mod", "GOWORK": "off"}
        self.version = self._run(["go", "env", "GOVERSION"], Path.cwd(), "go env").strip()

    def _run(self, command: list[str], cwd: Path, step: str, env: Mapping[str, str] | None = None) -> str:
        process = subprocess.Popen(command, cwd=cwd, env=dict(env or self.env), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip())
            self.progress(line.rstrip())
        if process.wait() != 0:
            tail = "\n    ".join(lines[-15:]) or "(no output)"
            raise BuildFailed(f"{step} failed:\n    {tail}")
        return "\n".join(lines)

    def module_info(self, module: str, version: str) -> dict:
        """What the module proxy says of `module@version` (its go.mod file, when it was released)."""
        self.root.mkdir(parents=True, exist_ok=True)
        out = self._run(["go", "list", "-m", "-json", f"{module}@{version}"], self.root, f"look up {module}@{version}")
        info = json.loads(out[out.index("{"):])
        if "Error" in info:
            raise BuildFailed(f"look up {module}@{version}: {info['Error']}")
        return info

    def module_dir(self, module: str, version: str) -> Path:
        """Where `module@version`'s source is, downloaded into the module cache if need be."""
        self.root.mkdir(parents=True, exist_ok=True)
        out = self._run(["go", "mod", "download", "-json", f"{module}@{version}"], self.root,
                        f"download {module}@{version}")
        info = json.loads(out[out.index("{"):])
        if "Error" in info:
            raise BuildFailed(f"download {module}@{version}: {info['Error']}")
        return Path(info["Dir"])

    def module_file(self, module: str, version: str) -> str:
        """A module's go.mod text, from the module proxy through the module cache."""
        return Path(self.module_info(module, version)["GoMod"]).read_text()

    def release_time(self, module: str, version: str) -> str:
        """When `module@version` was published, as RFC 3339 in UTC (the build date of a stamp)."""
        return re.sub(r"\.\d+", "", self.module_info(module, version)["Time"]).replace("+00:00", "Z")

    def build(self, spec: GoBuild, out: Path) -> dict[str, Path]:
        """Build `spec` into `out`; nothing is done when `out` already holds this build. Two
        processes building into the same `out` take turns (a lock beside it): the second finds
        the first one's build."""
        key = spec.key(self.version)
        stamp = out / ".openi-build"
        wanted = {name: out / name for name in [*spec.binaries, *spec.tests]}
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out.parent / f".{out.name}.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.progress(f"{spec.name}: another process is building it; waiting for that build")
                fcntl.flock(lock, fcntl.LOCK_EX)
            if stamp.is_file() and stamp.read_text().strip() == key and all(p.is_file() for p in wanted.values()):
                return wanted
            return self._build(spec, key, out, stamp, wanted)

    def _build(self, spec: GoBuild, key: str, out: Path, stamp: Path, wanted: dict[str, Path]) -> dict[str, Path]:
        work = self.root / "src" / f"{spec.name}-{key}"
        work.mkdir(parents=True, exist_ok=True)
        (work / "go.mod").write_text(self._go_mod(spec, work))
        for name, text in spec.files.items():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_text(text)
        env = {**self.env, "CGO_ENABLED": "1" if spec.cgo else "0"}
        if spec.files:  # our own code imports packages: let Go resolve and record them
            self.progress(f"{spec.name}: resolving modules")
            self._run(["go", "mod", "tidy"], work, f"{spec.name}: go mod tidy", env)
        out.mkdir(parents=True, exist_ok=True)
        partial = out / ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        command = ["go", "build", "-trimpath", "-o", str(partial) + "/"]
        if spec.tags:
            command += ["-tags", ",".join(spec.tags)]
        if spec.ldflags:
            command += ["-ldflags", " ".join(spec.ldflags)]
        start = time.monotonic()
        self.progress(f"{spec.name}: compiling {', '.join(spec.binaries)}")
        # One invocation for all of them: the packages they share compile once.
        packages = list(dict.fromkeys(spec.binaries.values()))
        if packages:
            self._run(command + packages, work, f"{spec.name}: go build", env)
        for name, package in spec.binaries.items():
            built = partial / (spec.name if package == "." else binary_name(package))
            if not built.is_file():
                raise BuildFailed(f"{spec.name}: go build made no binary for {package}")
            built.replace(wanted[name]) if built.name == name else shutil.copyfile(built, wanted[name])
            wanted[name].chmod(0o755)
        for name, package in spec.tests.items():  # `go test -c` takes one package at a time
            self.progress(f"{spec.name}: compiling the tests of {package} into {name}")
            self._run(["go", "test", "-c", "-trimpath", "-o", str(partial / name), *command[5:], package], work,
                      f"{spec.name}: go test -c {package}", env)
            (partial / name).replace(wanted[name])
            wanted[name].chmod(0o755)
        shutil.rmtree(partial, ignore_errors=True)
        stamp.write_text(key + "\n")
        self.progress(f"{spec.name}: built in {time.monotonic() - start:.0f}s")
        return wanted

    def _go_mod(self, spec: GoBuild, work: Path) -> str:
        go_line = re.sub(r"^go", "", self.version)
        lines = [f"module openi.local/build/{spec.name}", "", f"go {go_line}", ""]
        lines += [f"require {module} {version}" for module, version in spec.requires.items()]
        if spec.stage_replaces_of:
            upstream = self.module_file(spec.stage_replaces_of, spec.requires[spec.stage_replaces_of])
            for module in staging_modules(upstream):
                lines.append(f"replace {module} => {module} {spec.stage_version}")
        return "\n".join(lines) + "\n"


def binary_name(package: str) -> str:
    """The file `go build -o dir/` names a main package: its last path element, or the one before
    a major-version suffix (`go.etcd.io/etcd/etcdctl/v3` -> etcdctl)."""
    parts = [p for p in package.split("/") if p]
    if len(parts) > 1 and re.fullmatch(r"v\d+", parts[-1]):
        return parts[-2]
    return parts[-1]


def staging_modules(go_mod: str) -> list[str]:
    """The modules a go.mod requires at v0.0.0 (Kubernetes' staging modules), in order."""
    found = []
    for line in go_mod.splitlines():
        words = line.split("//")[0].split()
        if words[:1] == ["require"]:
            words = words[1:]
        if len(words) == 2 and words[1] == "v0.0.0" and words[0] not in found:
            found.append(words[0])
    return found
