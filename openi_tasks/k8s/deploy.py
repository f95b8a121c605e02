"""`inv k8s.deploy`: the deploy phases run against the cluster, with its state directory and PKI."""

from __future__ import annotations

from typing import Iterable

from ..config import Cluster
from ..inventory import Inventory
from ..phase import PhaseOutcome, PhaseRunner, Run
from ..report import Reporter
from ..state import state_dir
from .phases import deploy_phases


def deploy(
    cluster: Cluster,
    reporter: Reporter,
    *,
    dry_run: bool = False,
    only: Iterable[str] = (),
    skip: Iterable[str] = (),
    break_lock: bool = False,
) -> list[PhaseOutcome]:
    """Run the deploy phases; raise `RunFailed` after the first failing phase."""
    runner = PhaseRunner(deploy_phases(), only=only, skip=skip)  # unknown phase names fail here
    state = state_dir(cluster)
    if not dry_run:
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
    with Inventory(cluster) as inventory:
        run = Run(cluster, inventory, reporter, dry_run=dry_run, state_dir=state, options={"break_lock": break_lock})
        outcomes = runner.run(run)
        for accepted in inventory.known_hosts.accepted:
            reporter.warn(f"trusted a new host key (first use): {accepted}")
        return outcomes
