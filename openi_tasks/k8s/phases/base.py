"""What several phases share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...phase import Phase
from ...ssh import Host

if TYPE_CHECKING:
    from ...run import Run


class OnFirstMaster(Phase):
    """A phase that acts once, on (or through) the first master."""

    parallel = False

    def hosts(self, run: "Run") -> list[Host]:
        return [run.first_master]
