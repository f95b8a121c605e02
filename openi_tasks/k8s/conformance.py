"""`inv k8s.conformance`: Kubernetes' own conformance suite against the configured cluster, from
the operator's machine, air-gapped.

The suite comes from the bundle (`inv k8s.bundle --from-source --conformance --push`): e2e.test
and ginkgo in `<binaries-dir>/conformance/`, checked against the bundle's manifest, the bundle's
kubectl, and the tests' images in the cluster's registry, where the suite is told to find them
(`KUBE_TEST_REPO_LIST`). ginkgo runs e2e.test in parallel processes with the admin kubeconfig.

    quick       QUICK: 48 fast tests across pods, services, DNS, networking, ConfigMaps and Secrets,
                authorization and the API machinery (minutes)
    certified   every [Conformance] test that is not [Serial] in parallel, then the [Serial] ones
                (two of which are also [Disruptive]: they taint a node), one at a time

The JUnit report (junit_01.xml), ginkgo's JSON report and the whole e2e log go to `--out`
(default `<state>/conformance/<UTC time>/`). The run ends with one line,
`conformance: N passed, N failed, N skipped`, and fails when a test failed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..bundle.conformance import SUITE_DIR, repo_list
from ..bundle.manifest import MANIFEST, Manifest, verify_file
from ..config import Cluster
from ..errors import OpenIError, UsageError
from ..report import Reporter
from ..state import StateDir

QUICK = (
    # pods and the node
    "[sig-node] Pods should get a host IP [Conformance] [NodeConformance]",
    "[sig-node] Pods should be submitted and removed [Conformance] [NodeConformance]",
    "[sig-node] Pods should be updated [Conformance] [NodeConformance]",
    "[sig-node] Pods should contain environment variables for services [Conformance] [NodeConformance]",
    "[sig-node] Pods should support remote command execution over websockets [Conformance] [NodeConformance]",
    "[sig-node] Pods should support retrieving logs from the container over websockets [Conformance] [NodeConformance]",
    "[sig-node] Pods should run through the lifecycle of Pods and PodStatus [Conformance]",
    "[sig-node] Downward API should provide pod name, namespace and IP address as env vars [Conformance] [NodeConformance]",
    "[sig-node] Kubelet when scheduling a busybox command in a pod should print the output to logs [Conformance] [NodeConformance]",
    "[sig-node] Kubelet when scheduling an agnhost Pod with hostAliases should write entries to /etc/hosts [Conformance] [NodeConformance]",
    "[sig-node] Container Runtime blackbox test when starting a container that exits should run with the expected status [Conformance] [NodeConformance]",
    # services
    "[sig-network] Services should serve a basic endpoint from pods [Conformance]",
    "[sig-network] Services should serve multiport endpoints from pods [Conformance]",
    "[sig-network] Services should be able to create a functioning NodePort service [Conformance]",
    "[sig-network] Services should be able to change the type from ExternalName to ClusterIP [Conformance]",
    "[sig-network] Services should have session affinity work for service with type clusterIP [LinuxOnly] [Conformance]",
    "[sig-network] Services should find a service from listing all namespaces [Conformance]",
    "[sig-network] EndpointSlice should create Endpoints and EndpointSlices for Pods matching a Service [Conformance]",
    "[sig-network] Proxy version v1 should proxy through a service and a pod [Conformance]",
    # DNS
    "[sig-network] DNS should provide DNS for the cluster [Conformance]",
    "[sig-network] DNS should provide DNS for services [Conformance]",
    "[sig-network] DNS should provide DNS for pods for Hostname [Conformance]",
    "[sig-network] DNS should provide /etc/hosts entries for the cluster [Conformance]",
    "[sig-network] DNS should resolve DNS of partial qualified names for services [LinuxOnly] [Conformance]",
    # the pod network
    "[sig-network] Networking Granular Checks: Pods should function for intra-pod communication: http [Conformance] [NodeConformance]",
    "[sig-network] Networking Granular Checks: Pods should function for intra-pod communication: udp [Conformance] [NodeConformance]",
    "[sig-network] Networking Granular Checks: Pods should function for node-pod communication: http [LinuxOnly] [Conformance] [NodeConformance]",
    "[sig-network] HostPort validates that there is no conflict between pods with same hostPort but different hostIP and protocol [LinuxOnly] [Conformance]",
    # ConfigMaps and Secrets
    "[sig-node] ConfigMap should be consumable via environment variable [Conformance] [NodeConformance]",
    "[sig-node] ConfigMap should run through a ConfigMap lifecycle [Conformance]",
    "[sig-storage] ConfigMap should be consumable from pods in volume [Conformance] [NodeConformance]",
    "[sig-storage] ConfigMap updates should be reflected in volume [Conformance] [NodeConformance]",
    "[sig-node] Secrets should be consumable from pods in env vars [Conformance] [NodeConformance]",
    "[sig-storage] Secrets should be consumable from pods in volume [Conformance] [NodeConformance]",
    "[sig-storage] Secrets should be immutable if `immutable` field is set [Conformance]",
    # authentication and authorization
    "[sig-auth] ServiceAccounts should mount an API token into pods [Conformance]",
    "[sig-auth] ServiceAccounts should create a serviceAccountToken and ensure a successful TokenReview [Conformance]",
    "[sig-auth] ServiceAccounts should guarantee kube-root-ca.crt exist in any namespace [Conformance]",
    "[sig-auth] SubjectReview should support SubjectReview API operations [Conformance]",
    # the API machinery
    "[sig-api-machinery] server version should find the server version [Conformance]",
    "[sig-api-machinery] Discovery should validate PreferredVersion for each APIGroup [Conformance]",
    "[sig-api-machinery] Watchers should observe add, update, and delete watch notifications on configmaps [Conformance]",
    "[sig-api-machinery] ResourceQuota should create a ResourceQuota and capture the life of a configMap. [Conformance]",
    "[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] Simple CustomResourceDefinition creating/deleting custom resource definition objects works [Conformance]",
    "[sig-api-machinery] Garbage collector should delete pods created by rc when not orphaning [Conformance]",
    # workloads and kubectl
    "[sig-apps] Deployment RollingUpdateDeployment should delete old pods and create new ones [Conformance]",
    "[sig-apps] ReplicaSet should serve a basic image on each replica with a public image [Conformance]",
    "[sig-cli] Kubectl client Kubectl version should check is all data is printed [Conformance]",
)
MODES = ("quick", "certified")
# Tests not run, by name, with the reason: those that need an image that cannot be built here as
# upstream's is (see bundle/conformance.py NOT_BUILT). Printed by every run that skips them.
SKIPPED_BY_NAME: dict[str, str] = {
    "[sig-node] ImageVolume should succeed with pod and pull policy of Always [LinuxOnly] "
    "[MinimumKubeletVersion:1.35] [Conformance]":
        "it mounts the kitten image as a volume and expects its /etc/os-release to say \"Alpine Linux\"; "
        "upstream's kitten is built on Alpine, whose packages cannot be reached here, so the bundle's is "
        "built on Debian 12 (the mount itself works: the test read the image's files in the run of 2026-12-07)",
}
PROCS = 4  # e2e.test processes at once: the tests mostly wait for the cluster
SPEC_TIMEOUT = "3h"


@dataclass(frozen=True)
class Pass:
    """One ginkgo run of e2e.test: what it selects (ginkgo's label filter, and focus and skip
    regular expressions on the tests' names), and how many processes run it."""

    title: str
    labels: str
    focus: str
    skip: str
    procs: int
    by_name: tuple[str, ...] = ()  # the tests this pass leaves out by name (SKIPPED_BY_NAME), counted as skipped


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, other: "Tally") -> None:
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped
        self.failures += other.failures

    @property
    def line(self) -> str:
        return f"conformance: {self.passed} passed, {self.failed} failed, {self.skipped} skipped"


