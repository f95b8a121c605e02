"""The service engine against the FAKE API (tests/fakekube.py), and the shipped services' manifests."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from rich.console import Console

from openi_tasks.config import load_cluster
from openi_tasks.config.files import VirtualCluster
from openi_tasks.config.generate import write_configuration
from openi_tasks.hadoop.prepare import prepare
from openi_tasks.hadoop.reconfigure import reconfigure
from openi_tasks.report import Reporter
from openi_tasks.services.catalog import ServiceCatalogError, load_services
from openi_tasks.services.engine import ServiceEngine, ServiceNotReady
from openi_tasks.services.render import service_context

from .fakekube import FakeApiError, FakeClock, FakeClusterApi
from .test_hadoop import MACHINES, SKUS, hadoop_tarball

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      nodeSelector: {{pai-master: "true"}}
      containers: [{{name: main, image: "{{{{ images['base-image'] }}}}"}}]
"""


def reporter() -> tuple[Reporter, io.StringIO]:
    buffer = io.StringIO()
    return Reporter(Console(file=buffer, width=300, highlight=False)), buffer


def catalog(root: Path, servicelist: str, files: dict[str, str]) -> tuple[Path, Path]:
    (root / "service.yaml").write_text(servicelist)
    for relative, text in files.items():
        path = root / "services" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if relative.endswith(".sh"):
            path.chmod(0o755)
    return root / "service.yaml", root / "services"


CHAIN = """
servicelist:
  base:
    prerequisite: None
    templatelist: [settings.json]
    pull-secret: true
    configmaps: [{name: base-settings, files: [settings.json]}]
    labels: [pai-master]
  middle:
    prerequisite: [base]
    templatelist: [middle.yaml]
    manifests: [middle.yaml]
    timeout: 120
  top:
    prerequisite: [middle]
    templatelist: [top.yaml]
    manifests: [top.yaml]
  cleaning:
    prerequisite: None
    templatelist: [cleaning.yaml]
    manifests: [cleaning.yaml]
    deploy: false
"""
CLEANING = DEPLOYMENT.replace("Deployment", "DaemonSet").replace("  replicas: 2\n", "")
FILES = {
    "base/settings.json.template": '{"cluster": {{ cluster.id | tojson }}, "hosts": {{ cluster.machines | length }}}\n',
    "middle/middle.yaml.template": DEPLOYMENT.format(name="middle"),
    "top/top.yaml.template": DEPLOYMENT.format(name="top"),
    "cleaning/cleaning.yaml.template": CLEANING.format(name="cleaning"),
}


@pytest.fixture
def cluster(tmp_path):
    services = {"cluster": {"docker-registry-info": {"docker-namespace": "openi", "docker-registry-domain": "registry.local:5000",
                                                     "docker-username": "robot", "docker-password": "REGISTRY-s3cret",
                                                     "docker-tag": "v1", "secret-name": "regsecret"}},
                "restserver": {"jwt-secret": "JWT-s3cret", "default-pai-admin-password": "ADMIN-s3cret"}}
    return load_cluster(write_configuration(tmp_path / "config", MACHINES, skus=SKUS, services=services,
                                            operator={"state-dir": str(tmp_path / "state")}))


@pytest.fixture
def fake(cluster):
    clock = FakeClock()
    api = FakeClusterApi(clock, {m.hostname: {} for m in cluster.machines})
    return clock, api


def engine_for(cluster, fake, services) -> tuple[ServiceEngine, io.StringIO]:
    clock, api = fake
    report, out = reporter()
    return ServiceEngine(cluster, services, api, report, clock=clock, sleep=clock.sleep, poll=2.0), out


def test_catalog_problems_are_named_before_anything_is_applied(tmp_path):
    service_yaml, root = catalog(tmp_path, """
servicelist:
  a: {prerequisite: [ghost], templatelist: [x.yaml], manifests: [x.yaml]}
  b: {prerequisite: None, manifests: [missing.yaml], colour: red}
  c: {prerequisite: [d], start: start.sh}
  d: {prerequisite: [c]}
""", {"a/x.yaml.template": "{}"})
    with pytest.raises(ServiceCatalogError) as info:
        load_services(service_yaml, root)
    text = str(info.value)
    assert "service a: its prerequisite ghost is not in the servicelist" in text
    assert "service b: unknown key colour" in text
    assert "service b: missing.yaml is neither a template nor a file" in text
    assert "service c: hook" in text and "start.sh does not exist" in text


def test_a_cycle_is_named(tmp_path):
    service_yaml, root = catalog(tmp_path, "servicelist:\n  x: {prerequisite: [y]}\n  y: {prerequisite: [x]}\n", {})
    with pytest.raises(ServiceCatalogError, match=r"prerequisites form a cycle: (x -> y -> x|y -> x -> y)"):
        load_services(service_yaml, root)


