"""The entry points: the `openi` command, and what both it and `inv` (through tasks.py) set up once
per process before any task module is imported."""

from __future__ import annotations

import atexit
import gc
import logging
import os

from invoke import Program


def prepare_process() -> None:
    """Process-wide settings, made here rather than as side effects of importing the library."""
    # The configuration holds passwords: no installed pydantic plugin may observe its validation.
    # (Looking for plugins would also scan every installed package's entry points at start-up.)
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # paramiko logs failures of its transport thread with tracebacks; they are reported per host
    # in words (ssh.errors.describe_error), so its log must not reach stderr on its own.
    logging.getLogger("paramiko").addHandler(logging.NullHandler())
    logging.getLogger("paramiko").propagate = False
    # At exit the interpreter runs one last full collection over everything imported (pydantic's
    # schemas, paramiko, invoke): about 45 ms of every command, to free memory the process is about
    # to give back anyway. Frozen objects are skipped by that collection; exit stays otherwise normal.
    atexit.register(gc.freeze)


def main() -> None:
    """`openi k8s.deploy ...`: the same tasks as `inv` in a checkout, from anywhere."""
    prepare_process()
    from . import __version__
    from .collection import namespace

    Program(namespace=namespace, name="openi-tasks", binary="openi", binary_names=["openi"],
            version=__version__).run()


if __name__ == "__main__":
    main()
