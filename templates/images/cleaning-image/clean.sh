#!/bin/sh
# Remove everything inside the directories given in CLEAN_PATHS (host paths mounted under /host),
# then mark this node done (the DaemonSet's readiness probe checks the mark) and wait.
set -eu
for path in ${CLEAN_PATHS:?set CLEAN_PATHS}; do
  target="/host${path}"
  if [ -d "$target" ]; then
    find "$target" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
    echo "cleaned $path"
  fi
done
touch /tmp/cleaning-done
exec sleep infinity