def test_deploy_applies_in_dependency_order_waits_and_is_idempotent(tmp_path, cluster, fake):
    clock, api = fake
    services = load_services(*catalog(tmp_path, CHAIN, FILES))
    engine, out = engine_for(cluster, fake, services)
    outcomes = engine.deploy()
    assert [o.name for o in outcomes] == ["base", "middle", "top"]
    applied = [entry for entry in api.log if entry[0] == "apply"]
    assert applied == [("apply", "Secret", "regsecret"), ("apply", "ConfigMap", "base-settings"),
                       ("apply", "Deployment", "middle"), ("apply", "Deployment", "top")]
    assert ("label", "Node", "m1") in api.log and api.nodes["m1"]["pai-master"] == "true"
    assert "middle: waiting for Deployment middle 0/2" in out.getvalue()
    assert clock.now >= 12  # each Deployment took its (fake) time to become ready
    settings = api.objects[("v1", "ConfigMap", "default", "base-settings")]["data"]["settings.json"]
    assert settings == '{"cluster": "openi-test", "hosts": 3}\n'
    again, out = engine_for(cluster, fake, services)
    assert [o.changed for o in again.deploy()] == [0, 0, 0]
    assert "no changes" in out.getvalue()


def test_one_service_alone_or_with_its_prerequisites(tmp_path, cluster, fake):
    _, api = fake
    services = load_services(*catalog(tmp_path, CHAIN, FILES))
    engine, _ = engine_for(cluster, fake, services)
    assert [o.name for o in engine.deploy(["top"])] == ["top"]
    assert {entry[2] for entry in api.log if entry[0] == "apply"} == {"top"}
    assert [o.name for o in engine.deploy(["top"], with_prerequisites=True)] == ["base", "middle", "top"]
    with pytest.raises(ServiceCatalogError, match="unknown service nope"):
        engine.deploy(["nope"])


def test_a_service_that_is_never_ready_stops_the_run_with_its_pods_state(tmp_path, cluster, fake):
    clock, api = fake
    api.never_ready.add("middle")
    services = load_services(*catalog(tmp_path, CHAIN, FILES))
    engine, _ = engine_for(cluster, fake, services)
    with pytest.raises(ServiceNotReady) as info:
        engine.deploy()
    text = str(info.value)
    assert text.startswith("service middle did not become ready within 120s:")
    assert "Deployment middle: 0/2 ready" in text and "ImagePullBackOff (FAKE)" in text
    assert clock.now >= 120
    assert not any(entry[2] == "top" for entry in api.log), "nothing after the failing service"


def test_a_template_error_is_reported_before_anything_is_applied(tmp_path, cluster, fake):
    _, api = fake
    broken = dict(FILES, **{"top/top.yaml.template": "kind: Deployment\nmetadata:\n  name: {{ nothing.here }}\n"})
    services = load_services(*catalog(tmp_path, CHAIN, broken))
    engine, _ = engine_for(cluster, fake, services)
    with pytest.raises(ServiceCatalogError) as info:
        engine.deploy()
    assert str(info.value).startswith("service top: top/top.yaml.template:3: 'nothing' is undefined")
    assert api.log == []


def test_the_fake_api_refuses_what_the_real_one_would(tmp_path, cluster, fake):
    _, api = fake
    odd = dict(FILES, **{"top/top.yaml.template": "apiVersion: example.com/v1\nkind: Gizmo\nmetadata: {name: g}\n"})
    engine, _ = engine_for(cluster, fake, load_services(*catalog(tmp_path, CHAIN, odd)))
    with pytest.raises(FakeApiError, match='no matches for kind "Gizmo"'):
        engine.deploy()
    with pytest.raises(FakeApiError, match='nodes "ghost" not found'):
        api.label_node("ghost", {"a": "b"})


def test_clean_follows_the_original_sequence(tmp_path, cluster, fake):
    _, api = fake
    services = load_services(*catalog(tmp_path, CHAIN.replace("base:", "cluster-configuration:")
                                      .replace("[base]", "[cluster-configuration]"),
                                      {k.replace("base/", "cluster-configuration/"): v for k, v in FILES.items()}))
    engine, _ = engine_for(cluster, fake, services)
    engine.deploy()
    api.log.clear()
    removed = engine.clean()
    assert removed == ["top", "middle", "cleaning", "cluster-configuration"]
    sequence = [(action, name) for action, _, name in api.log]
    assert sequence == [("delete", "top"), ("delete", "middle"), ("apply", "cleaning"), ("delete", "cleaning"),
                        ("delete", "base-settings"), ("delete", "regsecret")]
    assert not any(key[1] in ("Deployment", "DaemonSet") for key in api.objects)


def test_clean_of_one_service_and_status(tmp_path, cluster, fake):
    services = load_services(*catalog(tmp_path, CHAIN, FILES))
    engine, _ = engine_for(cluster, fake, services)
    engine.deploy()
    rows = engine.status()
    assert ("middle", "Deployment middle", "2/2", "m1") in rows
    assert engine.clean(["top"]) == ["top"]
    assert ("top", "Deployment top", "0/1 (not ready)", "-") in engine.status()


