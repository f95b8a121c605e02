"""The service engine against the FAKE API (tests/fakekube.py), and the shipped services' manifests."""

from __future__ import annotations

import dataclasses
import io
import shutil
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from rich.console import Console

from openi_tasks.config import load_cluster
from openi_tasks.config.files import VirtualCluster
from openi_tasks.config.generate import write_configuration
from openi_tasks.errors import OpenIError
from openi_tasks.hadoop.prepare import prepare
from openi_tasks.hadoop.reconfigure import reconfigure
from openi_tasks.report import Reporter
from openi_tasks.services.catalog import ServiceCatalogError, load_services
from openi_tasks.services.engine import ServiceEngine, ServiceNotReady
from openi_tasks.services.render import service_context

from .fakekube import FakeApiError, FakeClock, FakeClusterApi
from .conftest import EXAMPLE
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
    assert "service.yaml:4: servicelist.b.colour: unknown key in service b" in text
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


FAN = """
servicelist:
  base: {prerequisite: None, templatelist: [base.yaml], manifests: [base.yaml], labels: [pai-master]}
  left: {prerequisite: [base], templatelist: [left.yaml], manifests: [left.yaml]}
  right: {prerequisite: [base], templatelist: [right.yaml], manifests: [right.yaml]}
  top: {prerequisite: [left, right], templatelist: [top.yaml], manifests: [top.yaml]}
"""


def test_services_that_do_not_depend_on_each_other_are_waited_for_together(tmp_path, cluster, fake):
    """left and right both need only base: both are applied once base is ready and come up in the
    same 6 (fake) seconds; top waits for both. One after another would take 4 waits, not 3."""
    clock, api = fake
    files = {f"{name}/{name}.yaml.template": DEPLOYMENT.format(name=name) for name in ("base", "left", "right", "top")}
    services = load_services(*catalog(tmp_path, FAN, files))
    engine, _ = engine_for(cluster, fake, services)
    outcomes = engine.deploy()
    assert [o.name for o in outcomes][0] == "base" and [o.name for o in outcomes][-1] == "top"
    applied = [entry[2] for entry in api.log if entry[0] == "apply"]
    assert applied.index("top") > max(applied.index("left"), applied.index("right"))
    assert 3 * api.ready_after <= clock.now < 4 * api.ready_after, clock.now


def test_one_service_alone_or_with_its_prerequisites(tmp_path, cluster, fake):
    _, api = fake
    services = load_services(*catalog(tmp_path, CHAIN, FILES))
    engine, _ = engine_for(cluster, fake, services)
    assert [o.name for o in engine.deploy(["top"], with_prerequisites=True)] == ["base", "middle", "top"]
    api.log.clear()
    assert [o.name for o in engine.deploy(["top"])] == ["top"]
    assert {entry[2] for entry in api.log if entry[0] == "apply"} == {"top"}
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
    with pytest.raises(FakeApiError, match="nodes not found: ghost, spook"):
        api.label_nodes({"spook": {"a": "b"}, "m1": {}, "ghost": {"a": "b"}})


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


def with_hadoop(directory: Path, tmp_path: Path) -> object:
    """The configuration in `directory`, with a local Hadoop tarball, prepared (as hadoop.prepare)."""
    tarball = hadoop_tarball(tmp_path / "hadoop-2.9.0.tar.gz", "2.9.0")
    path = directory / "services-configuration.yaml"
    data = yaml.safe_load(path.read_text())
    data.setdefault("hadoop", {}).update({"custom-hadoop-binary-path": str(tarball), "hadoop-version": "2.9.0"})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    cluster = load_cluster(directory)
    prepare(cluster)
    return cluster


