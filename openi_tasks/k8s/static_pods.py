"""The control plane's static pods on a master, restarted in place: kubelet starts a component
again when its process ends."""

from __future__ import annotations

import shlex

COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def restart_command(components: tuple[str, ...] = COMPONENTS, timeout: int = 180) -> str:
    """Stop every component's process at once, then wait until kubelet has started a new one of
    each (at once, because kubelet's restart of each takes tens of seconds). Processes are matched
    by their command line's first word: a process name is cut to 15 characters, so
    `pgrep -x kube-controller-manager` never matches."""
    patterns = [shlex.quote(f"^{name}( |$)") for name in components]
    before = [f"old{i}=$(pgrep -f {p} | tr '\\n' ' ')" for i, p in enumerate(patterns)]
    stop = [f"pkill -f {p} || true" for p in patterns]
    wait = (f"running() {{ for i in $(seq 1 {timeout}); do new=$(pgrep -f \"$1\" | tr '\\n' ' '); "
            f"if [ -n \"$new\" ] && [ \"$new\" != \"$2\" ]; then return 0; fi; sleep 1; done; "
            f"echo \"$3 did not run again within {timeout}s\" >&2; return 1; }}")
    checks = [f"running {p} \"$old{i}\" {shlex.quote(name)}" for i, (p, name) in enumerate(zip(patterns, components))]
    return "; ".join(before + stop + [wait, " && ".join(checks)])