def test_hooks_run_with_the_service_and_the_configuration(tmp_path, cluster, fake):
    marker = tmp_path / "hook-ran"
    hooked = CHAIN.replace("    timeout: 120\n", "    timeout: 120\n    start: start.sh\n")
    files = dict(FILES, **{"middle/start.sh": f'#!/bin/sh\necho "$OPENI_SERVICE $OPENI_CONFIG" > {marker}\n'})
    engine, _ = engine_for(cluster, fake, load_services(*catalog(tmp_path, hooked, files)))
    engine.deploy()
    assert marker.read_text().split() == ["middle", str(cluster.path)]


# --- the shipped services -----------------------------------------------------------------


@pytest.fixture
def prepared(cluster, tmp_path):
    tarball = hadoop_tarball(tmp_path / "hadoop-2.9.0.tar.gz", "2.9.0")
    directory = write_configuration(tmp_path / "config2", MACHINES, skus=SKUS, services={
        "cluster": {"docker-registry-info": {"docker-namespace": "openi", "docker-registry-domain": "registry.local:5000",
                                             "docker-username": "robot", "docker-password": "REGISTRY-s3cret",
                                             "docker-tag": "v1", "secret-name": "regsecret"}},
        "hadoop": {"custom-hadoop-binary-path": str(tarball)}}, operator={"state-dir": str(tmp_path / "state")})
    configured = load_cluster(directory)
    prepare(configured)
    return configured


def test_every_shipped_manifest_validates_against_the_kubernetes_schema(prepared, fake):
    engine, _ = engine_for(prepared, fake, load_services())
    version = prepared.kubernetes.kubernetes_version.lstrip("v")
    services = engine.render(list(load_services().values()))
    assert {s.spec.name for s in services} >= {"cluster-configuration", "cleaning", "hadoop-service"}
    for service in services:
        for obj in service.objects:
            kubernetes_validate.validate(obj, version, strict=True)


def test_shipped_services_place_workloads_on_exactly_the_flagged_hosts(prepared, fake):
    clock, api = fake
    engine, _ = engine_for(prepared, fake, load_services())
    engine.deploy()
    placed = {obj["metadata"]["name"]: api._placed_on(obj) for key, obj in api.objects.items() if key[1] == "DaemonSet"}
    masters = tuple(m.hostname for m in prepared.machines if m.labels.get("pai-master") == "true")
    workers = tuple(m.hostname for m in prepared.machines if m.labels.get("pai-worker") == "true")
    assert placed == {"hadoop-namenode": masters, "hadoop-resourcemanager": masters, "hadoop-jobhistory": masters,
                      "hadoop-datanode": workers, "hadoop-nodemanager": workers}
    configmap = api.objects[("v1", "ConfigMap", "default", "hadoop-namenode-configuration")]["data"]
    assert "dfs.namenode.name.dir" in configmap["hdfs-site.xml"]


def test_no_secret_value_appears_outside_a_secret(prepared, fake):
    engine, _ = engine_for(prepared, fake, load_services())
    for service in engine.render(list(load_services().values())):
        for obj in service.objects:
            if obj["kind"] == "Secret":
                continue
            text = yaml.safe_dump(obj)
            for secret in ("REGISTRY-s3cret", "JWT-s3cret", "ADMIN-s3cret"):
                assert secret not in text, (service.spec.name, obj["kind"], obj["metadata"]["name"])


def test_service_context_refers_to_external_images_by_configured_names(prepared):
    images = service_context(prepared)["images"]
    assert images["hadoop-run"] == "registry.local:5000/openi/hadoop-run:v1"
    assert images["rest-server"] == prepared.services.images.rest_server


def test_hadoop_reconfigure_stops_replaces_the_configuration_and_starts_again(prepared, fake):
    _, api = fake
    engine, _ = engine_for(prepared, fake, load_services())
    engine.deploy()
    key = ("v1", "ConfigMap", "default", "hadoop-resourcemanager-configuration")
    before = api.objects[key]["data"]["capacity-scheduler.xml"]
    assert "root.vc1" not in before
    # The operator adds a virtual cluster, then reconfigures.
    hadoop = prepared.services.hadoop.model_copy(update={"virtual_clusters": {"vc1": VirtualCluster(capacity=40)}})
    engine.cluster = dataclasses.replace(prepared, services=prepared.services.model_copy(update={"hadoop": hadoop}))
    api.log.clear()
    reconfigure(engine)
    actions = [(a, k, n) for a, k, n in api.log if n.startswith("hadoop-")]
    assert actions[0] == ("delete", "DaemonSet", "hadoop-jobhistory")
    assert ("delete", "ConfigMap", "hadoop-resourcemanager-configuration") in actions
    assert actions[-1] == ("apply", "DaemonSet", "hadoop-jobhistory")
    after = api.objects[key]["data"]["capacity-scheduler.xml"]
    assert "yarn.scheduler.capacity.root.vc1.capacity" in after and "<value>40.00</value>" in after

