"""The control plane's static pods on a master, restarted in place: kubelet starts a component
again when its process ends."""

from __future__ import annotations

import shlex

COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
MANIFESTS = "/etc/kubernetes/manifests"


def process_pattern(component: str) -> str:
    """A component's processes for `pgrep -f`/`pkill -f`, shell-quoted: matched by their command
    line's first word, because a process name is cut to 15 characters, so
    `pgrep -x kube-controller-manager` never matches."""
    return shlex.quote(f"^{component}( |$)")


def stop_command(component: str, timeout: int = 60) -> str:
    """Stop a component for good: its manifest moved aside (kubelet does not start it again), its
    process sent SIGTERM (a graceful stop), then waited for until it has exited."""
    manifest = f"{MANIFESTS}/{component}.yaml"
    return (f"if test -f {manifest}; then mv {manifest} /etc/kubernetes/{component}.yaml.stopped; fi; "
            f"{terminate_command((component,), timeout)}")


def terminate_command(components: tuple[str, ...] = COMPONENTS, timeout: int = 60) -> str:
    """SIGTERM to the components' processes (a graceful stop: the API server answers what it holds
    and closes its connections), then a wait until none runs; fails after `timeout` seconds."""
    patterns = [process_pattern(name) for name in components]
    running = " || ".join(f"pgrep -f {p} >/dev/null" for p in patterns)
    return ("{ " + "; ".join(f"pkill -TERM -f {p} || true" for p in patterns) + "; "
            f"for i in $(seq 1 {timeout}); do if ! {{ {running}; }}; then break; fi; sleep 1; done; "
            f"if {running}; then echo '{', '.join(components)} still running {timeout} s after SIGTERM' >&2; false; fi; }}")


def restart_command(components: tuple[str, ...] = COMPONENTS, timeout: int = 180) -> str:
    """Stop every component's process at once, then wait until kubelet has started a new one of
    each (at once, because kubelet's restart of each takes tens of seconds)."""
    patterns = [process_pattern(name) for name in components]
    before = [f"old{i}=$(pgrep -f {p} | tr '\\n' ' ')" for i, p in enumerate(patterns)]
    stop = [f"pkill -f {p} || true" for p in patterns]
    wait = (f"running() {{ for i in $(seq 1 {timeout}); do new=$(pgrep -f \"$1\" | tr '\\n' ' '); "
            f"if [ -n \"$new\" ] && [ \"$new\" != \"$2\" ]; then return 0; fi; sleep 1; done; "
            f"echo \"$3 did not run again within {timeout}s\" >&2; return 1; }}")
    checks = [f"running {p} \"$old{i}\" {shlex.quote(name)}" for i, (p, name) in enumerate(zip(patterns, components))]
    return "; ".join(before + stop + [wait, " && ".join(checks)])
