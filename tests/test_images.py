"""The image catalog and build contexts, without Docker: order, errors, references."""

from __future__ import annotations

from pathlib import Path

import re
import pytest

from openi_tasks.config import load_cluster
from openi_tasks.graph import CycleError, dependency_order
from openi_tasks.dockerbuild import inputs_hash
from openi_tasks.images.build import prepare_context, template_context
from openi_tasks.images.catalog import CatalogError, build_order, load_images, used_by

from .conftest import EXAMPLE, ORIGINAL


def catalog(tmp_path: Path, imagelist: str, contexts: dict[str, dict[str, str]]) -> tuple[Path, Path]:
    (tmp_path / "service.yaml").write_text(imagelist)
    for name, files in contexts.items():
        for relative, text in files.items():
            path = tmp_path / "images" / name / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return tmp_path / "service.yaml", tmp_path / "images"


def test_the_shipped_catalog_loads_in_dependency_order():
    images = load_images()
    order = [s.name for s in build_order(images)]
    assert set(order) == {"base-image", "hadoop-run", "zookeeper", "cleaning-image", "end-to-end-test", "prometheus",
                          "node-exporter", "nginx"}
    for spec in images.values():
        if spec.prerequisite and spec.name in order:
            assert order.index(spec.prerequisite) < order.index(spec.name)
    assert [s.name for s in build_order(images, ["end-to-end-test"])] == ["base-image", "hadoop-run", "end-to-end-test"]
    # The stand-in is built only when named: a real cluster's registry never gets it by accident.
    assert [s.name for s in build_order(images, ["service-stand-in"])] == ["base-image", "service-stand-in"]


def test_a_stand_in_the_configuration_runs_is_built_and_pushed_without_naming_it(example_dir):
    """The testbed names the service stand-in in images.rest-server (and others): images.build and
    images.push with no --name must then make it, or services.deploy fails on a pull (issue 27)."""
    images = load_images()
    assert used_by(load_cluster(example_dir), images) == set()
    services = example_dir / "services-configuration.yaml"
    text = services.read_text()
    info = load_cluster(example_dir).services.cluster.docker_registry_info
    stand_in = f"{info.docker_registry_domain}/{info.docker_namespace}/service-stand-in:{info.docker_tag}"
    assert "  rest-server: docker.io/openpai/rest-server:v1.8.0\n" in text
    services.write_text(text.replace("  rest-server: docker.io/openpai/rest-server:v1.8.0\n", f"  rest-server: {stand_in}\n"))
    used = used_by(load_cluster(example_dir), images)
    assert used == {"service-stand-in"}
    order = [s.name for s in build_order(images, None, used)]
    assert "service-stand-in" in order and order.index("base-image") < order.index("service-stand-in")


def test_every_problem_is_named_before_anything_is_built(tmp_path):
    service, contexts = catalog(tmp_path, """
imagelist:
  a: {templatelist: [dockerfile], prerequisite: ghost}
  b: {templatelist: [dockerfile], prerequisite: None, colour: blue}
  c: {templatelist: [missing], prerequisite: None}
  d: {templatelist: None, prerequisite: None}
""", {"a": {"dockerfile.template": "FROM x\n"}, "b": {"dockerfile.template": "FROM x\n"}, "c": {"Dockerfile": ""}})
    with pytest.raises(CatalogError) as info:
        load_images(service, contexts)
    text = str(info.value)
    assert "image a: its prerequisite ghost is not in the imagelist" in text
    assert re.search(r"service.yaml:\d+: imagelist.b.colour: unknown key in image b", text)
    assert "image c: template" in text and "missing.template does not exist" in text
    assert "image d: its build context" in text and "does not exist" in text


def test_a_cycle_is_named(tmp_path):
    service, contexts = catalog(tmp_path, """
imagelist:
  a: {prerequisite: c}
  b: {prerequisite: a}
  c: {prerequisite: b}
""", {n: {"Dockerfile": "FROM x\n"} for n in "abc"})
    with pytest.raises(CatalogError, match=r"prerequisites form a cycle: (a -> c -> b -> a|c -> b -> a -> c|b -> a -> c -> b)"):
        load_images(service, contexts)


def test_unknown_image_name():
    with pytest.raises(CatalogError, match="unknown image nope; the images are: base-image"):
        build_order(load_images(), ["nope"])


def test_dependency_order_is_stable_and_complete():
    graph = {"leaf": ["middle"], "middle": ["base"], "base": [], "other": ["base"]}
    assert dependency_order(graph) == ["base", "middle", "leaf", "other"]
    assert dependency_order(graph, ["leaf"]) == ["base", "middle", "leaf"]
    with pytest.raises(CycleError) as info:
        dependency_order({"x": ["y"], "y": ["x"]})
    assert info.value.cycle == ["x", "y", "x"]


def test_references_follow_the_original():
    assert load_cluster(EXAMPLE).image_ref("zookeeper") == "registry.example.com:5000/openi/zookeeper:latest"
    assert load_cluster(ORIGINAL).image_ref("zookeeper") == "your_registry_namespace/zookeeper:1.10"  # domain "public"


def test_templates_render_with_the_cluster_and_a_missing_copy_source_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENI_STATE_DIR", str(tmp_path / "state"))
    cluster = load_cluster(EXAMPLE)
    images = load_images()
    context = template_context(cluster, images)
    base = prepare_context(images["base-image"], tmp_path / "base", context)
    assert (base / "dockerfile").read_text().splitlines()[1] == "FROM docker.io/library/ubuntu:22.04"
    with pytest.raises(CatalogError, match=r"image hadoop-run: copy source .*hadoop-2\.9\.0\.tar\.gz does not exist"):
        prepare_context(images["hadoop-run"], tmp_path / "hadoop", context)
    (tmp_path / "state" / "hadoop").mkdir(parents=True)
    (tmp_path / "state" / "hadoop" / "hadoop-2.9.0.tar.gz").write_bytes(b"not really hadoop")
    hadoop = prepare_context(images["hadoop-run"], tmp_path / "hadoop2", context)
    dockerfile = (hadoop / "dockerfile").read_text()
    assert "FROM registry.example.com:5000/openi/base-image:latest" in dockerfile
    assert "openjdk-8-jre-headless" in dockerfile  # Hadoop 2.x needs Java 8
    assert (hadoop / "copied_file" / "hadoop-2.9.0.tar.gz").read_bytes() == b"not really hadoop"


def test_inputs_hash_follows_content_and_parent(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    first = inputs_hash(tmp_path, "sha256:parent1")
    assert inputs_hash(tmp_path, "sha256:parent1") == first
    assert inputs_hash(tmp_path, "sha256:parent2") != first
    (tmp_path / "Dockerfile").write_text("FROM x\nRUN true\n")
    assert inputs_hash(tmp_path, "sha256:parent1") != first