def passes(mode: str, focus: str | None, skip: str | None) -> list[Pass]:
    """What `mode` runs, as ginkgo passes. `focus` narrows the mode's selection; `skip` leaves out
    more (both are Go regular expressions on the tests' full names, as ginkgo takes them)."""
    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    for flag, value in (("--focus", focus), ("--skip", skip)):
        if value:
            try:
                re.compile(value)
            except re.error as exc:
                raise UsageError(f"{flag} is not a regular expression: {exc}") from None
    if mode == "quick":
        # Its selection is names: --focus narrows them here (Go's patterns cannot say "and").
        names = [n for n in QUICK if n not in SKIPPED_BY_NAME and (not focus or re.search(focus, n))]
        if not names:
            raise UsageError(f"no test of the quick set matches --focus {focus!r}")
        # A spec's full text starts with the suite's own (empty-looking) container: anchored at the end.
        quick = r"(?:^|\s)(?:" + "|".join(go_escape(name) for name in names) + ")$"
        return [Pass("quick", "Conformance", quick, skip or "", PROCS)]
    not_run = "|".join(go_escape(name) + "$" for name in SKIPPED_BY_NAME)
    skips = "|".join(p for p in (skip, not_run) if p)
    # Each pass counts only the by-name skips its label filter selects: ginkgo reports the tests a
    # filter leaves out as skipped too, so the serial pass would count a parallel test again.
    # Nor those that --focus leaves out.
    wanted = [name for name in SKIPPED_BY_NAME if not focus or re.search(focus, name)]
    serial = tuple(name for name in wanted if "[Serial]" in name)
    parallel = tuple(name for name in wanted if name not in serial)
    return [Pass("parallel", "Conformance && !Serial", focus or "", skips, PROCS, parallel),
            Pass("serial", "Conformance && Serial", focus or "", skips, 1, serial)]


