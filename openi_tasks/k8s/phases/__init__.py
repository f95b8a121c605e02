"""Every phase of the k8s tasks, one module per phase family. A task module composes them.

`deploy_phases` is the deploy's list in order; maintenance tasks insert and remove phases by
name (`phase.insert_before`, `insert_after`, `without`) rather than splicing lists by hand.
"""

from __future__ import annotations

from ...phase import Step, Together
from .addons import Addons
from .connect import Connect
from .control_plane import ControlPlane
from .docker import Docker
from .endpoint import Endpoint
from .etcd import Etcd
from .facts import Facts
from .gpu import GpuRuntime
from .images import NodeImages
from .kubeconfig import Kubeconfig
from .lock import Lock, Unlock
from .packages import ContainerRuntime, Packages
from .prepare import Prepare
from .ready import NodesReady
from .workers import Workers


def deploy_phases(break_lock: bool = False) -> list[Step]:
    """etcd, the endpoint and the packages touch different things: they run together. So do the
    control plane and the workers' first images (which their kubelets then find)."""
    return [
        Connect(), Facts(), Lock(break_lock=break_lock), Prepare(), Docker(), Together(Etcd(), Endpoint(), Packages()),
        GpuRuntime(), ContainerRuntime(), Together(ControlPlane(), NodeImages()), Workers(), Addons(), Kubeconfig(), NodesReady(), Unlock(),
    ]
