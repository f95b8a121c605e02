"""The control plane's static pods on a master, restarted in place: kubelet starts a component
again when its process ends."""

from __future__ import annotations

import shlex

COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def restart_command(components: tuple[str, ...] = COMPONENTS, timeout: int = 180) -> str:
    """Stop each component's process, then wait until kubelet has started a new one. Processes are
    matched by their command line's first word: a process name is cut to 15 characters, so
    `pgrep -x kube-controller-manager` never matches."""
    steps = []
    for name in components:
        pattern = shlex.quote(f"^{name}( |$)")
        steps.append(
            f"old=$(pgrep -f {pattern} | tr '\\n' ' '); pkill -f {pattern} || true; new=; "
            f"for i in $(seq 1 {timeout}); do new=$(pgrep -f {pattern} | tr '\\n' ' '); "
            f"if [ -n \"$new\" ] && [ \"$new\" != \"$old\" ]; then break; fi; new=; sleep 1; done; "
            f"[ -n \"$new\" ] || {{ echo '{name} did not run again within {timeout}s' >&2; exit 1; }}"
        )
    return "; ".join(steps)
