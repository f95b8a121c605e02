"""The cluster configuration directory: files -> validated, immutable `Cluster`."""

from .cluster import load_cluster
from .model import Cluster, Endpoint, EtcdMember, Machine
from .problems import Problem

__all__ = ["Cluster", "Endpoint", "EtcdMember", "Machine", "Problem", "load_cluster"]
