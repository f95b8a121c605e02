"""facts: learn every host's OS, ports, disk, kernel and Docker, and refuse hosts that cannot work."""

from __future__ import annotations

from ...errors import OpenIError
from ...inventory import Host
from ...phase import Change, Phase, Run
from .. import facts as host_facts


class HostRefused(OpenIError):
    """A host cannot take part in the deploy; the message says why."""


def facts_of(run: Run, host: Host) -> host_facts.HostFacts:
    """This host's facts, gathered now unless the facts phase already did."""
    if host.name not in run.facts:
        disk = run.cluster.kubernetes.etcd_data_path if host.machine.is_master else "/var/lib"
        run.facts[host.name] = host_facts.gather(host, disk)
    return run.facts[host.name]


class Facts(Phase):
    name = "facts"
    title = "Gather facts and check every host"

    def plan(self, run: Run, host: Host) -> list[Change]:
        run.facts.pop(host.name, None)
        found = host_facts.problems(run.cluster, host.machine, facts_of(run, host))
        if found:
            raise HostRefused("; ".join(found))
        return []
