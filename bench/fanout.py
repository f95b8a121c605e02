#!/usr/bin/env python3
"""Fan-out: the same work on N hosts with openi-tasks, ansible-core and pyinfra, in one run.

Per host: three remote commands and one 100 KB file upload. Hosts are sshd processes on loopback
addresses (127.0.0.2, ...), started here with generated keys; every tool verifies their host keys
against the same known_hosts file and logs in with the same key as a uid-0 account whose shell is
/bin/sh (no shell start-up files: cheap hosts, so that the client's own cost shows).

- openi-tasks: its fan-out API (`Inventory(...).group(hosts).map(...)`, what every deploy phase
  uses), in a fresh process; the three commands and the upload go as one batch (`Host.sh_all`
  with a `FileWrite` step: one SSH session, a result per step), as the phases' plans read their
  files and apply their file changes.
- ansible-core: a 4-task playbook with its best settings, stated in the output: forks = N,
  pipelining on, SSH ControlPersist on, no fact gathering.
- pyinfra: a 4-operation deploy, `--parallel N`, no fact-heavy operations.

Each tool runs R times per N; the table shows the median wall time, the ratio ours/theirs, and
the client's own CPU time per host (user + system of the tool's process tree, from rusage; the
sshd processes are not counted). The sshd servers share this machine's cores, so wall time grows
with N partly because of them.

    python bench/fanout.py                    # N = 1, 10, 30; R = 5
    python bench/fanout.py --hosts 30 --runs 3

ansible-core, pyinfra and openi-tasks' dependencies are installed into bench/.tools-venv on first
use; all three tools run from it (openi-tasks from this checkout, through PYTHONPATH), each with
its bytecode cache allowed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.sshd import PLAIN_ROOT, SshHosts  # noqa: E402

TOOLS_VENV = ROOT / "bench" / ".tools-venv"
COMMANDS = ["uname -a", "cat /etc/os-release | head -1", "ls /etc | wc -l"]

OURS = """
import sys
from pathlib import Path
from openi_tasks.config import load_cluster
from openi_tasks.ssh import FileWrite, Inventory

cluster = load_cluster(sys.argv[1])
payload = Path(sys.argv[2]).read_bytes()
commands = {commands!r}

def work(host):
    host.sh_all([*commands, FileWrite("/tmp/openi-bench/ours.bin", payload, 0o644)], check=True)

with Inventory(cluster) as inventory:
    results = inventory.map(inventory.hosts(), work)
    failed = {{h.name: r for h, r in results.items() if isinstance(r, Exception)}}
    if failed:
        sys.exit(f"failed: {{failed}}")