def go_escape(text: str) -> str:
    """`text` as a literal in a Go regular expression (Python's re.escape also escapes spaces and
    backquotes, which Go's syntax does not accept escaped)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


@dataclass(frozen=True)
class Suite:
    """The suite's files on this machine, checked against the bundle's manifest."""

    e2e: Path
    ginkgo: Path
    kubectl: Path

    @classmethod
    def of(cls, cluster: Cluster) -> "Suite":
        if not cluster.kubernetes.binaries_dir:
            raise OpenIError("kubernetes.binaries-dir is not set: the conformance suite lives in the bundle "
                             "(inv k8s.bundle --from-source --conformance --push)")
        bundle = Path(str(cluster.kubernetes.binaries_dir)).expanduser()
        if not (bundle / MANIFEST).is_file():
            raise OpenIError(f"{bundle} has no {MANIFEST}: make the bundle with inv k8s.bundle")
        manifest = Manifest.read(bundle)
        paths = {}
        for name in ("e2e.test", "ginkgo", "kubectl"):
            relative = name if name == "kubectl" else f"{SUITE_DIR}/{name}"
            entry = manifest.binary(relative)
            if entry is None:
                raise OpenIError(f"{bundle} holds no conformance suite ({relative} is not in its manifest): "
                                 f"build it with inv k8s.bundle --from-source --conformance --push")
            verify_file(bundle, entry)
            paths[name] = bundle / relative
        if manifest.kubernetes_version != cluster.kubernetes.kubernetes_version:
            raise OpenIError(f"the bundle's suite is of Kubernetes {manifest.kubernetes_version}, the configuration "
                             f"says {cluster.kubernetes.kubernetes_version}: make the bundle of that version")
        return cls(paths["e2e.test"], paths["ginkgo"], paths["kubectl"])


# ginkgo -v ends each spec it ran with a verdict line: "• [2.1 seconds]", "• [FAILED] [31.2 seconds]",
# "S [SKIPPED] [0.0 seconds]"; --silence-skips leaves out the thousands its filters skip.
_WILL_RUN = re.compile(r"Will run (\d+) of (\d+) specs")
_VERDICT = re.compile(r"^(•|S) (?:\[([A-Z]+)\] )?\[[\d.]+ seconds\]")


class Progress:
    """Reads ginkgo's output line by line: how many specs will run, how many ended, failures so far."""

    def __init__(self, show: Callable[[str], None]) -> None:
        self.show = show
        self.total = 0
        self.done = 0
        self.failed = 0

    def line(self, text: str) -> None:
        will = _WILL_RUN.search(text)
        if will:
            self.total += int(will[1])
            self.show(self.status())
            return
        verdict = _VERDICT.match(text)
        if verdict:
            self.done += 1
            if verdict[2] in ("FAILED", "PANICKED", "TIMEDOUT", "INTERRUPTED"):
                self.failed += 1
            self.show(self.status())

    def status(self) -> str:
        return f"{self.done} of {self.total} tests done, {self.failed} failed"


