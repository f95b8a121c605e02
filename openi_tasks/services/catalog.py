"""The platform's services: `service.yaml`'s `servicelist`, in the original's format plus declarations.

    servicelist:
      hadoop-service:
        prerequisite: [cluster-configuration]       # started first ("None": none)
        templatelist: [hadoop-name-node.yaml]       # rendered from templates/services/<service>/<file>.template
        manifests: [hadoop-name-node.yaml]          # Kubernetes objects to apply (rendered or static files)
        configmaps:                                 # config maps made from files
          - {name: hadoop-namenode-configuration, directory: "{{ hadoop_configuration }}/namenode"}
          - {name: some-settings, files: [settings.json]}
        pull-secret: true                           # the registry Secret from docker-registry-info
        labels: [pai-master, pai-worker]            # machine flags this service needs as node labels
        timeout: 600                                # seconds to become ready
        deploy: false                               # only for services.clean (the cleaning DaemonSet)
        start: start.sh                             # optional hooks, for what cannot be declared
        stop: stop.sh

What "ready" means follows from the manifests: every Deployment, StatefulSet and DaemonSet rolled
out, every Job complete. Problems (unknown prerequisite, a cycle, a missing file) are reported
before anything is applied, naming the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import OpenIError
from ..graph import CycleError, dependency_order
from ..render import TEMPLATES
from ..service_yaml import SERVICE_YAML, entries, words

SERVICES = TEMPLATES / "services"
KNOWN_KEYS = ("prerequisite", "templatelist", "manifests", "configmaps", "pull-secret", "labels", "timeout",
              "deploy", "start", "stop", "startscript", "stopscript")


class ServiceCatalogError(OpenIError):
    """service.yaml's servicelist (or a service's files) is wrong; nothing was applied."""

    exit_code = 2


@dataclass(frozen=True)
class ConfigMapSpec:
    name: str
    files: tuple[str, ...] = ()
    directory: str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    prerequisites: tuple[str, ...]
    templates: tuple[str, ...]
    manifests: tuple[str, ...]
    configmaps: tuple[ConfigMapSpec, ...]
    pull_secret: bool
    labels: tuple[str, ...]
    timeout: int
    deploy: bool
    start: str | None
    stop: str | None
    directory: Path


def load_services(service_yaml: Path = SERVICE_YAML, root: Path = SERVICES) -> dict[str, ServiceSpec]:
    listed, problems = entries(service_yaml, "servicelist", "service", KNOWN_KEYS, ServiceCatalogError)
    services = {}
    for name, entry in listed.items():
        configmaps = []
        for cm in entry.get("configmaps") or []:
            if not isinstance(cm, dict) or "name" not in cm or not (cm.get("files") or cm.get("directory")):
                problems.append(f"service {name}: each configmap needs a name and files or a directory")
                continue
            configmaps.append(ConfigMapSpec(str(cm["name"]), words(cm.get("files")), cm.get("directory")))
        spec = ServiceSpec(
            name=name,
            prerequisites=words(entry.get("prerequisite")),
            templates=words(entry.get("templatelist")),
            manifests=words(entry.get("manifests")),
            configmaps=tuple(configmaps),
            pull_secret=bool(entry.get("pull-secret", False)),
            labels=words(entry.get("labels")),
            timeout=int(entry.get("timeout", 600)),
            deploy=bool(entry.get("deploy", True)),
            start=entry.get("start") or entry.get("startscript"),
            stop=entry.get("stop") or entry.get("stopscript"),
            directory=root / name,
        )
        problems += _missing_files(spec)
        services[name] = spec
    for spec in services.values():
        for needed in spec.prerequisites:
            if needed not in services:
                problems.append(f"service {spec.name}: its prerequisite {needed} is not in the servicelist")
    if not problems:
        try:
            dependency_order({n: s.prerequisites for n, s in services.items()})
        except CycleError as exc:
            problems.append(f"services: {exc}")
    if problems:
        raise ServiceCatalogError(f"{service_yaml}:\n  " + "\n  ".join(problems))
    return services


def _missing_files(spec: ServiceSpec) -> list[str]:
    problems = []
    for template in spec.templates:
        if not (spec.directory / f"{template}.template").is_file():
            problems.append(f"service {spec.name}: template {spec.directory / (template + '.template')} does not exist")
    produced = set(spec.templates)
    files = list(spec.manifests) + [f for cm in spec.configmaps for f in cm.files]
    for file in files:
        if file not in produced and not (spec.directory / file).is_file():
            problems.append(f"service {spec.name}: {file} is neither a template nor a file in {spec.directory}")
    for hook in (spec.start, spec.stop):
        if hook and not (spec.directory / hook).is_file():
            problems.append(f"service {spec.name}: hook {spec.directory / hook} does not exist")
    return problems


def deploy_order(services: dict[str, ServiceSpec], names: list[str] | None = None,
                 with_prerequisites: bool = False) -> list[ServiceSpec]:
    """Services to deploy, prerequisites first. Named services alone, unless with their prerequisites."""
    unknown = [n for n in names or [] if n not in services]
    if unknown:
        raise ServiceCatalogError(f"unknown service {', '.join(unknown)}; the services are: {', '.join(services)}")
    graph = {n: s.prerequisites for n, s in services.items()}
    if names and not with_prerequisites:
        order = [n for n in dependency_order(graph) if n in names]
    else:
        order = dependency_order(graph, names or [n for n, s in services.items() if s.deploy])
    return [services[n] for n in order]
