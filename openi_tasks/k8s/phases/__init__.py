"""The phases of `inv k8s.deploy`, one module per phase family, in the order they run."""

from __future__ import annotations

from ...phase import Phase
from .addons import Addons
from .connect import Connect
from .control_plane import ControlPlane
from .docker import Docker
from .endpoint import Endpoint
from .etcd import Etcd
from .facts import Facts
from .kubeconfig import Kubeconfig
from .lock import Lock, Unlock
from .prepare import Prepare
from .workers import Workers


def deploy_phases() -> list[Phase]:
    return [
        Connect(), Facts(), Lock(), Prepare(), Docker(), Etcd(), Endpoint(),
        ControlPlane(), Workers(), Addons(), Kubeconfig(), Unlock(),
    ]