def run(cluster: Cluster, reporter: Reporter, mode: str = "quick", focus: str | None = None,
        skip: str | None = None, out: Path | None = None) -> Tally:
    selected = passes(mode, focus, skip)
    suite = Suite.of(cluster)
    state = StateDir.of(cluster)
    if not state.admin_conf.is_file():
        raise OpenIError(f"no admin kubeconfig at {state.admin_conf}: deploy Kubernetes first (inv k8s.deploy)")
    out = out or state.root / "conformance" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out.mkdir(parents=True, exist_ok=True)
    repos = out / "repo-list.yaml"
    repos.write_text(repo_list(cluster.kubernetes.docker_registry))
    total = Tally()
    for name in dict.fromkeys(name for one in selected for name in one.by_name):  # passes() applied --focus
        reporter.warn(f"not run: {name}: {SKIPPED_BY_NAME[name]}")
    with open(out / "e2e.log", "w", buffering=1) as log:  # line by line: a long run can be followed
        for index, one in enumerate(selected):
            report_dir = out if len(selected) == 1 else out / one.title
            report_dir.mkdir(parents=True, exist_ok=True)
            reporter.info(f"conformance ({mode}, {one.title}): e2e.test from {suite.e2e.parent}, {one.procs} "
                          f"process(es); images from {cluster.kubernetes.docker_registry}; reports in {report_dir}")
            tally = _one_pass(suite, state.admin_conf, repos, one, report_dir, log, reporter)
            reporter.info(f"{one.title}: {tally.line}")
            total.add(tally)
    for failure in total.failures:
        reporter.warn(f"failed: {failure}")
    reporter.info(f"JUnit report and e2e log: {out}")
    print(total.line)
    return total


def _one_pass(suite: Suite, kubeconfig: Path, repos: Path, one: Pass, report_dir: Path, log, reporter: Reporter) -> Tally:
    command = [str(suite.ginkgo), f"--procs={one.procs}", f"--timeout={SPEC_TIMEOUT}", "--no-color",
               "-v", "--silence-skips", f"--label-filter={one.labels}"]
    if one.focus:
        command.append(f"--focus={one.focus}")
    if one.skip:
        command.append(f"--skip={one.skip}")
    command += [str(suite.e2e), "--",
                f"--kubeconfig={kubeconfig}", "--provider=skeleton", f"--kubectl-path={suite.kubectl}",
                f"--report-dir={report_dir}", "--report-complete-ginkgo", "--disable-log-dump"]
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    # The suite's kubectl tests leave a directory each in the temporary directory (about 90 a
    # run): it gets one of its own, removed afterwards.
    with reporter.activity(f"conformance: {one.title}") as activity, \
            tempfile.TemporaryDirectory(prefix="openi-conformance-") as scratch:
        env = {**os.environ, "KUBE_TEST_REPO_LIST": str(repos), "KUBECONFIG": str(kubeconfig), "TMPDIR": scratch}
        progress = Progress(activity.event)
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                   cwd=report_dir)
        assert process.stdout is not None
        for text in process.stdout:
            log.write(text)
            progress.line(text)
        code = process.wait()
        log.flush()
    report = report_dir / "ginkgo" / "report.json"
    if not report.is_file():
        raise OpenIError(f"e2e.test ended (exit {code}) without a report: see {log.name}")
    tally = tally_report(json.loads(report.read_text()), one.by_name)
    if code != 0 and not tally.failed:
        raise OpenIError(f"ginkgo ended with exit {code} but no test failed: see {log.name}")
    return tally


def tally_report(report: list[dict], by_name: tuple[str, ...] = ()) -> Tally:
    """Counts from ginkgo's JSON report. Skipped: the specs the pass selected that were skipped as
    they ran (a test that does not apply here skips itself, with a message), and those skipped
    by name (SKIPPED_BY_NAME); not the thousands that the pass's filters left out."""
    tally = Tally()
    for suite in report:
        for spec in suite.get("SpecReports") or []:
            if spec.get("LeafNodeType") != "It":
                continue
            name = " ".join(t for t in [*(spec.get("ContainerHierarchyTexts") or []), spec.get("LeafNodeText", "")] if t)
            state = spec.get("State")
            if state == "passed":
                tally.passed += 1
            elif state in ("failed", "panicked", "timedout", "interrupted", "aborted"):
                tally.failed += 1
                tally.failures.append(name)
            elif state == "skipped" and ((spec.get("Failure") or {}).get("Message") or
                                         any(name.startswith(s) or s.startswith(name) for s in by_name)):
                tally.skipped += 1
    return tally
