"""prepare: what Kubernetes needs of every host — its name resolving to its address, swap off,
kernel modules and settings — each changed only where the host differs."""

from __future__ import annotations

import shlex

from ...operations import ensure_file, file_states
from ...phase import Change, Phase
from ...render import RenderedFile
from ...run import Run
from ...ssh import FileWrite, Host
from ..hostfacts import SYSCTLS
from ..files import MODULES_LOAD, SYSCTL_CONF, file_at, host_files
from .facts import facts_of

HOSTS = "/etc/hosts"


def fixed_hosts_file(text: str, address: str, hostname: str) -> str:
    """/etc/hosts with `hostname` resolving to `address`, as the original toolkit fixed it.

    Lines that give the name another loopback address (Debian's `127.0.1.1 name`) are commented
    out; a line `address hostname` is added unless one exists.
    """
    lines = text.splitlines()
    out, present = [], False
    for line in lines:
        fields = line.split("#", 1)[0].split()
        names = [n.lower() for n in fields[1:]]
        if fields and hostname.lower() in names:
            if fields[0] == address:
                present = True
            elif fields[0].startswith("127.") or fields[0] == "::1":
                out.append(f"# {line}  # commented out by openi-tasks: {hostname} must resolve to {address}")
                continue
        out.append(line)
    if not present:
        out.append(f"{address} {hostname}")
    return "\n".join(out) + "\n"


class Prepare(Phase):
    name = "prepare"
    title = "Prepare hosts: name resolution, swap, kernel modules and settings"

    def plan(self, run: Run, host: Host) -> list[Change]:
        facts = facts_of(run, host)
        machine = host.machine
        files = host_files(run.cluster, machine)
        modules_load, sysctl_conf = file_at(files, MODULES_LOAD), file_at(files, SYSCTL_CONF)
        states = file_states(host, [HOSTS, MODULES_LOAD, SYSCTL_CONF])
        changes = self._hosts_file(host, states[HOSTS])
        if facts.swap:
            changes.append(Change(
                "turn swap off (swapoff -a) and comment swap out of /etc/fstab",
                "swapoff -a && sed -i.openi-bak -E 's@^([^#].*[[:space:]]swap[[:space:]].*)$@# \\1@' /etc/fstab",
            ))
        changes += ensure_file(host, modules_load, states[MODULES_LOAD])
        for module, state in (("overlay", facts.overlay), ("br_netfilter", facts.br_netfilter)):
            if state == "loadable":
                changes.append(Change(f"load kernel module {module}", f"modprobe {module}"))
        changes += ensure_file(host, sysctl_conf, states[SYSCTL_CONF])
        for key, value in SYSCTLS.items():
            if facts.sysctls.get(key) != value:
                changes.append(Change(f"set {key} = {value} (was {facts.sysctls.get(key) or 'unset'})",
                                      f"sysctl -w {shlex.quote(f'{key}={value}')}"))
        return changes

    def _hosts_file(self, host: Host, state: tuple[bytes | None, int | None]) -> list[Change]:
        content, mode = state
        text = (content or b"").decode()
        wanted = fixed_hosts_file(text, host.machine.address, host.machine.hostname)
        if wanted == text:
            return []
        changes = ensure_file(host, RenderedFile(HOSTS, wanted, mode or 0o644), (content, mode))
        # /etc/hosts may be a bind mount (containers): rewrite it in place, keep the description and diff.
        return [Change(c.description, FileWrite(HOSTS, wanted.encode(), mode or 0o644, in_place=True), c.diff)
                for c in changes]
