"""`inv k8s.deploy`: the deploy phases, in order, against the whole cluster."""

from __future__ import annotations

from typing import Iterable

from ..config import Cluster
from ..phase import PhaseOutcome, PhaseRunner
from ..report import Reporter
from ..run import open_run
from .phases import deploy_phases


def deploy(cluster: Cluster, reporter: Reporter, *, dry_run: bool = False, only: Iterable[str] = (),
           skip: Iterable[str] = (), break_lock: bool = False) -> list[PhaseOutcome]:
    """Run the deploy phases; raise `RunFailed` after the first failing phase."""
    runner = PhaseRunner(deploy_phases(break_lock=break_lock), only=only, skip=skip)  # unknown names fail here
    cluster.require_supported_versions()
    with open_run(cluster, reporter, "deploy", dry_run=dry_run) as run:
        return runner.run(run)
