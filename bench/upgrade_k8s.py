#!/usr/bin/env python3
"""`inv k8s.upgrade` of a minor version (of Kubernetes, of etcd, or both), under load, on a fresh
testbed: the failed requests, the writes lost, and the time of each phase.

A testbed at FROM (3 masters behind the proxy node's endpoint, 2 workers) is deployed; a
Deployment of 2 replicas (a plain HTTP server: the bundle's stand-in server image, used here only
as a web server) behind a NodePort Service, spread over the workers with a disruption budget of
one, is asked continuously from this machine through every node's NodePort; ConfigMaps are
created continuously through the API endpoint. Then, as an operator would: the configuration is
set to TO (kubernetes-version and the bundle), `inv k8s.bundle --from-source --push` loads the
target's images (the bundle is cached), and `inv k8s.upgrade --to TO` runs. Afterwards every node
must be Ready at TO, every etcd member must run the configured etcd, every acknowledged ConfigMap
must be there, and a second upgrade must change nothing.

With --etcd-from TAG the cluster is deployed with that etcd (its own bundle beside the testbed's,
etcd built from its Go module) and the upgrade also moves etcd to the testbed's etcd-version.

    python bench/upgrade_k8s.py                          # v1.36.3 -> v1.37.2
    python bench/upgrade_k8s.py --from v1.37.2 --etcd-from 3.6.16-0   # etcd 3.6 -> 3.7 alone
    python bench/upgrade_k8s.py --keep /tmp/tb-upgrade   # leave the testbed up

With --conformance, Kubernetes' conformance suite (quick) runs on the upgraded cluster afterwards.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
INV = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
NODE_PORT = 30080


def inv(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run([*INV, *args], capture_output=True, text=True)
    return time.perf_counter() - start, done


def phases(summary: str) -> list[tuple[str, float]]:
    rows = re.findall(r"│ ([a-z0-9-]+)\s+│ \d+\s+│ \d+\s+│ \d+\s+│ \d+\s+│ ([\d.]+)", summary)
    return [(name, float(seconds)) for name, seconds in rows]


class Prober(threading.Thread):
    """Asks `urls` in turn, every 50 ms, and counts the answers that are not 200 (and why)."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(daemon=True)
        self.urls, self.ok, self.failed = urls, 0, []
        self.done = threading.Event()

    def run(self) -> None:
        import requests

        n = 0
        while not self.done.is_set():
            url = self.urls[n % len(self.urls)]
            try:
                answer = requests.get(url, timeout=3)
                if answer.status_code == 200:
                    self.ok += 1
                else:
                    self.failed.append((time.strftime("%H:%M:%S"), url, f"HTTP {answer.status_code}"))
            except Exception as exc:  # counted, never hidden
                self.failed.append((time.strftime("%H:%M:%S"), url, str(exc).splitlines()[0][:160]))
            n += 1
            time.sleep(0.05)


class ApiWriter(threading.Thread):
    """Creates numbered ConfigMaps through the API endpoint; remembers which were acknowledged and
    counts the failures."""

    def __init__(self, kubeconfig: Path, prefix: str = "upgrade-load") -> None:
        super().__init__(daemon=True)
        from kubernetes import client, config

        self.core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        self.prefix = prefix
        self.acknowledged: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.done = threading.Event()

    def run(self) -> None:
        from kubernetes import client

        n = 0
        while not self.done.is_set():
            body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"{self.prefix}-{n:05d}"))
            try:
                self.core.create_namespaced_config_map("default", body, _request_timeout=10)
                self.acknowledged.append(body.metadata.name)
            except Exception as exc:
                self.failed.append((time.strftime("%H:%M:%S"), str(exc).splitlines()[0][:160]))
            n += 1
            time.sleep(0.1)

    def missing(self) -> list[str]:
        """The acknowledged ConfigMaps that are not there now."""
        present = {c.metadata.name for c in self.core.list_namespaced_config_map("default").items}
        return [name for name in self.acknowledged if name not in present]


def workload(kubeconfig: Path, image: str) -> None:
    """2 replicas on different workers, a budget of 1 unavailable, a NodePort Service."""
    from kubernetes import client, config, utils

    api = config.new_client_from_config(config_file=str(kubeconfig))
    labels = {"app": "upgrade-web"}
    objects = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "upgrade-web", "namespace": "default"},
         "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {"terminationGracePeriodSeconds": 5,
                      "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                          {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}]}},
                      "containers": [{"name": "web", "image": image,
                                      "env": [{"name": "STAND_IN_NAME", "value": "upgrade-web"},
                                              {"name": "STAND_IN_HTTP_PORTS", "value": "8080"},
                                              {"name": "STAND_IN_HTTPS_PORTS", "value": ""}],
                                      "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                                      "lifecycle": {"preStop": {"sleep": {"seconds": 3}}}}]}}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "upgrade-web", "namespace": "default"},
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "upgrade-web", "namespace": "default"},
         "spec": {"type": "NodePort", "selector": labels,
                  "ports": [{"port": 80, "targetPort": 8080, "nodePort": NODE_PORT}]}},
    ]
    for obj in objects:
        utils.create_from_dict(api, obj)
    apps = client.AppsV1Api(api)
    deadline = time.monotonic() + 300
    while (apps.read_namespaced_deployment("upgrade-web", "default").status.ready_replicas or 0) < 2:
        if time.monotonic() > deadline:
            raise TimeoutError("the workload was not ready within 300 s")
        time.sleep(2)


