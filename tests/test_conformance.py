"""k8s.conformance without a cluster: what each mode selects, the suite's registries remapped to
the cluster's, the images read from the suite's own manifest, the counts from ginkgo's report, a
missing suite refused. The suite itself runs on the testbed (tests/test_platform.py)."""

from __future__ import annotations

import re
import textwrap

import pytest
import yaml

from openi_tasks.bundle.conformance import BUILT, SuiteImage, repo_list, suite_images
from openi_tasks.config import load_cluster
from openi_tasks.errors import OpenIError, UsageError
from openi_tasks.k8s import conformance
from openi_tasks.k8s.conformance import Progress, Suite, passes, tally_report


def test_quick_has_at_least_40_tests_across_the_areas_the_issue_names():
    names = conformance.QUICK
    assert len(names) >= 40 and len(set(names)) == len(names)
    for area in ("[sig-node] Pods", "[sig-network] Services", "[sig-network] DNS", "[sig-network] Networking",
                 "ConfigMap", "Secrets", "[sig-auth]", "[sig-api-machinery]"):
        assert sum(area in n for n in names) >= 2, area
    assert all("[Conformance]" in n and "[Serial]" not in n and "[Disruptive]" not in n for n in names)


def test_quick_is_one_parallel_pass_of_exactly_its_names():
    [one] = passes("quick", None, None)
    pattern = re.compile(one.focus)
    # ginkgo matches the full text, which starts with the suite's own container
    assert all(pattern.search(f"suite {n}") for n in conformance.QUICK)
    assert not pattern.search("[sig-node] Pods should get a host IP")  # anchored: a prefix is not a name
    assert "\\ " not in one.focus and "\\`" not in one.focus  # Go's syntax refuses those escapes
    assert one.labels == "Conformance" and one.procs > 1


def test_focus_narrows_quick_and_skip_is_added():
    [one] = passes("quick", "DNS", "hostname")
    kept = [n for n in conformance.QUICK if re.search(one.focus, f"suite {n}")]
    assert kept and all("DNS" in n for n in kept)
    assert one.skip == "hostname"
    with pytest.raises(UsageError, match="no test of the quick set matches"):
        passes("quick", "no such test", None)


def test_certified_is_every_conformance_test_then_the_serial_ones_alone():
    parallel, serial = passes("certified", None, None)
    assert (parallel.labels, serial.labels) == ("Conformance && !Serial", "Conformance && Serial")
    assert parallel.procs > 1 and serial.procs == 1


def test_a_test_skipped_by_name_is_left_out_of_certified_and_counted_as_skipped():
    (name, why), = conformance.SKIPPED_BY_NAME.items()
    assert "Alpine" in why
    for one in passes("certified", None, "hostname"):
        pattern = re.compile(one.skip)
        assert pattern.search(f"suite {name}") and pattern.search("hostname")
        assert not pattern.search(f"suite {name.replace('Always', 'Never')}")
    [quick] = passes("quick", None, None)
    assert quick.skip == ""
    area, _, leaf = name.partition(" ImageVolume ")
    report = [{"SpecReports": [{"LeafNodeType": "It", "ContainerHierarchyTexts": [area, "ImageVolume"],
                                "LeafNodeText": leaf, "State": "skipped"}]}]
    assert tally_report(report, (name,)).skipped == 1
    assert tally_report(report).skipped == 0  # quick: left out by its focus, not skipped (CI's quick run)
    # Counted once: by the parallel pass, whose label filter selects it, not again by the serial
    # pass, whose filter leaves it out (certified run 3 said "1 skipped" for 29 serial tests).
    parallel, serial = passes("certified", None, None)
    assert "[Serial]" not in name and parallel.by_name == (name,) and serial.by_name == ()
    assert [one.by_name for one in passes("certified", "webhook", None)] == [(), ()]  # nor outside --focus


@pytest.mark.parametrize("mode, focus, message", [("fast", None, "--mode must be one of quick, certified"),
                                                  ("quick", "[unclosed", "--focus is not a regular expression")])
