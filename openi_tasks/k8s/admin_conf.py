"""The cluster's admin kubeconfig: fetched from the first master, pointed at the API endpoint,
and kept (0600) in the state directory as `admin.conf`."""

from __future__ import annotations

import yaml

from ..config import Cluster

ADMIN_CONF = "/etc/kubernetes/admin.conf"


def for_operator(cluster: Cluster, admin_conf: bytes) -> str:
    """kubeadm's admin.conf with the endpoint's URL and names that say which cluster it is."""
    data = yaml.safe_load(admin_conf)
    cluster_entry, user_entry = data["clusters"][0], data["users"][0]
    cluster_entry["name"] = cluster.id
    cluster_entry["cluster"]["server"] = cluster.endpoint.url
    user_entry["name"] = f"{cluster.id}-admin"
    data["contexts"] = [{"name": cluster.id, "context": {"cluster": cluster.id, "user": f"{cluster.id}-admin"}}]
    data["current-context"] = cluster.id
    return yaml.safe_dump(data, sort_keys=False)
