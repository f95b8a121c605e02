#!/bin/sh
# Remove everything inside the directories given in CLEAN_PATHS (one absolute host path per line,
# mounted under /host), then mark this node done (the DaemonSet's readiness probe checks the
# mark) and wait. A path is never split into words, and the root and system directories are
# refused here too, whatever the configuration's own checks let through.
set -eu
: "${CLEAN_PATHS:?set CLEAN_PATHS}"
printf '%s\n' "$CLEAN_PATHS" | while IFS= read -r path; do
  [ -n "$path" ] || continue
  case "$path" in
    /*) ;;
    *) echo "refusing $path: not an absolute path" >&2; exit 1 ;;
  esac
  real=$(cd "/host$path" 2>/dev/null && pwd -P) || { echo "nothing at $path"; continue; }
  case "${real#/host}" in
    ""|/|/bin|/boot|/dev|/etc|/home|/lib|/lib64|/opt|/proc|/root|/run|/sbin|/srv|/sys|/tmp|/usr|/var|/var/lib)
      echo "refusing $path: it is ${real#/host}" >&2; exit 1 ;;
  esac
  find "$real" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +
  echo "cleaned $path"
done
touch /tmp/cleaning-done
exec sleep infinity
