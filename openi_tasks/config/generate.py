"""Write a configuration directory from data: used by the testbed, tests and benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROLE_DEFINITION = {
    "component-list": {},
    "k8s-role": {
        "master": {"component": [{"name": n} for n in ("etcd", "apiserver", "controller-manager", "scheduler", "kubelet")]},
        "worker": {"component": [{"name": "kubelet"}]},
        "proxy": {"component": [{"name": "kubelet"}, {"name": "haproxy"}]},
    },
}

DEFAULT_SKUS = {"standard": {"mem": 8, "cpu": {"vcore": 2}, "os": "debian12"}}


def write_configuration(
    directory: Path,
    machines: list[dict[str, Any]],
    *,
    clusterid: str = "openi-test",
    defaults: dict[str, Any] | None = None,
    skus: dict[str, Any] | None = None,
    operator: dict[str, Any] | None = None,
    kubernetes: dict[str, Any] | None = None,
    services: dict[str, Any] | None = None,
    header: str = "",
) -> Path:
    """Write the four files into `directory` (created). `machines` are machine-list entries."""
    directory.mkdir(parents=True, exist_ok=True)
    cluster: dict[str, Any] = {
        "default-machine-properties": defaults or {"username": "root", "sshport": 22},
        "machine-sku": skus or DEFAULT_SKUS,
        "machine-list": machines,
    }
    if operator:
        cluster["operator"] = operator
    service_config = {"cluster": {"clusterid": clusterid, "data-path": "/datastorage"}}
    for section, values in (services or {}).items():
        service_config.setdefault(section, {}).update(values)
    documents = {
        "cluster-configuration.yaml": cluster,
        "kubernetes-configuration.yaml": {"kubernetes": kubernetes or {}},
        "k8s-role-definition.yaml": ROLE_DEFINITION,
        "services-configuration.yaml": service_config,
    }
    for name, data in documents.items():
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
        (directory / name).write_text(header + text, encoding="utf-8")
    return directory
