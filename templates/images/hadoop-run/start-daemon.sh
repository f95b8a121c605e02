#!/bin/sh
# Start one Hadoop daemon in the foreground. HADOOP_ROLE is namenode, datanode, resourcemanager,
# nodemanager or historyserver; its configuration is mounted at $HADOOP_CONF_DIR.
set -eu
case "${HADOOP_ROLE:?set HADOOP_ROLE}" in
  namenode)
    if [ ! -d "${HDFS_NAME_DIR:-/var/lib/hadoop/name}/current" ]; then
      hdfs namenode -format -nonInteractive -force
    fi
    exec hdfs namenode ;;
  datanode) exec hdfs datanode ;;
  resourcemanager) exec yarn resourcemanager ;;
  nodemanager) exec yarn nodemanager ;;
  historyserver) exec mapred historyserver ;;
  *) echo "unknown HADOOP_ROLE $HADOOP_ROLE" >&2; exit 2 ;;
esac
