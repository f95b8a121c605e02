"""A service rendered: its files, and the objects the engine applies."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import Cluster
from ..errors import OpenIError
from ..images.catalog import load_images
from ..state import StateDir
from ..render import TemplateError, environment, render
from .catalog import ServiceCatalogError, ServiceSpec

NAMESPACE = "default"


@dataclass
class RenderedService:
    spec: ServiceSpec
    files: dict[str, str] = field(default_factory=dict)
    objects: list[dict[str, Any]] = field(default_factory=list)  # in the order they are applied


def service_context(cluster: Cluster) -> dict[str, Any]:
    """What every service template may use."""
    external = cluster.services.images
    driver = external.nvidia_driver or f"nvcr.io/nvidia/driver:{cluster.services.cluster.nvidia_drivers_version}-ubuntu22.04"
    return {
        "cluster": cluster,
        "k8s": cluster.kubernetes,
        "services": cluster.services,
        "namespace": NAMESPACE,
        "images": {**{name: cluster.image_ref(name) for name in load_images()},
                   "rest-server": external.rest_server, "webportal": external.webportal,
                   "frameworklauncher": external.frameworklauncher, "grafana": external.grafana,
                   "prometheus": external.prometheus, "node-exporter": external.node_exporter,
                   "nginx": external.nginx, "nvidia-driver": driver},
        "pull_secret": cluster.services.cluster.docker_registry_info.secret_name
        if cluster.services.cluster.docker_registry_info else None,
        "hadoop_configuration": str(StateDir.of(cluster).hadoop_configuration),
        "flagged": lambda flag: list(cluster.flagged(flag)),
        "platform_master": cluster.platform_master,
        "secret": _secret,
        "zookeeper_quorum": ",".join(f"{m.address}:2181" for m in sorted(
            (m for m in cluster.machines if "zkid" in m.labels), key=lambda m: int(m.labels["zkid"]))),
    }


def _secret(value: Any, key: str) -> str:
    """A secret's value for a Secret object; a clear error when the configuration does not set it."""
    if value is None:
        raise OpenIError(f"{key} is not set in services-configuration.yaml")
    return value.get_secret_value()


def pull_secret(cluster: Cluster) -> dict[str, Any]:
    """The registry's image-pull Secret (kubernetes.io/dockerconfigjson) from docker-registry-info."""
    info = cluster.services.cluster.docker_registry_info
    server = "https://index.docker.io/v1/" if info.docker_registry_domain == "public" else info.docker_registry_domain
    auths = {}
    if info.docker_username:
        password = info.docker_password.get_secret_value() if info.docker_password else ""
        token = base64.b64encode(f"{info.docker_username}:{password}".encode()).decode()
        auths[server] = {"username": info.docker_username, "password": password, "auth": token}
    config = base64.b64encode(json.dumps({"auths": auths}).encode()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": info.secret_name, "namespace": NAMESPACE, "labels": {"openi.service": "cluster-configuration"}},
            "data": {".dockerconfigjson": config}}


def render_service(spec: ServiceSpec, cluster: Cluster, context: dict[str, Any], data: bool = True) -> RenderedService:
    """The service's files and objects. Without `data`, config maps made from directories are
    named but not read (status and clean need the objects, not what they hold)."""
    rendered = RenderedService(spec)
    try:
        for template in spec.templates:
            rendered.files[template] = render(f"{spec.name}/{template}.template", root=spec.directory.parent, **context)
    except TemplateError as exc:
        raise ServiceCatalogError(f"service {spec.name}: {exc}") from None
    if spec.pull_secret:
        if cluster.services.cluster.docker_registry_info is None:
            raise ServiceCatalogError(f"service {spec.name}: needs cluster.docker-registry-info for its pull secret")
        rendered.objects.append(pull_secret(cluster))
    configmaps = {}
    for configmap in spec.configmaps:
        configmaps[configmap.name] = _configmap(spec, configmap, rendered.files, context, data)
        rendered.objects.append(configmaps[configmap.name])
    for manifest in spec.manifests:
        text = rendered.files.get(manifest) or (spec.directory / manifest).read_text()
        try:
            documents = [d for d in yaml.safe_load_all(text) if d]
        except yaml.YAMLError as exc:
            raise ServiceCatalogError(f"service {spec.name}: {manifest}: {exc}") from None
        for document in documents:
            document.setdefault("metadata", {}).setdefault("labels", {})["openi.service"] = spec.name
            _tolerate_control_plane(document)
            if data:
                _roll_on_configuration(document, configmaps)
            rendered.objects.append(document)
    return rendered


CONFIGURATION_CHECKSUM = "openi.io/configuration-checksum"


def _roll_on_configuration(document: dict[str, Any], configmaps: dict[str, dict[str, Any]]) -> None:
    """A workload whose pods read the service's config maps (as volumes or environment) carries
    their checksum in its pod template: a deploy that changes them (hadoop.prepare's files, say)
    then rolls the pods, which read them only as they start, instead of changing nothing they run."""
    template = (document.get("spec") or {}).get("template")
    pod = template.get("spec") if isinstance(template, dict) else None
    if not isinstance(pod, dict):
        return
    names = {(v.get("configMap") or {}).get("name") for v in pod.get("volumes") or [] if isinstance(v, dict)}
    for container in (pod.get("containers") or []) + (pod.get("initContainers") or []):
        names |= {(e.get("configMapRef") or {}).get("name") for e in container.get("envFrom") or []}
    used = sorted(name for name in names if name in configmaps)
    if used:
        digest = hashlib.sha256(json.dumps([configmaps[n]["data"] for n in used], sort_keys=True).encode()).hexdigest()
        template.setdefault("metadata", {}).setdefault("annotations", {})[CONFIGURATION_CHECKSUM] = digest[:16]


CONTROL_PLANE_TOLERATION = {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}


def _tolerate_control_plane(document: dict[str, Any]) -> None:
    """Let the platform's pods run on Kubernetes masters. They are placed by machine flags alone
    (pai-master, zkid, ...), and the original ran its services on the Kubernetes master; kubeadm
    taints masters, so without this a flagged master would never get its pods. Users' pods still
    do not tolerate the taint."""
    pod = (document.get("spec") or {}).get("template", {}).get("spec")
    if isinstance(pod, dict):
        tolerations = pod.setdefault("tolerations", [])
        if CONTROL_PLANE_TOLERATION not in tolerations:
            tolerations.append(dict(CONTROL_PLANE_TOLERATION))


def _configmap(spec: ServiceSpec, configmap, files: dict[str, str], context: dict[str, Any],
               read: bool = True) -> dict[str, Any]:
    data = {}
    for name in configmap.files:
        data[Path(name).name] = files.get(name) or (spec.directory / name).read_text()
    if configmap.directory and read:
        directory = Path(environment().from_string(configmap.directory).render(**context))
        if not directory.is_dir():
            raise OpenIError(f"service {spec.name}: config map {configmap.name} reads {directory}, which does not exist"
                             + (" (run inv hadoop.prepare first)" if "hadoop" in str(directory) else ""))
        for path in sorted(p for p in directory.iterdir() if p.is_file()):
            data[path.name] = path.read_text()
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": configmap.name, "namespace": NAMESPACE, "labels": {"openi.service": spec.name}},
            "data": data}
