"""Hadoop's per-role configuration, written from the cluster model into Hadoop's own defaults.

For each role (namenode, datanode, resourcemanager, nodemanager, jobhistory), the `etc/hadoop`
directory of the Hadoop tarball is copied and properties are set in its XML files and variables
in its env files. No patch files: a property is found by name and its value set, or added.

Where things run comes from the machines' flags: the name node, resource manager and job history
server on the first host flagged `pai-master: "true"` (the OpenI spelling `openi-master` too), data
nodes and node managers on the hosts flagged `pai-worker: "true"` (`openi-worker`), and the
ZooKeeper quorum from the hosts with a `zkid`. Data lives under `cluster.data-path`.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from ..config import Cluster, Machine
from ..errors import OpenIError
from .queues import capacity_scheduler_properties

ROLES = ("namenode", "datanode", "resourcemanager", "nodemanager", "jobhistory")
JAVA_HOME = "/usr/lib/jvm/openi-java"  # the hadoop-run image links its JVM here
ZOOKEEPER_PORT = 2181


class HadoopConfigError(OpenIError):
    """The cluster model cannot place Hadoop (or Hadoop's own files are not as expected)."""


@dataclass(frozen=True)
class HadoopLayout:
    master: Machine
    workers: tuple[Machine, ...]
    zookeepers: tuple[Machine, ...]
    data_path: str
    major_version: int


def layout(cluster: Cluster) -> HadoopLayout:
    master = cluster.platform_master()
    workers = cluster.flagged("pai-worker")
    if not workers:
        raise HadoopConfigError('no host is flagged pai-worker: "true" (where data nodes and node managers run)')
    zookeepers = tuple(sorted((m for m in cluster.machines if "zkid" in m.labels), key=lambda m: int(m.labels["zkid"])))
    version = cluster.services.hadoop.hadoop_version
    return HadoopLayout(master, workers, zookeepers, cluster.services.cluster.data_path.rstrip("/"),
                        int(version.split(".")[0]))


def role_settings(cluster: Cluster, hadoop: HadoopLayout) -> dict[str, dict[str, dict[str, str]]]:
    """role -> file -> property (or env variable) -> value."""
    master = hadoop.master.address  # addresses, not names: hosts resolve only their own name
    data = hadoop.data_path
    namenode_http = 9870 if hadoop.major_version >= 3 else 50070
    common = {
        "core-site.xml": {"fs.defaultFS": f"hdfs://{master}:9000", "hadoop.tmp.dir": f"{data}/hadooptmp"},
        "hdfs-site.xml": {
            "dfs.replication": str(min(3, len(hadoop.workers))),
            "dfs.namenode.rpc-address": f"{master}:9000",
            "dfs.namenode.http-address": f"{master}:{namenode_http}",
            "dfs.permissions.enabled": "false",
        },
        "yarn-site.xml": {
            "yarn.resourcemanager.hostname": master,
            "yarn.resourcemanager.scheduler.class":
                "org.apache.hadoop.yarn.server.resourcemanager.scheduler.capacity.CapacityScheduler",
            "yarn.nodemanager.aux-services": "mapreduce_shuffle",
            "yarn.log-aggregation-enable": "true",
        },
        "mapred-site.xml": {
            "mapreduce.framework.name": "yarn",
            "mapreduce.jobhistory.address": f"{master}:10020",
            "mapreduce.jobhistory.webapp.address": f"{master}:19888",
        },
        "hadoop-env.sh": {"JAVA_HOME": JAVA_HOME, "HADOOP_LOG_DIR": f"{data}/hadoop-logs"},
        "yarn-env.sh": {"YARN_LOG_DIR": f"{data}/yarn-logs"},
    }
    if hadoop.zookeepers:
        quorum = ",".join(f"{m.address}:{ZOOKEEPER_PORT}" for m in hadoop.zookeepers)
        common["core-site.xml"]["ha.zookeeper.quorum"] = quorum
        common["yarn-site.xml"]["hadoop.zk.address" if hadoop.major_version >= 3 else "yarn.resourcemanager.zk-address"] = quorum
    worker_skus = [m.sku for m in hadoop.workers]
    memory_mb = int(min(s.mem for s in worker_skus if s.mem) * 1024 * 0.8) if any(s.mem for s in worker_skus) else 8192
    vcores = min(s.cpu.vcore for s in worker_skus if s.cpu) if any(s.cpu for s in worker_skus) else 8
    extra = {
        "namenode": {"hdfs-site.xml": {"dfs.namenode.name.dir": f"file://{data}/hdfs/name"}},
        "datanode": {"hdfs-site.xml": {"dfs.datanode.data.dir": f"file://{data}/hdfs/data"}},
        "resourcemanager": {"capacity-scheduler.xml": capacity_scheduler_properties(
            {n: vc.capacity for n, vc in cluster.services.hadoop.virtual_clusters.items()})},
        "nodemanager": {"yarn-site.xml": {
            "yarn.nodemanager.local-dirs": f"{data}/yarn/local",
            "yarn.nodemanager.log-dirs": f"{data}/yarn/logs",
            "yarn.nodemanager.resource.memory-mb": str(memory_mb),
            "yarn.nodemanager.resource.cpu-vcores": str(vcores),
            "yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage":
                str(cluster.services.hadoop.nodemanager_max_disk_utilization_percent),
            "yarn.nodemanager.disk-health-checker.min-free-space-per-disk-mb":
                str(cluster.services.hadoop.nodemanager_min_free_disk_mb),
        }},
        "jobhistory": {"mapred-site.xml": {"mapreduce.jobhistory.done-dir": "/mr-history/done",
                                           "mapreduce.jobhistory.intermediate-done-dir": "/mr-history/tmp"}},
    }
    settings = {}
    for role in ROLES:
        files = {name: dict(values) for name, values in common.items()}
        for name, values in extra[role].items():
            files.setdefault(name, {}).update(values)
        settings[role] = files
    return settings


def set_properties(path: Path, properties: dict[str, str]) -> None:
    """Set each property of a Hadoop XML file (found by name, or added).

    What precedes <configuration> (declaration, stylesheet, license comment) is kept as it was;
    comments inside it are kept too.
    """
    text = path.read_text() if path.is_file() else "<configuration>\n</configuration>\n"
    start = text.find("<configuration")
    if start < 0:
        raise HadoopConfigError(f"{path}: not a Hadoop configuration file (no <configuration>)")
    prolog = text[:start] or '<?xml version="1.0" encoding="UTF-8"?>\n'
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    parser.feed(text[start:])
    root = parser.close()
    existing = {p.findtext("name"): p for p in root.findall("property")}
    for name, value in properties.items():
        element = existing.get(name)
        if element is None:
            element = ET.SubElement(root, "property")
            ET.SubElement(element, "name").text = name
        value_element = element.find("value")
        if value_element is None:
            value_element = ET.SubElement(element, "value")
        value_element.text = value
    ET.indent(root, space="  ")
    path.write_text(prolog + ET.tostring(root, encoding="unicode") + "\n")


def set_env(path: Path, variables: dict[str, str]) -> None:
    """Set `export NAME=value` lines in a Hadoop env script (replacing the NAME's own line)."""
    lines = path.read_text().splitlines() if path.is_file() else ["#!/usr/bin/env bash"]
    for name, value in variables.items():
        line = f"export {name}={value}"
        for i, existing in enumerate(lines):
            stripped = existing.strip()
            if stripped.startswith((f"export {name}=", f"{name}=", f"# export {name}=")):
                lines[i] = line
                break
        else:
            lines.append(line)
    path.write_text("\n".join(lines) + "\n")


def write_configuration(cluster: Cluster, defaults: Path, out: Path) -> dict[str, Path]:
    """`out/<role>/` for every role, from Hadoop's `etc/hadoop` defaults; role -> directory."""
    if not (defaults / "core-site.xml").is_file():
        raise HadoopConfigError(f"{defaults} does not look like Hadoop's etc/hadoop (no core-site.xml)")
    settings = role_settings(cluster, layout(cluster))
    written = {}
    for role, files in settings.items():
        target = out / role
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(defaults, target)
        mapred_template = target / "mapred-site.xml.template"  # Hadoop 2.x ships only the template
        if not (target / "mapred-site.xml").exists() and mapred_template.is_file():
            shutil.copy(mapred_template, target / "mapred-site.xml")
        for name, values in files.items():
            (set_env if name.endswith(".sh") else set_properties)(target / name, values)
        written[role] = target
    return written