@pytest.fixture
def prepared(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENI_STATE_DIR", str(tmp_path / "state"))
    machines = [dict(m) for m in MACHINES]
    machines[2]["node-exporter"] = "true"
    # Workers of three kinds: no GPU, 4 GPUs (w1, w2), 8 GPUs.
    machines += [{"hostname": "w3", "hostip": "10.3.0.13", "machine-type": "small", "k8s-role": "worker", "pai-worker": "true"},
                 {"hostname": "w4", "hostip": "10.3.0.14", "machine-type": "gpu8", "k8s-role": "worker", "pai-worker": "true"}]
    skus = {**SKUS, "gpu8": {"mem": 128, "cpu": {"vcore": 48}, "gpu": {"type": "a100", "count": 8}}}
    directory = write_configuration(tmp_path / "config2", machines, skus=skus, services={
        "cluster": {"docker-registry-info": {"docker-namespace": "openi", "docker-registry-domain": "registry.local:5000",
                                             "docker-username": "robot", "docker-password": "REGISTRY-s3cret",
                                             "docker-tag": "v1", "secret-name": "regsecret"}},
        "restserver": {"jwt-secret": "JWT-s3cret", "default-pai-admin-password": "ADMIN-s3cret"}})
    return with_hadoop(directory, tmp_path)


def check_catalog(cluster) -> dict[str, tuple[str, ...]]:
    """Deploy the whole shipped catalog through the FAKE API; check schema and placement by flags.

    Returns each workload's hosts.
    """
    clock = FakeClock()
    api = FakeClusterApi(clock, {m.hostname.lower(): {} for m in cluster.nodes})
    engine = ServiceEngine(cluster, load_services(), api, reporter()[0], clock=clock, sleep=clock.sleep)
    everything = engine.render(list(load_services().values()))
    version = cluster.kubernetes.kubernetes_version.lstrip("v")
    for service in everything:
        for obj in service.objects:
            kubernetes_validate.validate(obj, version, strict=True)
    engine.deploy()
    placed = {}
    for (_, kind, _, name), obj in api.objects.items():
        if kind in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
            placed[name] = api.status(obj).nodes

    def hosts(flag: str) -> set[str]:
        return {m.hostname.lower() for m in cluster.machines if m.node_labels.get(flag) == "true"}

    masters, workers = hosts("pai-master"), hosts("pai-worker")
    daemons = {"drivers": hosts("openi-gpu"),
               "node-exporter": hosts("node-exporter"),
               "hadoop-namenode": masters, "hadoop-resourcemanager": masters, "hadoop-jobhistory": masters,
               "hadoop-datanode": workers}
    # Node managers: one DaemonSet per GPU count, holding all of its hosts' GPUs.
    gpus = {m.hostname.lower(): m.sku.gpu.count if m.sku.gpu else 0 for m in cluster.machines}
    for host in workers:
        daemons.setdefault(f"hadoop-nodemanager-gpu-{gpus[host]}" if gpus[host] else "hadoop-nodemanager", set()).add(host)
    for name, expected in daemons.items():
        assert set(placed.get(name, ())) == expected, (name, placed.get(name), expected)
    for (_, kind, _, name), obj in api.objects.items():
        if kind == "DaemonSet" and name.startswith("hadoop-nodemanager"):
            limits = obj["spec"]["template"]["spec"]["containers"][0].get("resources", {}).get("limits", {})
            assert {limits.get("nvidia.com/gpu", 0)} == {gpus[h] for h in placed[name]}, (name, limits)
    for name in ("frameworklauncher", "rest-server", "webportal", "prometheus", "grafana", "pylon", "end-to-end-test"):
        assert len(placed[name]) == 1 and set(placed[name]) <= masters, (name, placed[name])
    zookeepers = {f"zookeeper-{m.labels['zkid']}": (m.hostname.lower(),) for m in cluster.machines if "zkid" in m.labels}
    assert {n: p for n, p in placed.items() if n.startswith("zookeeper-")} == zookeepers
    expected_names = set(daemons) | set(zookeepers) | {"frameworklauncher", "rest-server", "webportal", "prometheus",
                                                       "grafana", "pylon", "end-to-end-test"}
    assert set(placed) == expected_names
    for service in everything:  # no secret of the configuration outside a Secret
        for obj in service.objects:
            if obj["kind"] != "Secret":
                text = yaml.safe_dump(obj)
                for secret in _secrets_of(cluster):
                    assert secret not in text, (service.spec.name, obj["kind"], obj["metadata"]["name"])
    return placed


def _secrets_of(cluster) -> list[str]:
    values = [m.password for m in cluster.machines] + [
        cluster.services.cluster.docker_registry_info.docker_password,
        cluster.services.restserver.jwt_secret, cluster.services.restserver.default_pai_admin_password]
    return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


def test_the_catalog_with_a_small_configuration(prepared):
    placed = check_catalog(prepared)
    assert placed["zookeeper-1"] == ("m1",) and placed["zookeeper-2"] == ("w1",)
    assert placed["drivers"] == ("w1", "w2", "w4")
    assert placed["node-exporter"] == ("w2",)
    assert placed["hadoop-datanode"] == ("w1", "w2", "w3", "w4")
    assert (placed["hadoop-nodemanager"], placed["hadoop-nodemanager-gpu-4"], placed["hadoop-nodemanager-gpu-8"]) == (
        ("w3",), ("w1", "w2"), ("w4",))
    assert {"JWT-s3cret", "ADMIN-s3cret", "REGISTRY-s3cret"} <= set(_secrets_of(prepared))


def test_the_catalog_with_the_bundled_example(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENI_STATE_DIR", str(tmp_path / "state"))
    directory = Path(shutil.copytree(EXAMPLE, tmp_path / "example"))
    placed = check_catalog(with_hadoop(directory, tmp_path))
    assert placed["node-exporter"] == ("openi-master-2", "openi-master-3", "openi-worker-1", "openi-worker-2")
    assert placed["drivers"] == ("openi-worker-1", "openi-worker-2")


def test_nodes_carry_exactly_their_machines_labels_and_a_removed_flag_leaves(prepared):
    clock = FakeClock()
    api = FakeClusterApi(clock, {m.hostname.lower(): {} for m in prepared.nodes})
    engine = ServiceEngine(prepared, load_services(), api, reporter()[0], clock=clock, sleep=clock.sleep)
    engine.deploy()
    assert api.nodes["w4"] == {"kubernetes.io/hostname": "w4", "pai-worker": "true", "openi-gpu": "true",
                               "openi-gpu-type": "a100", "openi-gpu-count": "8"}
    assert api.status(api.objects[("apps/v1", "DaemonSet", "default", "node-exporter")]).nodes == ("w2",)
    # The operator takes node-exporter off w2 and deploys again: the label goes, and the daemon with it.
    w2 = prepared.by_name["w2"]
    labels = {k: v for k, v in w2.labels.items() if k != "node-exporter"}
    engine.cluster = dataclasses.replace(prepared, machines=tuple(
        dataclasses.replace(m, labels=labels) if m is w2 else m for m in prepared.machines))
    engine.deploy()
    assert "node-exporter" not in api.nodes["w2"] and api.nodes["w2"]["openi-gpu"] == "true"
    assert api.status(api.objects[("apps/v1", "DaemonSet", "default", "node-exporter")]).nodes == ()


def test_openi_spellings_of_the_platform_flags_place_like_the_original(tmp_path):
    machines = [dict(m) for m in MACHINES]
    machines[0]["openi-master"] = machines[0].pop("pai-master")
    machines[1]["openi-worker"] = machines[1].pop("pai-worker")
    cluster = load_cluster(write_configuration(tmp_path / "c", machines, skus=SKUS))
    assert cluster.by_name["m1"].node_labels["pai-master"] == "true"
    assert cluster.by_name["w1"].node_labels["pai-worker"] == "true"


def test_rest_servers_secrets_are_only_in_its_secret(prepared):
    engine = ServiceEngine(prepared, load_services(), None, reporter()[0])
    (rest,) = engine.render([load_services()["rest-server"]])
    secret = next(o for o in rest.objects if o["kind"] == "Secret")
    assert secret["stringData"]["jwt-secret"] == "JWT-s3cret"
    deployment = next(o for o in rest.objects if o["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["JWT_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "rest-server-secrets", "key": "jwt-secret"}


def test_every_long_running_container_has_a_readiness_probe(prepared):
    engine = ServiceEngine(prepared, load_services(), None, reporter()[0])
    for service in engine.render(list(load_services().values())):
        for obj in service.objects:
            if obj["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
                for container in obj["spec"]["template"]["spec"]["containers"]:
                    assert container.get("readinessProbe"), (service.spec.name, obj["metadata"]["name"])


def test_every_pod_pulls_with_the_registry_secret(prepared):
    """In a closed network every image, upstream ones included, comes from the operator's registry."""
    engine = ServiceEngine(prepared, load_services(), None, reporter()[0])
    secret = prepared.services.cluster.docker_registry_info.secret_name
    pods = 0
    for service in engine.render(list(load_services().values())):
        for obj in service.objects:
            if obj["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
                pods += 1
                assert obj["spec"]["template"]["spec"].get("imagePullSecrets") == [{"name": secret}], \
                    (service.spec.name, obj["metadata"]["name"])
    assert pods >= 12


def test_every_pod_may_run_on_a_flagged_kubernetes_master(prepared):
    """kubeadm taints masters; the original ran pai-master's services on the Kubernetes master."""
    engine = ServiceEngine(prepared, load_services(), None, reporter()[0])
    pods = 0
    for service in engine.render(list(load_services().values())):
        for obj in service.objects:
            if obj["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
                pods += 1
                assert {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"} \
                    in obj["spec"]["template"]["spec"]["tolerations"], (service.spec.name, obj["metadata"]["name"])
    assert pods >= 12


def test_a_missing_secret_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENI_STATE_DIR", str(tmp_path / "state"))
    directory = write_configuration(tmp_path / "c", MACHINES, skus=SKUS, services={
        "cluster": {"docker-registry-info": {"docker-namespace": "o", "docker-registry-domain": "r:5000",
                                             "docker-tag": "t", "secret-name": "s"}}})
    engine = ServiceEngine(load_cluster(directory), load_services(), None, reporter()[0])
    with pytest.raises(OpenIError, match="restserver.jwt-secret is not set in services-configuration.yaml"):
        engine.render([load_services()["rest-server"]])


def test_service_context_refers_to_external_images_by_configured_names(prepared):
    images = service_context(prepared)["images"]
    assert images["hadoop-run"] == "registry.local:5000/openi/hadoop-run:v1"
    assert images["rest-server"] == prepared.services.images.rest_server


def test_hadoop_reconfigure_stops_replaces_the_configuration_and_starts_again(prepared):
    clock = FakeClock()
    fake = clock, FakeClusterApi(clock, {m.hostname: {} for m in prepared.machines})
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
    daemons = {"hadoop-namenode", "hadoop-datanode", "hadoop-resourcemanager", "hadoop-jobhistory",
               "hadoop-nodemanager", "hadoop-nodemanager-gpu-4", "hadoop-nodemanager-gpu-8"}
    deleted = [i for i, (a, k, n) in enumerate(actions) if a == "delete" and k == "DaemonSet"]
    applied = [i for i, (a, k, n) in enumerate(actions) if a == "apply" and k == "DaemonSet"]
    assert {actions[i][2] for i in deleted} == {actions[i][2] for i in applied} == daemons
    assert actions[0][:2] == ("delete", "DaemonSet") and max(deleted) < min(applied)  # all stopped, then started
    assert ("delete", "ConfigMap", "hadoop-resourcemanager-configuration") in actions
    after = api.objects[key]["data"]["capacity-scheduler.xml"]
    assert "yarn.scheduler.capacity.root.vc1.capacity" in after and "<value>40.00</value>" in after



def test_a_changed_configuration_rolls_the_pods_that_read_it_and_only_those(prepared):
    from openi_tasks.services.render import CONFIGURATION_CHECKSUM
    from openi_tasks.state import StateDir

    clock = FakeClock()
    fake = clock, FakeClusterApi(clock, {m.hostname: {} for m in prepared.machines})
    _, api = fake
    engine, _ = engine_for(prepared, fake, load_services())

    def checksums() -> dict[str, str]:
        return {name: (obj["spec"]["template"]["metadata"].get("annotations") or {}).get(CONFIGURATION_CHECKSUM)
                for (_, kind, _, name), obj in api.objects.items() if kind == "DaemonSet" and name.startswith("hadoop-")}

    engine.deploy()
    first = checksums()
    assert all(first.values()), first  # every Hadoop daemon reads its role's config map
    engine.deploy()
    assert checksums() == first  # the same files: the same pods
    site = StateDir.of(prepared).hadoop_configuration / "resourcemanager" / "yarn-site.xml"
    site.write_text(site.read_text().replace("</configuration>", "<!-- changed --></configuration>"))
    engine.deploy()
    second = checksums()
    assert second["hadoop-resourcemanager"] != first["hadoop-resourcemanager"]
    assert {n: v for n, v in second.items() if n != "hadoop-resourcemanager"} == \
        {n: v for n, v in first.items() if n != "hadoop-resourcemanager"}


@pytest.mark.parametrize("entry, message", [
    ("{prerequisite: [{a: 1}]}", "servicelist.x.prerequisite: must be a word or a list of words, not dict"),
    ("{timeout: soon}", "servicelist.x.timeout: must be a number of seconds from 1 to 86400, not 'soon'"),
    ("{timeout: -1}", "servicelist.x.timeout: must be a number of seconds from 1 to 86400, not -1"),
    ("{deploy: maybe}", "servicelist.x.deploy: must be true or false, not 'maybe'"),
    ("{start: [a, b]}", "servicelist.x.start: must be one word, not a list"),
    ("[not, a, mapping]", "servicelist.x: must be a mapping"),
])
def test_a_wrong_value_in_a_catalog_entry_is_named_with_its_line(tmp_path, entry, message):
    service_yaml, root = catalog(tmp_path, f"servicelist:\n  x: {entry}\n", {})
    with pytest.raises(ServiceCatalogError) as info:
        load_services(service_yaml, root)
    assert f"service.yaml:2: {message}" in str(info.value)


def test_a_number_as_a_service_name_and_bytes_that_are_not_utf8(tmp_path):
    service_yaml, root = catalog(tmp_path, "servicelist:\n  42: {}\n", {})
    with pytest.raises(ServiceCatalogError, match=r"service.yaml:2: servicelist.42: service name 42 must be"):
        load_services(service_yaml, root)
    service_yaml.write_bytes(b"servicelist:\n  x: {start: \xff\xfe}\n")
    with pytest.raises(ServiceCatalogError, match=r"service.yaml:2: is not UTF-8 text"):
        load_services(service_yaml, root)


UNAVAILABLE = "rpc error: code = Unavailable desc = dial tcp 10.0.0.2:5000: connect: connection refused"
NOT_FOUND = ('rpc error: code = NotFound desc = failed to pull and unpack image "reg/x:bad": failed to resolve '
             'reference "reg/x:bad": reg/x:bad: not found')


def _pod(reason: str, age: float, message: str, now: float = 10_000.0):
    from datetime import datetime, timezone
    from types import SimpleNamespace as NS

    waiting = NS(reason=reason, message=message)
    return NS(metadata=NS(name="p1", creation_timestamp=datetime.fromtimestamp(now - age, timezone.utc)),
              spec=NS(node_name="worker1"),
              status=NS(init_container_statuses=None,
                        container_statuses=[NS(image="reg/x:bad", state=NS(waiting=waiting))]))


@pytest.mark.parametrize("reason, age, message, fails", [
    ("ErrImagePull", 10, UNAVAILABLE, False),         # the kubelet retries: a registry may be restarting
    ("ImagePullBackOff", 200, UNAVAILABLE, True),     # still failing after PULL_PATIENCE
    ("ErrImagePull", 5, NOT_FOUND, True),             # the registry said the tag is not there: at once
    ("ImagePullBackOff", 5, f"Back-off pulling image \"reg/x:bad\": ErrImagePull: {NOT_FOUND}", True),
    ("InvalidImageName", 1, "invalid reference format", True),  # never pullable
    ("ContainerCreating", 500, "", False),            # not a pull failure
])
def test_an_image_that_cannot_be_pulled_fails_the_service_early(reason, age, message, fails):
    from openi_tasks.services.api import _unpullable

    why = _unpullable([_pod(reason, age, message)], now=10_000.0)
    assert bool(why) is fails
    if fails:
        assert why.startswith(f"pod p1 on worker1: {reason} for reg/x:bad ({message[:40]}")


def test_a_nodes_labels_are_compared_with_what_openi_tasks_applied_before():
    """services.deploy lists the Nodes once and applies labels only to nodes that differ: a value
    differs, or a label that openi-tasks applied before (its managedFields say so) is left out."""
    from kubernetes.client import V1ManagedFieldsEntry, V1Node, V1ObjectMeta

    from openi_tasks.kube import NodeState, _applied_labels

    def owned(manager, operation, *keys):
        return V1ManagedFieldsEntry(manager=manager, operation=operation,
                                    fields_v1={"f:metadata": {"f:labels": {f"f:{k}": {} for k in keys}}})

    node = V1Node(metadata=V1ObjectMeta(name="w1", labels={"kubernetes.io/hostname": "w1", "pai-worker": "true",
                                                           "team": "a"}, managed_fields=[
        owned("kubelet", "Update", "kubernetes.io/hostname"), owned("openi-tasks", "Apply", "pai-worker"),
        owned("someone", "Apply", "team"), owned("openi-tasks", "Update", "team")]))
    assert _applied_labels(node) == {"pai-worker"}
    state = NodeState("w1", True, "v1", False, {}, labels=node.metadata.labels, applied_labels=_applied_labels(node))
    assert not state.labels_differ({"pai-worker": "true"})
    assert not state.labels_differ({"pai-worker": "true", "team": "a"})  # another's label, same value
    assert state.labels_differ({"pai-worker": "false"})
    assert state.labels_differ({"pai-worker": "true", "zkid": "1"})
    assert state.labels_differ({})  # the apply would remove pai-worker
