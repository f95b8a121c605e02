#!/usr/bin/env python3
"""`inv k8s.deploy --dry-run` against N hosts: wall time and peak memory of the operator's process.

A dry run connects to every host, gathers its facts and plans every phase (reading files,
versions and checksums on each host), and changes nothing. Its hosts here are sshd servers on
loopback addresses (127.0.0.2, ...), one process each with its own host key, verified against a
known_hosts file. Behind every one of them is this machine: each is a STAND-IN for a bare Debian
host. Its login shell (a uid-0 account's) gives each session a host name of its own, from the
address it was reached on (a UTS namespace), and, in a mount namespace, the directory that says
systemd runs (`/run/systemd/system`, an empty tmpfs) because this machine's PID 1 is not systemd;
nothing is started, so the plans say what a bare host needs. 3 masters, a proxy, the rest workers;
Kubernetes from a bundle directory (`--bundle`, default the testbed's).

Every stand-in host runs on this machine's cores, beside the operator's process: the wall time
here includes all the hosts' own work (the facts script, checksums), which real hosts do each on
their own CPU. The operator's share is its process's CPU time, shown beside it.

    python bench/dry_run_scale.py --hosts 10 100 1000
    python bench/dry_run_scale.py --hosts 300 --against /tmp/old-tree --rounds 2   # A/B, alternated
    python bench/dry_run_scale.py --hosts 300 --profile /tmp/samples.txt   # needs `pip install py-spy`

(With --profile the CPU column is py-spy's, not the dry run's.)

Needs root, openssh-server and util-linux' unshare. Test traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openi_tasks.config.generate import write_configuration  # noqa: E402
from tests.sshd import SshHosts  # noqa: E402

ACCOUNT = "openi-bench-host"
SHELL = f"/var/lib/{ACCOUNT}/shell"
# $SSH_CONNECTION is "client port server port": the server's address names the stand-in host.
SHELL_TEXT = """#!/bin/sh
# A STAND-IN host for bench/dry_run_scale.py: this machine, named after the address reached.
address=$(echo "$SSH_CONNECTION" | cut -d' ' -f3)
exec unshare --uts --mount /bin/sh -c '
hostname "h-$(echo "$0" | tr . -)"
mount -t tmpfs stand-in /run/systemd && mkdir /run/systemd/system
exec /bin/sh "$@"' "$address" "$@"
"""
DEFAULT_BUNDLE = "/var/cache/openi-tasks/testbed/bundle-v1.37.2"


class ManyHosts(SshHosts):
    """SshHosts beyond 253 addresses: 127.0.x.y, y from 2 to 251."""

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.{i // 250}.{i % 250 + 2}" for i in range(self.count)]


def ensure_account() -> None:
    if subprocess.run(["id", ACCOUNT], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-o", "-u", "0", "-g", "0", "-M", "-d", f"/var/lib/{ACCOUNT}", "-s", SHELL, ACCOUNT],
                       check=True)
    subprocess.run(["usermod", "-p", "*", ACCOUNT], check=True)  # key login only, not locked
    Path(SHELL).parent.mkdir(mode=0o700, exist_ok=True)
    Path(SHELL).write_text(SHELL_TEXT)
    Path(SHELL).chmod(0o755)
    Path("/run/systemd").mkdir(exist_ok=True)  # where each session mounts its own tmpfs


def machines(addresses: list[str]) -> list[dict]:
    entries = []
    for i, address in enumerate(addresses):
        entry = {"hostname": f"h-{address.replace('.', '-')}", "hostip": address, "machine-type": "standard"}
        if i < 3:
            entry.update({"k8s-role": "master", "etcdid": f"etcd{i + 1}"})
        elif i == 3:
            entry["k8s-role"] = "proxy"
        else:
            entry.update({"k8s-role": "worker", "pai-worker": "true"})
        entries.append(entry)
    return entries


def dry_run(config: Path, env: dict, tree: Path = ROOT, profile: Path | None = None) -> tuple[float, float, float, str]:
    """Wall seconds, the process's own CPU seconds, its peak RSS (MiB) and its output, of one
    `k8s.deploy --dry-run` in a fresh process, of the openi-tasks checkout `tree`."""
    start = time.perf_counter()
    arguments = ["--search-root", str(tree), "k8s.deploy", "--dry-run", "-p", str(config)]
    command = [sys.executable, "-m", "invoke", *arguments]
    if profile:  # sampled, every thread (cProfile sees the main thread only, which waits for the fan-out)
        command = [str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "--rate", "250",
                   "--format", "raw", "--output", str(profile), "--", *command]
    child = subprocess.Popen(command, cwd=tree, env={**env, "PYTHONPATH": str(tree)},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = child.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the dry run of {config} failed:\n{output[-5000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output


def revision(tree: Path) -> str:
    done = subprocess.run(["git", "-C", str(tree), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return done.stdout.strip() or tree.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="*", default=[10, 100, 1000])
    parser.add_argument("--concurrency", type=int, default=None, help="operator.concurrency (default: the tool's)")
    parser.add_argument("--bundle", default=DEFAULT_BUNDLE)
    parser.add_argument("--against", type=Path, help="another checkout (git worktree) to run in alternation with "
                                                     "this one on the same hosts: an A/B on a VM whose speed drifts")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="for the largest count: py-spy's samples of every thread "
                                                     "(collapsed stacks, one line each, with counts) into this file")
    options = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("unshare"):
        raise SystemExit("needs root and unshare")
    ensure_account()
    trees = [ROOT] + ([options.against.resolve()] if options.against else [])
    print("| hosts | code | concurrency | wall s | operator CPU s | peak MiB |\n|---:|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        hosts = ManyHosts(Path(tmp) / "sshd", max(options.hosts)).start()
        try:
            for count in options.hosts:
                operator = hosts.operator(**({"concurrency": options.concurrency} if options.concurrency else {}),
                                          **{"state-dir": f"{tmp}/state-{count}"})
                config = write_configuration(
                    Path(tmp) / f"c{count}", machines(hosts.addresses[:count]),
                    defaults={"username": ACCOUNT, "sshport": hosts.port, "ssh-key": str(hosts.client_key)},
                    operator=operator,
                    kubernetes={"package-source": "binaries", "binaries-dir": options.bundle,
                                "docker-registry": "registry.invalid:5000",
                                "pod-network-cidr": "10.240.0.0/12"})  # 4096 nodes of /24
                for _ in range(options.rounds):
                    for tree in trees:
                        profile = options.profile if options.profile and count == max(options.hosts) else None
                        seconds, cpu, memory, output = dry_run(config, dict(os.environ), tree, profile)
                        print(f"| {count} | {revision(tree)} | {options.concurrency or 'default'} | {seconds:.1f} | "
                              f"{cpu:.1f} | {memory:.0f} |", flush=True)
                if count == max(options.hosts):
                    print("\n" + "\n".join(output.splitlines()[-30:]))
        finally:
            hosts.stop()
    print(f"\n(python {sys.version.split()[0]}, {os.cpu_count()} cores, the sshd servers on the same cores)")


if __name__ == "__main__":
    main()
