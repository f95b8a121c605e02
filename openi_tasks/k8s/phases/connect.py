"""connect: reach every host over SSH (host keys verified) before anything else."""

from __future__ import annotations

from ...phase import Change, Phase
from ...run import Run
from ...ssh import Host


class Connect(Phase):
    name = "connect"
    title = "Connect to every host"

    def plan(self, run: Run, host: Host) -> list[Change]:
        host.open()
        return []