"""


def ensure_tools() -> Path:
    """One virtualenv for all three tools: the same interpreter and site set-up for each."""
    python = TOOLS_VENV / "bin" / "python"
    ours = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS_VENV)], check=True)
    if subprocess.run([str(python), "-c", "import fabric, pydantic, ansible, pyinfra"], capture_output=True).returncode:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "ansible-core", "pyinfra", *ours], check=True)
    return TOOLS_VENV / "bin"


def versions(bin_dir: Path) -> str:
    ansible = subprocess.run([str(bin_dir / "ansible"), "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    pyinfra = subprocess.run([str(bin_dir / "pyinfra"), "--version"], capture_output=True, text=True).stdout.strip()
    return f"{ansible}; {pyinfra}"


def measure(args: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process tree) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def prepare(work: Path, hosts: SshHosts, count: int, payload: Path) -> dict[str, tuple[list[str], Path]]:
    """Each tool's command line (and working directory) for `count` hosts."""
    from openi_tasks.config.generate import write_configuration

    addresses = hosts.addresses[:count]
    machines = hosts.machines()[:count]
    config = write_configuration(work / f"config-{count}", machines, defaults=hosts.defaults(PLAIN_ROOT),
                                 operator=hosts.operator(concurrency=max(count, 1)))
    ours = work / "ours.py"
    ours.write_text(OURS.format(commands=COMMANDS))

    ansible_dir = work / f"ansible-{count}"
    ansible_dir.mkdir()
    (ansible_dir / "inventory.ini").write_text("[nodes]\n" + "".join(
        f"{a} ansible_port={hosts.port} ansible_user={PLAIN_ROOT} ansible_ssh_private_key_file={hosts.client_key}\n"
        for a in addresses))
    (ansible_dir / "ansible.cfg").write_text(textwrap.dedent(f"""\
        [defaults]
        forks = {count}
        gathering = explicit
        host_key_checking = True
        interpreter_python = /usr/bin/python3
        stdout_callback = default
        [ssh_connection]
        pipelining = True
        ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={hosts.known_hosts}
        control_path_dir = {ansible_dir}/cp
        """))
    (ansible_dir / "play.yml").write_text(textwrap.dedent(f"""\
        - hosts: nodes
          gather_facts: false
          tasks:
            - command: {COMMANDS[0]}
            - shell: {COMMANDS[1]}
            - shell: {COMMANDS[2]}
            - copy: {{src: {payload}, dest: /tmp/openi-bench/ansible.bin, mode: "0644"}}
        """))

    pyinfra_dir = work / f"pyinfra-{count}"
    pyinfra_dir.mkdir()
    (pyinfra_dir / "inventory.py").write_text(
        "nodes = [\n" + "".join(
            f"    ('{a}', {{'ssh_port': {hosts.port}, 'ssh_user': '{PLAIN_ROOT}', 'ssh_key': '{hosts.client_key}', "
            f"'ssh_known_hosts_file': '{hosts.known_hosts}', 'ssh_strict_host_key_checking': 'yes'}}),\n"
            for a in addresses) + "]\n")
    (pyinfra_dir / "deploy.py").write_text(textwrap.dedent(f"""\
        from pyinfra.operations import files, server
        server.shell(name="commands", commands={COMMANDS!r})
        files.directory(name="dir", path="/tmp/openi-bench")
        files.put(name="upload", src="{payload}", dest="/tmp/openi-bench/pyinfra.bin")
        """))
    bin_dir = TOOLS_VENV / "bin"
    return {
        "openi-tasks": ([str(bin_dir / "python"), str(ours), str(config), str(payload)], work),
        "ansible-core": ([str(bin_dir / "ansible-playbook"), "-i", "inventory.ini", "play.yml"], ansible_dir),
        "pyinfra": ([str(bin_dir / "pyinfra"), "inventory.py", "deploy.py", "-y", "--parallel", str(count)], pyinfra_dir),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="*", default=[1, 10, 30])
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the bench starts sshd servers")
    bin_dir = ensure_tools()
    with tempfile.TemporaryDirectory(prefix="openi-fanout-") as tmp:
        work = Path(tmp)
        payload = work / "payload.bin"
        payload.write_bytes(os.urandom(100 * 1024))
        hosts = SshHosts(work / "sshd", count=max(options.hosts)).start()
        # As on an operator's machine, every tool may keep its bytecode cache (this workplace's
        # environment sets PYTHONDONTWRITEBYTECODE; pip-installed tools have theirs anyway, but
        # openi-tasks runs from the checkout and would compile its own modules on every run).
        env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        env.update(PYTHONPATH=str(ROOT), ANSIBLE_CONFIG="ansible.cfg")
        results: dict[tuple[str, int], tuple[float, float]] = {}
        try:
            for count in options.hosts:
                runs = prepare(work, hosts, count, payload)
                for tool, (args, cwd) in runs.items():
                    measure(args, env, cwd)  # warm-up: caches, ControlPersist masters, pyc files
                    samples = [measure(args, env, cwd) for _ in range(options.runs)]
                    results[(tool, count)] = (statistics.median(s[0] for s in samples),
                                              statistics.median(s[1] for s in samples))
                    print(f"  {tool:13} N={count:3}: {results[(tool, count)][0]:.2f} s", file=sys.stderr, flush=True)
                shutil.rmtree(work / f"ansible-{count}" / "cp", ignore_errors=True)
        finally:
            hosts.stop()
    print(f"\n{versions(bin_dir)}; python {sys.version.split()[0]}; {os.cpu_count()} cores; median of {options.runs} runs\n")
    print("| N | tool | wall s | ours / this | client CPU ms per host |\n|---:|---|---:|---:|---:|")
    for count in options.hosts:
        ours = results[("openi-tasks", count)][0]
        for tool in ("openi-tasks", "ansible-core", "pyinfra"):
            wall, cpu = results[(tool, count)]
            print(f"| {count} | {tool} | {wall:.2f} | {ours / wall:.2f} | {cpu / count * 1000:.0f} |")
    print("\n| tool | T(30)/T(1) |\n|---|---:|")
    if 1 in options.hosts and 30 in options.hosts:
        for tool in ("openi-tasks", "ansible-core", "pyinfra"):
            print(f"| {tool} | {results[(tool, 30)][0] / results[(tool, 1)][0]:.1f} |")


if __name__ == "__main__":
    main()