def test_bad_arguments_are_one_sentence(mode, focus, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        passes(mode, focus, None)


def test_the_suites_registries_are_the_clusters():
    listed = yaml.safe_load(repo_list("10.0.0.5:5000/"))
    assert listed["promoterE2eRegistry"] == "10.0.0.5:5000/e2e-test-images"
    assert listed["gcRegistry"] == listed["gcEtcdRegistry"] == "10.0.0.5:5000"
    assert "invalidRegistry" not in listed and "privateRegistry" not in listed  # left as the suite has them
    image = SuiteImage("Agnhost", "promoterE2eRegistry", "agnhost", "2.66.1")
    assert image.ref("10.0.0.5:5000") == "10.0.0.5:5000/e2e-test-images/agnhost:2.66.1"
    assert SuiteImage("Pause", "gcRegistry", "pause", "3.10.2").ref("r:5000") == "r:5000/pause:3.10.2"


def test_the_images_are_read_from_the_suites_own_manifest(tmp_path):
    manifest = tmp_path / "test/utils/image/manifest.go"
    manifest.parent.mkdir(parents=True)
    lines = [f'\tconfigs[{image_id}] = Config{{list.PromoterE2eRegistry, "{image_id.lower()}", "1.{n}"}}'
             for n, image_id in enumerate(BUILT)]
    manifest.write_text("func initImageConfigs(list RegistryList) {\n" + "\n".join(lines) + "\n}\n")
    found = suite_images(tmp_path)
    assert found["Agnhost"] == SuiteImage("Agnhost", "promoterE2eRegistry", "agnhost", "1.0")
    manifest.write_text(manifest.read_text().replace("configs[BusyBox]", "configs[Other]"))
    with pytest.raises(OpenIError, match="names no image BusyBox"):
        suite_images(tmp_path)


def test_progress_counts_each_spec_as_it_ends_and_the_failures():
    shown: list[str] = []
    progress = Progress(shown.append)
    for line in textwrap.dedent("""\
        Will run 3 of 7212 specs
        Running in parallel across 4 processes
        [sig-node] Pods should get a host IP [Conformance] [NodeConformance] [sig-node, NodeConformance, Conformance]
        • [2.140 seconds]
        ------------------------------
        [sig-network] DNS should provide DNS for the cluster [Conformance] [sig-network, Conformance]
        • [FAILED] [31.2 seconds]
        S [SKIPPED] [0.001 seconds]
        [ReportAfterSuite] PASSED [0.000 seconds]
        """).splitlines():
        progress.line(line)
    assert shown[-1] == "3 of 3 tests done, 1 failed"


def test_the_counts_come_from_ginkgos_report():
    def spec(text, state, message=""):
        return {"LeafNodeType": "It", "ContainerHierarchyTexts": ["[sig-x] Area"], "LeafNodeText": text,
                "State": state, **({"Failure": {"Message": message}} if message else {})}
    report = [{"SpecReports": [
        spec("works", "passed"), spec("also works", "passed"), spec("breaks", "failed", "boom"),
        spec("not on Linux", "skipped", "Only supported for providers [gce]"),  # skipped as it ran: counted
        spec("filtered out", "skipped"),                                        # left out by the filters: not
        {"LeafNodeType": "SynchronizedBeforeSuite", "State": "passed"},
    ]}]
    tally = tally_report(report)
    assert (tally.passed, tally.failed, tally.skipped) == (2, 1, 1)
    assert tally.failures == ["[sig-x] Area breaks"]
    assert tally.line == "conformance: 2 passed, 1 failed, 1 skipped"


def test_a_bundle_without_the_suite_is_refused_with_what_to_do(example_dir, tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text('{"kubernetes_version": "v1.37.2", "origin": "source", "arch": "amd64", '
                                          '"binaries": [], "images": []}')
    settings = example_dir / "kubernetes-configuration.yaml"
    settings.write_text(settings.read_text().replace("  package-source: repository\n",
                                                     f"  package-source: binaries\n  binaries-dir: {bundle}\n"))
    with pytest.raises(OpenIError, match=r"holds no conformance suite .*inv k8s.bundle --from-source --conformance"):
        Suite.of(load_cluster(example_dir))
