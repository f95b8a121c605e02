"""Go builds of the bundle: two processes that build the same artifact take turns, and the second
finds the first one's build (CI's test session builds the conformance suite in the background while
a test's `k8s.bundle` may ask for it)."""

from __future__ import annotations

import os
import subprocess
import threading

from openi_tasks.bundle.cache import cache_dir
from openi_tasks.bundle.gobuild import Go, GoBuild, work_dir

HELLO = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("built once") }\n'


def test_two_builds_into_the_same_directory_take_turns_and_the_second_builds_nothing(tmp_path):
    spec = GoBuild(name="lock-test", requires={}, binaries={"hello": "."}, files={"main.go": HELLO})
    out = tmp_path / "lock-test"
    events: list[str] = []
    results: list[dict] = []
    start = threading.Barrier(2)

    def build():
        go = Go(progress=events.append)
        start.wait()
        results.append(go.build(spec, out))

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(results) == 2 and results[0] == results[1] == {"hello": out / "hello"}
    assert subprocess.run([str(out / "hello")], capture_output=True, text=True).stdout == "built once\n"
    assert sum("compiling" in e for e in events) == 1, events
    assert sum("another process is building it; waiting for that build" in e for e in events) == 1, events


def test_a_killed_build_s_work_files_are_removed_by_the_next_one(tmp_path):
    """The go command's work files (GOTMPDIR) go to a directory of the process under the cache, not
    to /tmp; a process that no longer runs (a build killed at CI's time limit left 2.9 GB in /tmp)
    has its directory removed by the next; a running one's stays."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    parent = tmp_path / "tmp"
    (parent / str(ended.pid) / "go-build1234").mkdir(parents=True)
    (parent / str(os.getppid())).mkdir()
    assert work_dir(parent) == parent / str(os.getpid()) and (parent / str(os.getpid())).is_dir()
    assert sorted(p.name for p in parent.iterdir()) == sorted([str(os.getpid()), str(os.getppid())])
    assert Go().env["GOTMPDIR"] == str(cache_dir() / "go" / "tmp" / str(os.getpid()))
