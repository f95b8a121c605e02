"""facts: learn every host's OS, ports, disk, kernel and Docker, and refuse hosts that cannot work."""

from __future__ import annotations

from ...errors import OpenIError
from ...phase import Change, Phase
from ...run import Run
from ...ssh import Host
from .. import gpufacts, hostfacts


class HostRefused(OpenIError):
    """A host cannot take part in the deploy; the message says why."""


def facts_of(run: Run, host: Host) -> hostfacts.HostFacts:
    """This host's facts, gathered now unless the facts phase already did."""
    if host.name not in run.facts:
        disk = run.cluster.kubernetes.etcd_data_path if host.machine.is_master else "/var/lib"
        run.facts[host.name] = hostfacts.gather(host, disk)
    return run.facts[host.name]


class Facts(Phase):
    """`upgrading`: for k8s.upgrade, which is how hosts that run another version change it.
    `rejoining`: for k8s.repair, which resets a node and joins it again (on the configured runtime)."""

    name = "facts"
    title = "Gather facts and check every host"

    def __init__(self, upgrading: bool = False, rejoining: bool = False) -> None:
        self.upgrading = upgrading
        self.rejoining = rejoining

    def plan(self, run: Run, host: Host) -> list[Change]:
        run.facts.pop(host.name, None)
        facts = facts_of(run, host)
        found = hostfacts.problems(run.cluster, host.machine, facts, upgrading=self.upgrading, rejoining=self.rejoining)
        if found:
            raise HostRefused("; ".join(found))
        gpus = gpufacts.mismatch(host.machine, facts.gpus)
        if gpus:  # allowed by kubernetes.gpu-mismatch: warn, else it is one of the problems above
            run.reporter.warn(f"{host.name}: {gpus}")
        return []
