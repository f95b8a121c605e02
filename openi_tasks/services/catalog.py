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
from ..service_yaml import SERVICE_YAML, entries, is_file, report, within

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
        for cm in entry.mappings("configmaps"):
            files, directory = cm.get("files") or [], cm.get("directory")
            if not isinstance(cm.get("name"), str) or not (files or directory) or not isinstance(files, list) \
                    or not all(isinstance(f, str) for f in files) or not isinstance(directory, (str, type(None))):
                problems.append(f"service {name}: each configmap needs a name, and a list of files or a directory")
                continue
            configmaps.append(ConfigMapSpec(cm["name"], tuple(files), directory))
        spec = ServiceSpec(
            name=name,
            prerequisites=entry.words("prerequisite"),
            templates=entry.words("templatelist"),
            manifests=entry.words("manifests"),
            configmaps=tuple(configmaps),
            pull_secret=entry.flag("pull-secret", False),
            labels=entry.words("labels"),
            timeout=entry.seconds("timeout", 600),
            deploy=entry.flag("deploy", True),
            start=entry.word("start") or entry.word("startscript"),
            stop=entry.word("stop") or entry.word("stopscript"),
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
    report(service_yaml, problems, ServiceCatalogError)
    return services


def _missing_files(spec: ServiceSpec) -> list[str]:
    problems = []
    inside = spec.directory.resolve()
    named = list(spec.templates) + list(spec.manifests) + [f for cm in spec.configmaps for f in cm.files] \
        + [hook for hook in (spec.start, spec.stop) if hook]
    outside = [name for name in named if not within(inside, name)]
    if outside:  # a file named in service.yaml is read from the service's own directory, never elsewhere
        return [f"service {spec.name}: {name} is not a file in {spec.directory}" for name in outside]
    for template in spec.templates:
        if not is_file(spec.directory / f"{template}.template"):
            problems.append(f"service {spec.name}: template {spec.directory / (template + '.template')} does not exist")
    produced = set(spec.templates)
    files = list(spec.manifests) + [f for cm in spec.configmaps for f in cm.files]
    for file in files:
        if file not in produced and not is_file(spec.directory / file):
            problems.append(f"service {spec.name}: {file} is neither a template nor a file in {spec.directory}")
    for hook in (spec.start, spec.stop):
        if hook and not is_file(spec.directory / hook):
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
