"""YARN's capacity-scheduler queues from `hadoop.virtualClusters`, as the original made them.

Each virtual cluster becomes a queue with its capacity (percent). `default` takes what the others
leave, on top of its own capacity when the configuration names it (the original's example did). When the capacities add up to more than 100, every queue is scaled down proportionally
(and `default` gets nothing); configuration loading already warned about it. The capacities are
written with two decimals and always add up to exactly 100.00, as YARN requires.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Mapping

HUNDRED = Decimal(100)
CENT = Decimal("0.01")


def queue_capacities(virtual_clusters: Mapping[str, float]) -> dict[str, Decimal]:
    """Queue name -> capacity with two decimals, `default` included; the values sum to 100.00."""
    wanted = {name: Decimal(str(capacity)) for name, capacity in virtual_clusters.items()}
    total = sum(wanted.values(), Decimal(0))
    if total > HUNDRED:
        scaled = {name: (value * HUNDRED / total).quantize(CENT, ROUND_HALF_EVEN) for name, value in wanted.items()}
    else:
        scaled = {name: value.quantize(CENT, ROUND_HALF_EVEN) for name, value in wanted.items()}
    scaled["default"] = scaled.get("default", Decimal("0.00")) + max(Decimal(0), HUNDRED - sum(scaled.values(), Decimal(0)))
    # Rounding can leave a few hundredths over or under: the largest queue takes them.
    remainder = HUNDRED - sum(scaled.values(), Decimal(0))
    if remainder:
        largest = max(scaled, key=lambda name: (scaled[name], name))
        scaled[largest] += remainder
    return scaled


def capacity_scheduler_properties(virtual_clusters: Mapping[str, float]) -> dict[str, str]:
    """The capacity-scheduler.xml properties that define the queues."""
    capacities = queue_capacities(virtual_clusters)
    names = ["default"] + sorted(n for n in capacities if n != "default")
    properties = {"yarn.scheduler.capacity.root.queues": ",".join(names)}
    for name in names:
        prefix = f"yarn.scheduler.capacity.root.{name}"
        properties[f"{prefix}.capacity"] = f"{capacities[name]:.2f}"
        properties[f"{prefix}.maximum-capacity"] = "100"
        properties[f"{prefix}.state"] = "RUNNING"
        properties[f"{prefix}.acl_submit_applications"] = "*"
    return properties
