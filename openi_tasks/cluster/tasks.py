"""Tasks of the `cluster` namespace."""

from __future__ import annotations

from pathlib import Path

from invoke import Context, Exit

from ..report import Reporter
from ..cli import PATH_HELP, load, required, split_list, task


@task(help={"path": PATH_HELP, "all-hosts": "list every host even in a large cluster"})
def check(c: Context, reporter: Reporter, path: str | None = None, all_hosts: bool = False) -> None:
    """Validate the configuration directory and print a summary (contacts no host)."""
    from .summary import summarize
    cluster = load(c, path, reporter)
    summarize(cluster, reporter, all_hosts=all_hosts)
    reporter.info(f"{cluster.path}: valid")


@task(help={"path": PATH_HELP, "out": "directory to write the rendered files to (required)"})
def render(c: Context, reporter: Reporter, out: str | None = None, path: str | None = None) -> None:
    """Write every file a deploy would put on each host to OUT/<host>/..., without contacting any."""
    from ..k8s.files import render_cluster
    from ..render import write_tree
    from ..state import StateDir
    out = required(out, "--out DIR")
    cluster = load(c, path, reporter)
    files = render_cluster(cluster, StateDir.of(cluster))
    count = write_tree(Path(out), files)
    reporter.info(f"wrote {count} files for {len(files) - 1} hosts and the operator under {out}")


@task(
    help={
        "cmd": "the command to run (a shell command line)",
        "role": "only hosts of this k8s-role (master, worker, proxy)",
        "hosts": "only these hosts, comma-separated hostnames",
        "sudo": "run the command as root (sudo with the configured password when not root)",
        "path": PATH_HELP,
    }
)
def exec(  # noqa: A001 - the task is called exec on the command line
    c: Context,
    reporter: Reporter,
    cmd: str | None = None,
    role: str | None = None,
    hosts: str | None = None,
    sudo: bool = False,
    path: str | None = None,
) -> None:
    """Run one command on the selected hosts in parallel; print a row per host."""
    from ..run import open_run
    from . import exec as remote
    cmd = required(cmd, "--cmd COMMAND")
    cluster = load(c, path, reporter)
    with open_run(cluster, reporter, "exec") as run:
        selected = remote.select_hosts(cluster, run.inventory, role, split_list(hosts))
        outcomes = remote.run_everywhere(run.inventory, selected, cmd, sudo)
    remote.report(reporter, outcomes)
    if not all(o.ok for o in outcomes):
        raise Exit(code=1)
