"""`inv hadoop.reconfigure`: stop Hadoop's services, regenerate their configuration, start again."""

from __future__ import annotations

from ..services.engine import ServiceEngine
from .prepare import prepare

HADOOP_SERVICE = "hadoop-service"


def reconfigure(engine: ServiceEngine) -> None:
    engine.clean([HADOOP_SERVICE])  # its DaemonSets and its configuration maps
    prepare(engine.cluster)
    engine.deploy([HADOOP_SERVICE])  # new configuration maps, then the daemons, waited for
