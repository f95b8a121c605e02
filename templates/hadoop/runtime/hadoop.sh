#!/bin/sh
# Hadoop's commands for a runtime assembled from Maven artifacts by `inv hadoop.prepare`
# (hadoop-maven-repository): Apache's tarball has bin/hadoop, hdfs, yarn and mapred scripts,
# Maven has only the jars. This script is installed under each of those names and starts the
# Java class that Apache's script starts for the subcommands the platform uses.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
HADOOP_HOME=${HADOOP_HOME:-$here}
HADOOP_CONF_DIR=${HADOOP_CONF_DIR:-$HADOOP_HOME/etc/hadoop}
export HADOOP_HOME HADOOP_CONF_DIR
for env in hadoop-env.sh yarn-env.sh mapred-env.sh; do
    if [ -f "$HADOOP_CONF_DIR/$env" ]; then . "$HADOOP_CONF_DIR/$env"; fi
done
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
CLASSPATH="$HADOOP_CONF_DIR:$HADOOP_HOME/share/hadoop/lib/*:$HADOOP_HOME/share/hadoop/hdfs${HADOOP_CLASSPATH:+:$HADOOP_CLASSPATH}"

usage() {
    echo "usage: $command SUBCOMMAND [ARGS]; subcommands here: $1" >&2
    exit 2
}

command=$(basename "$0")
subcommand=${1:-}
[ $# -gt 0 ] && shift
log_dir=${HADOOP_LOG_DIR:-$HADOOP_HOME/logs}
case "$command $subcommand" in
    "hdfs namenode") class=org.apache.hadoop.hdfs.server.namenode.NameNode ;;
    "hdfs datanode") class=org.apache.hadoop.hdfs.server.datanode.DataNode ;;
    "hdfs dfs") class=org.apache.hadoop.fs.FsShell ;;
    "hdfs dfsadmin") class=org.apache.hadoop.hdfs.tools.DFSAdmin ;;
    "yarn resourcemanager") class=org.apache.hadoop.yarn.server.resourcemanager.ResourceManager
                            log_dir=${YARN_LOG_DIR:-$log_dir} ;;
    "yarn nodemanager") class=org.apache.hadoop.yarn.server.nodemanager.NodeManager
                        log_dir=${YARN_LOG_DIR:-$log_dir} ;;
    "yarn application") class=org.apache.hadoop.yarn.client.cli.ApplicationCLI ;;
    "yarn node") class=org.apache.hadoop.yarn.client.cli.NodeCLI ;;
    "yarn queue") class=org.apache.hadoop.yarn.client.cli.QueueCLI ;;
    "yarn rmadmin") class=org.apache.hadoop.yarn.client.cli.RMAdminCLI ;;
    "mapred historyserver") class=org.apache.hadoop.mapreduce.v2.hs.JobHistoryServer ;;
    "mapred job") class=org.apache.hadoop.mapred.JobClient ;;
    "hadoop jar") class=org.apache.hadoop.util.RunJar ;;
    "hadoop fs") class=org.apache.hadoop.fs.FsShell ;;
    "hadoop classpath") echo "$CLASSPATH"; exit 0 ;;
    "hadoop version") class=org.apache.hadoop.util.VersionInfo ;;
    hadoop\ *.*) class=$subcommand ;;  # a class, run with HADOOP_CLASSPATH added
    hdfs\ *) usage "namenode datanode dfs dfsadmin" ;;
    yarn\ *) usage "resourcemanager nodemanager application node queue rmadmin" ;;
    mapred\ *) usage "historyserver job" ;;
    *) usage "jar fs classpath version CLASSNAME" ;;
esac
# shellcheck disable=SC2086  # HADOOP_OPTS holds several options, as in Apache's scripts
exec "$JAVA" -Dhadoop.log.dir="$log_dir" -Dhadoop.home.dir="$HADOOP_HOME" \
    -Dhadoop.root.logger="${HADOOP_ROOT_LOGGER:-INFO,console}" ${HADOOP_OPTS:-} \
    -cp "$CLASSPATH" "$class" "$@"
