#!/bin/sh
# End-to-end checks run as a Job: HDFS takes and returns a file, the REST server answers.
set -eu
stamp=$(date +%s)
echo "openi end-to-end $stamp" > /tmp/e2e.txt
hdfs dfs -mkdir -p /openi-e2e
hdfs dfs -put -f /tmp/e2e.txt "/openi-e2e/$stamp.txt"
hdfs dfs -cat "/openi-e2e/$stamp.txt" | grep -q "openi end-to-end $stamp"
hdfs dfs -rm -f "/openi-e2e/$stamp.txt"
curl -fsS "${REST_SERVER_URI:?set REST_SERVER_URI}/api/v1" >/dev/null
echo "end-to-end test passed"
