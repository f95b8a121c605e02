"""The drivers service and a driver the host already has.

A GPU host whose own NVIDIA driver works (its nvidia-smi answers) carries the label
`openi-nvidia-driver: <version>` from k8s.deploy's facts, and the drivers DaemonSet does not run
there: its driver container would unload the host's driver and install another. What
services.deploy says about each such host, and whether its version is the configured one.
"""

from __future__ import annotations

from typing import Callable

from ..config import Cluster
from ..k8s.addon_objects import HOST_DRIVER_LABEL


def host_drivers(cluster: Cluster, labels_of: Callable[[str], dict[str, str]]) -> list[tuple[str, bool]]:
    """(line, whether the version differs from the configuration) per GPU host with its own driver."""
    wanted = cluster.services.cluster.nvidia_drivers_version
    lines = []
    for machine in cluster.nodes:
        found = labels_of(machine.hostname.lower()).get(HOST_DRIVER_LABEL) if machine.gpu_count else None
        if found is None:
            continue
        line = f"{machine.hostname}: NVIDIA driver {found} works on the host: left alone (no unload, no install)"
        differs = bool(wanted) and found != str(wanted)
        if differs:
            line += (f"; the configuration says nvidia-drivers-version {wanted}: upgrade the host's driver, or remove "
                     f"it for the drivers service to install {wanted}")
        lines.append((line, differs))
    return lines
