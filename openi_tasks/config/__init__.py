"""The cluster configuration directory: files -> validated, immutable `Cluster`."""

import os

# The configuration holds passwords: no installed pydantic plugin may observe its validation.
# (Looking for plugins would also scan every installed package's entry points at start-up.)
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from .cluster import load_cluster  # noqa: E402
from .model import Cluster, Endpoint, EtcdMember, Machine  # noqa: E402
from .problems import Problem  # noqa: E402

__all__ = ["Cluster", "Endpoint", "EtcdMember", "Machine", "Problem", "load_cluster"]
