"""gpu-runtime: NVIDIA's container runtime on the hosts whose machine type has GPUs, nothing on
the others.

From NVIDIA's apt repository (`kubernetes.nvidia-toolkit-repository`, mirrorable) unless
`kubernetes.nvidia-toolkit-source` is `preinstalled`, when the phase only checks that it is there.
NVIDIA's own `nvidia-ctk runtime configure` is not run: it rewrites containerd's configuration,
which the container-runtime phase owns; that phase makes `nvidia` one of containerd's runtimes
on these hosts, so no later deploy can remove it.
"""

from __future__ import annotations

from ...errors import OpenIError
from ...phase import Change, Phase
from ...run import Run
from ...ssh import Host
from .packages import APT, NVIDIA_RUNTIME, add_apt_repository

PACKAGE = "nvidia-container-toolkit"
KEYRING = "/etc/apt/keyrings/nvidia-container-toolkit.gpg"


class GpuRuntime(Phase):
    name = "gpu-runtime"
    title = "NVIDIA's container runtime on GPU hosts"

    def should_run(self, run: Run) -> bool:
        return any(m.gpu_count for m in run.cluster.machines)

    def hosts(self, run: Run) -> list[Host]:
        return [h for h in run.hosts() if h.machine.gpu_count]

    def plan(self, run: Run, host: Host) -> list[Change]:
        if host.sh(f"test -x {NVIDIA_RUNTIME}").exited == 0:
            return []
        k = run.cluster.kubernetes
        if k.nvidia_toolkit_source == "preinstalled":
            raise OpenIError(f"{NVIDIA_RUNTIME} is not on {host.name}, whose machine type {host.machine.sku_name} has "
                             f"GPUs (kubernetes.nvidia-toolkit-source: preinstalled: install {PACKAGE} there, or "
                             f"let the deploy install it: repository)")
        repo = k.nvidia_toolkit_repository.rstrip("/")
        source = f"deb [signed-by={KEYRING}] {repo}/$(ARCH) /"
        command = (
            f"{APT} update && {APT} install -y ca-certificates curl gpg && "
            f"{add_apt_repository(repo + '/gpgkey', KEYRING, source, PACKAGE)} && "
            f"{APT} update && {APT} install -y {PACKAGE}"
        )
        return [Change(f"install {PACKAGE} from {repo}: {command}", command)]