def edit(path: Path, **settings: str | None) -> None:
    """Set (or, given None, remove) keys of the configuration's `kubernetes` section, as an operator's edit."""
    import yaml

    document = yaml.safe_load(path.read_text())
    for key, value in settings.items():
        if value is None:
            document["kubernetes"].pop(key, None)
        else:
            document["kubernetes"][key] = value
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="old", default="v1.36.3")
    parser.add_argument("--to", dest="new", default="v1.37.2")
    parser.add_argument("--etcd-from", help="deploy with this etcd-version (an image tag, 3.6.16-0), upgrade to "
                                            "the testbed's")
    parser.add_argument("--batch", default="1")
    parser.add_argument("--conformance", action="store_true", help="run k8s.conformance --mode quick afterwards")
    parser.add_argument("--keep", help="testbed directory to use and leave up (reused if it is up)")
    args = parser.parse_args()
    from openi_tasks.config import load_cluster
    from openi_tasks.k8s.etcd_client import member_health
    from openi_tasks.k8s.pki import ClusterPki
    from openi_tasks.kube import KubeApi
    from openi_tasks.state import StateDir
    from openi_tasks.testbed.testbed import Testbed, kubernetes_settings

    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="openi-upgrade-bench-"))
    bed = Testbed(workdir, say=print)
    try:
        start = time.perf_counter()
        config = bed.up(masters=3, workers=2, proxy=True, kubernetes_version=args.old)
        print(f"testbed up at {args.old}: {time.perf_counter() - start:.0f} s")
        path = Path(config) / "kubernetes-configuration.yaml"
        if args.etcd_from:  # the older etcd: its own bundle, so that the testbed's stays as it is
            edit(path, **{"etcd-version": args.etcd_from, "binaries-dir": str(workdir / "bundle-etcd")})
            seconds, done = inv("k8s.bundle", "-p", str(config), "--from-source", "--push")
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            print(f"k8s.bundle --from-source --push with etcd {args.etcd_from}: {seconds:.0f} s")
        seconds, done = inv("k8s.deploy", "-p", str(config))
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        print(f"k8s.deploy {args.old}: {seconds:.0f} s")
        cluster = load_cluster(config)
        admin = StateDir.of(cluster).admin_conf
        workload(admin, f"{bed.state.registry}/metrics-scraper-stand-in:v1.0.8")
        prober = Prober([f"http://{m.address}:{NODE_PORT}/" for m in cluster.machines])
        writer = ApiWriter(admin)

        # The operator's edit: the target version and its bundle.
        settings = kubernetes_settings(bed.state.registry, cluster.kubernetes.bundle_base_image, args.new,
                                       cluster.kubernetes.cluster_dns or "")
        edit(path, **{"kubernetes-version": args.new, "binaries-dir": settings["binaries-dir"], "etcd-version": None})
        seconds, done = inv("k8s.bundle", "-p", str(config), "--from-source", "--push")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        print(f"k8s.bundle --from-source --push {args.new}: {seconds:.0f} s")
        seconds, done = inv("k8s.upgrade", "-p", str(config), "--to", args.new, "--dry-run")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        print(f"k8s.upgrade --dry-run: {seconds:.0f} s")

        prober.start()
        writer.start()
        time.sleep(5)
        seconds, done = inv("k8s.upgrade", "-p", str(config), "--to", args.new, "--batch", args.batch)
        time.sleep(5)
        prober.done.set()
        writer.done.set()
        prober.join(10)
        writer.join(15)
        print(done.stdout[-8000:])
        assert done.returncode == 0, done.stderr[-3000:]
        print(f"k8s.upgrade --to {args.new}: {seconds:.0f} s")
        for name, phase_seconds in phases(done.stdout):
            print(f"  {name:24} {phase_seconds:7.1f} s")
        print(f"HTTP through the NodePorts: {prober.ok} answered, {len(prober.failed)} failed {prober.failed[:5]}")
        print(f"API through the endpoint: {len(writer.acknowledged)} ConfigMaps created, {len(writer.failed)} failed "
              f"{writer.failed[:5]}")
        missing = writer.missing()
        print(f"acknowledged ConfigMaps missing afterwards: {len(missing)} {missing[:5]}")
        members = member_health(load_cluster(config), ClusterPki(load_cluster(config), StateDir.of(cluster)))
        print("etcd members:", {m.name: (m.healthy, m.version) for m in members})
        wanted = load_cluster(config).kubernetes.etcd_version.split("-")[0]
        assert not missing and all(m.healthy and m.version == wanted for m in members), (missing, members)
        nodes = KubeApi(admin).nodes()
        print("nodes:", {n.name: (n.ready, n.kubelet_version, n.cordoned) for n in nodes.values()})
        assert all(n.ready and n.kubelet_version == args.new and not n.cordoned for n in nodes.values())
        seconds, again = inv("k8s.upgrade", "-p", str(config), "--to", args.new)
        assert again.returncode == 0 and "nothing to upgrade" in again.stdout, again.stdout[-3000:]
        print(f"second k8s.upgrade: {seconds:.0f} s, {'no changes' if 'no changes' in again.stdout else 'CHANGES'}")
        if args.conformance:
            seconds, done = inv("k8s.bundle", "-p", str(config), "--from-source", "--conformance", "--push")
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            print(f"k8s.bundle --conformance --push: {seconds:.0f} s")
            seconds, done = inv("k8s.conformance", "-p", str(config), "--mode", "quick", "--out",
                                str(workdir / "conformance"))
            print(f"k8s.conformance --mode quick after the upgrade: {seconds:.0f} s, "
                  f"{done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]}")
            assert done.returncode == 0, done.stdout[-3000:]
    finally:
        logs = workdir / "state" / "logs"
        if logs.is_dir():  # testbed.down removes the state directory: keep the runs' evidence
            shutil.copytree(logs, workdir / "run-logs", dirs_exist_ok=True)
            print(f"run logs kept in {workdir / 'run-logs'}")
        if not args.keep:
            bed.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
