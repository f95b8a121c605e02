"""What several deploy phases share."""

from __future__ import annotations

from ...inventory import Host
from ...phase import Phase, Run


def first_master(run: Run) -> Host:
    return run.inventory.host(run.cluster.masters[0].hostname)


class OnFirstMaster(Phase):
    """A phase that acts once, on (or through) the first master."""

    parallel = False

    def hosts(self, run: Run) -> list[Host]:
        return [first_master(run)]
