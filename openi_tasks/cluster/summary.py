"""The summary `inv cluster.check` prints: hosts, roles, SKUs, etcd members, the API endpoint."""

from __future__ import annotations

from collections import Counter

from ..config import Cluster, Machine
from ..report import Reporter

HOST_TABLE_LIMIT = 60


def _login(machine: Machine) -> str:
    ways = [w for w, used in (("key file", machine.ssh_key), ("password", machine.password)) if used]
    return f"{machine.user}, port {machine.port}, {' or '.join(ways) or 'agent/default keys'}"


def summarize(cluster: Cluster, reporter: Reporter, all_hosts: bool = False) -> None:
    roles = Counter(m.role for m in cluster.machines)
    endpoint = cluster.endpoint
    reporter.table(
        f"cluster {cluster.id} ({cluster.path})",
        ("", ""),
        [
            ("hosts", len(cluster.machines)),
            ("roles", ", ".join(f"{roles[r]} {r}" for r in ("master", "worker", "proxy") if roles[r])),
            ("API endpoint", f"{endpoint.mode}: {endpoint.url}" + (f" ({endpoint.host})" if endpoint.host else "")),
            ("etcd members", cluster.etcd_initial_cluster),
            ("Kubernetes", f"{cluster.kubernetes.kubernetes_version}, network {cluster.kubernetes.network_plugin}"),
            ("etcd image", cluster.etcd_image),
            ("host keys", f"{cluster.operator.host_key_policy} ({cluster.operator.known_hosts})"),
        ],
    )
    per_sku = Counter(m.sku_name for m in cluster.machines)
    reporter.table(
        "machine SKUs",
        ("sku", "hosts", "gpu", "vcores", "memory GiB", "os"),
        [
            (
                name,
                per_sku[name],
                f"{sku.gpu.count} x {sku.gpu.type}" if sku.gpu else "-",
                sku.cpu.vcore if sku.cpu else "-",
                f"{sku.mem:g}" if sku.mem is not None else "-",
                sku.os or "-",
            )
            for name, sku in cluster.skus.items()
        ],
    )
    roles_file = cluster.roles.k8s_role
    reporter.table(
        "roles (k8s-role-definition.yaml)",
        ("role", "hosts", "components"),
        [(r, roles[r], ", ".join(c.name for c in roles_file[r].component) if r in roles_file else "-") for r in ("master", "worker", "proxy")],
    )
    if len(cluster.machines) <= HOST_TABLE_LIMIT or all_hosts:
        reporter.table(
            "hosts",
            ("hostname", "address", "role", "sku", "etcdid", "ssh login", "labels"),
            [
                (
                    m.hostname,
                    m.address,
                    m.role,
                    m.sku_name,
                    m.etcdid or "",
                    _login(m),
                    ", ".join(f"{k}={v}" for k, v in m.labels.items()),
                )
                for m in cluster.machines
            ],
        )
    else:
        reporter.info(f"{len(cluster.machines)} hosts (list them all with --all-hosts)")
