#!/bin/sh
# Run the command as the operator's own uid where that can be known, so that files written to the
# mounted state directory or configuration are not owned by root on the host.
# The uid is OPENI_UID, or the owner of the mounted ~/.openi (/root/.openi), or of /cluster-configuration.
set -e
owner_of() { stat -c "$1" "$2" 2>/dev/null; }
uid="${OPENI_UID:-}"
[ -n "$uid" ] || uid=$(owner_of %u /root/.openi) || true
[ -n "$uid" ] || uid=$(owner_of %u /cluster-configuration) || true
if [ "$(id -u)" = 0 ] && [ -n "$uid" ] && [ "$uid" != 0 ]; then
    gid="${OPENI_GID:-$(owner_of %g /root/.openi || owner_of %g /cluster-configuration || echo "$uid")}"
    groups="$gid"
    if [ -S /var/run/docker.sock ]; then
        groups="$groups,$(owner_of %g /var/run/docker.sock)"
    fi
    chmod 755 /root  # the mounts under /root must be reachable for that uid
    export HOME=/root USER=operator
    exec setpriv --reuid="$uid" --regid="$gid" --groups="$groups" -- "$@"
fi
exec "$@"
