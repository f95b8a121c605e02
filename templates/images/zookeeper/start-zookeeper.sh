#!/bin/sh
# ZOOKEEPER_ID: this member's id (its host's zkid); ZOOKEEPER_SERVERS: "1=host1,2=host2,...";
# ZOOKEEPER_DATA: the data directory (a host path).
set -eu
data="${ZOOKEEPER_DATA:-/var/lib/zookeeper}"
mkdir -p "$data"
echo "${ZOOKEEPER_ID:?set ZOOKEEPER_ID}" > "$data/myid"
conf=/tmp/zoo.cfg
{
  echo "tickTime=2000"; echo "initLimit=10"; echo "syncLimit=5"
  echo "dataDir=$data"; echo "clientPort=${ZOOKEEPER_PORT:-2181}"
  echo "4lw.commands.whitelist=ruok,stat"
  for server in $(echo "${ZOOKEEPER_SERVERS:?set ZOOKEEPER_SERVERS}" | tr ',' ' '); do
    echo "server.${server%%=*}=${server#*=}:2888:3888"
  done
} > "$conf"
exec java -cp "/usr/share/java/*:/etc/zookeeper/conf" org.apache.zookeeper.server.quorum.QuorumPeerMain "$conf"
