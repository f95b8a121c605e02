"""Host-side rules of deploy that need no host: /etc/hosts, facts checks, kubeconfig merge."""

from __future__ import annotations

import dataclasses
import types
import gzip
import tomllib

from pathlib import Path

import pytest
import yaml

from openi_tasks.config import load_cluster
from openi_tasks.config.generate import write_configuration
from openi_tasks.errors import OpenIError
from openi_tasks.localfiles import file_digest
from openi_tasks.k8s import binaries as binaries_module
from openi_tasks.bundle.manifest import BinaryEntry, Manifest
from openi_tasks.bundle.needs import CNI_BINARIES, CONTAINERD_BINARIES
from openi_tasks.k8s.phases import packages
from openi_tasks.k8s.hostfacts import HostFacts, problems
from openi_tasks.k8s.admin_conf import for_operator
from openi_tasks.k8s.kubectl import install_kubectl, merge_kubeconfig
from openi_tasks.k8s.phases.prepare import fixed_hosts_file
from openi_tasks.run import open_run
from openi_tasks.report import Reporter

from .conftest import EXAMPLE


def test_hosts_file_comments_the_loopback_name_and_adds_the_address():
    before = "127.0.0.1\tlocalhost\n127.0.1.1\tnode1.example node1\n::1 localhost ip6-localhost\n"
    after = fixed_hosts_file(before, "10.0.0.5", "node1")
    lines = after.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert lines[1].startswith("# 127.0.1.1\tnode1.example node1") and "commented out by openi-tasks" in lines[1]
    assert lines[-1] == "10.0.0.5 node1"
    assert fixed_hosts_file(after, "10.0.0.5", "node1") == after  # a second run changes nothing


def test_hosts_file_already_right_is_left_alone():
    text = "127.0.0.1 localhost\n10.0.0.5 node1 node1.example\n"
    assert fixed_hosts_file(text, "10.0.0.5", "node1") == text


@pytest.fixture(scope="module")
def cluster():
    return load_cluster(EXAMPLE)


GOOD = HostFacts(
    os_id="ubuntu", os_version="22.04", os_codename="jammy", arch="x86_64", hostname="openi-master-1",
    resolves=("10.10.0.11",), swap=False, overlay="yes", br_netfilter="yes",
    sysctls={}, free_bytes=50 * 2**30, listening=(22,), systemd=True, docker=True, docker_active=True,
    managed=(), kubelet_joined=False, apiserver=False, kubeadm="none",
)


def test_a_good_host_has_no_problems(cluster):
    assert problems(cluster, cluster.masters[0], GOOD) == []


@pytest.mark.parametrize("change, fragment", [
    ({"os_id": "centos", "os_version": "7"}, "unsupported OS centos 7"),
    ({"arch": "ppc64le"}, "unsupported architecture ppc64le"),
    ({"hostname": "other"}, "the host calls itself 'other' but the configuration says 'openi-master-1'"),
    ({"systemd": False}, "systemd is not running"),
    ({"overlay": "no"}, "no overlay filesystem"),
    ({"br_netfilter": "no"}, "no bridge netfilter"),
    ({"free_bytes": 2**29}, "only 0.5 GiB free"),
    ({"listening": (22, 2379)}, "port 2379 (needed for etcd) is already in use by another program"),
    ({"listening": None}, "cannot list listening ports"),
])
def test_host_problems(cluster, change, fragment):
    found = problems(cluster, cluster.masters[0], dataclasses.replace(GOOD, **change))
    assert len(found) == 1 and fragment in found[0]


def test_a_disk_below_kubelets_eviction_threshold_is_refused_before_the_node_is_under_disk_pressure(cluster):
    # CI's machine: a 252 GiB volume with 38 GiB free, shared by the testbed's nodes. kubelet's
    # default imagefs.available<15% is 37.8 GiB: every node was under DiskPressure, Ready, and
    # evicted the services' pods.
    shared = dataclasses.replace(GOOD, free_bytes=38 * 2**30, disk_bytes=252 * 2**30)
    (found,) = problems(cluster, cluster.masters[0], shared)
    assert "38.0 GiB free of 252.0 GiB (15%)" in found and "imagefs.available<15% (kubelet's default" in found
    assert "DiskPressure" in found
    assert problems(cluster, cluster.masters[0], dataclasses.replace(shared, free_bytes=50 * 2**30)) == []
    in_bytes = dataclasses.replace(cluster, kubernetes=cluster.kubernetes.model_copy(
        update={"kubelet_eviction_hard": {"nodefs.available": "2Gi", "imagefs.available": "2Gi"}}))
    assert problems(in_bytes, cluster.masters[0], shared) == []
    (found,) = problems(in_bytes, cluster.masters[0], dataclasses.replace(shared, free_bytes=3 * 2**30))
    assert "nodefs.available<2Gi (kubernetes.kubelet-eviction-hard)" in found


def test_only_loopback_resolvers_are_refused_without_cluster_dns(cluster):
    without = dataclasses.replace(cluster, kubernetes=cluster.kubernetes.model_copy(update={"cluster_dns": None}))
    docker_dns = dataclasses.replace(GOOD, resolvers=("127.0.0.11",))
    (found,) = problems(without, cluster.masters[0], docker_dns)
    assert "names only resolvers on loopback (127.0.0.11)" in found and "kubernetes.cluster-dns" in found
    assert problems(cluster, cluster.masters[0], docker_dns) == []  # cluster-dns is the upstream
    # systemd-resolved: kubeadm points kubelet at /run/systemd/resolve/resolv.conf itself.
    resolved = dataclasses.replace(GOOD, resolvers=("127.0.0.53",), resolved_conf=True)
    assert problems(without, cluster.masters[0], resolved) == []


def test_ports_held_by_a_previous_deploy_are_fine(cluster):
    rerun = dataclasses.replace(GOOD, listening=(22, 2379, 2380, 6443, 10250), managed=("etcd-etcdid1",),
                                kubelet_joined=True, apiserver=True)
    assert problems(cluster, cluster.masters[0], rerun) == []


def test_a_host_that_runs_another_version_is_left_to_k8s_upgrade(cluster):
    configured = cluster.kubernetes.kubernetes_version
    older = dataclasses.replace(GOOD, kubelet_joined=True, kubelet="v1.0.1")
    (found,) = problems(cluster, cluster.masters[0], older)
    assert found == (f"it runs Kubernetes v1.0.1 but the configuration says {configured}: a version change is an "
                     f"upgrade (inv k8s.upgrade --to {configured})")
    assert problems(cluster, cluster.masters[0], older, upgrading=True) == []
    # A master whose control plane runs another version (its kubelet already at the configured one).
    half = dataclasses.replace(GOOD, kubelet_joined=True, kubelet=configured,
                               control_plane={"kube-apiserver": "registry.example:5000/kube-apiserver:v1.0.1"})
    assert len(problems(cluster, cluster.masters[0], half)) == 1
    # Installed but never joined (an earlier deploy stopped early): the packages phase replaces it.
    assert problems(cluster, cluster.masters[0], dataclasses.replace(GOOD, kubelet="v1.0.1")) == []


ADMIN = """
apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster: {certificate-authority-data: Q0E=, server: "https://10.10.0.11:6443"}
users:
- name: kubernetes-admin
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
contexts:
- name: kubernetes-admin@kubernetes
  context: {cluster: kubernetes, user: kubernetes-admin}
current-context: kubernetes-admin@kubernetes
"""


def test_a_node_on_another_runtime_is_refused_by_a_deploy_and_left_to_k8s_upgrade(cluster):
    from openi_tasks.k8s.runtime import OWN, runtime_of

    assert runtime_of(cluster).socket != OWN.socket  # the example: the host's containerd
    on_another = dataclasses.replace(GOOD, kubelet_joined=True, kubelet=cluster.kubernetes.kubernetes_version,
                                    kubelet_runtime=OWN.socket)
    (found,) = problems(cluster, cluster.masters[0], on_another)
    assert f"its kubelet runs the pods on {OWN.socket}" in found
    assert f"inv k8s.upgrade --to {cluster.kubernetes.kubernetes_version} moves them node by node, drained" in found
    assert problems(cluster, cluster.masters[0], on_another, upgrading=True) == []
    assert problems(cluster, cluster.masters[0], on_another, rejoining=True) == []


def test_admin_kubeconfig_points_at_the_endpoint_and_is_named_after_the_cluster(cluster):
    data = yaml.safe_load(for_operator(cluster, ADMIN.encode()))
    assert data["clusters"][0]["name"] == "openi-example"
    assert data["clusters"][0]["cluster"]["server"] == "https://10.10.0.10:6443"
    assert data["contexts"] == [{"name": "openi-example", "context": {"cluster": "openi-example", "user": "openi-example-admin"}}]
    assert data["users"][0]["user"]["client-key-data"] == "S0VZ"


def test_merge_keeps_other_contexts_and_backs_up(cluster, tmp_path):
    admin = tmp_path / "admin.conf"
    admin.write_text(for_operator(cluster, ADMIN.encode()))
    existing = {
        "apiVersion": "v1", "kind": "Config", "current-context": "prod",
        "clusters": [{"name": "prod", "cluster": {"server": "https://prod:6443"}}],
        "users": [{"name": "prod-admin", "user": {"token": "t"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod-admin"}}],
    }
    config = tmp_path / "kube" / "config"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump(existing))
    merge_kubeconfig(config, admin)
    merged = yaml.safe_load(config.read_text())
    assert [c["name"] for c in merged["contexts"]] == ["prod", "openi-example"]
    assert merged["current-context"] == "prod"
    assert merged["clusters"][0] == existing["clusters"][0]
    assert config.stat().st_mode & 0o077 == 0
    assert yaml.safe_load((tmp_path / "kube" / "config.openi-backup").read_text()) == existing
    merge_kubeconfig(config, admin)  # again: refreshed, not duplicated
    assert [c["name"] for c in yaml.safe_load(config.read_text())["contexts"]] == ["prod", "openi-example"]


def test_install_kubectl_from_a_binaries_directory(tmp_path, monkeypatch):
    binaries = tmp_path / "binaries"
    binaries.mkdir()
    fake = binaries / "kubectl"  # a FAKE kubectl: real Kubernetes binaries cannot be had here
    fake.write_text("#!/bin/sh\nprintf 'clientVersion:\\n  gitVersion: v1.36.0\\n'\n")
    fake.chmod(0o755)
    machines = [{"hostname": "m1", "hostip": "10.1.0.1", "machine-type": "standard", "k8s-role": "master", "etcdid": "e1"}]
    directory = write_configuration(tmp_path / "c", machines, kubernetes={"package-source": "binaries", "binaries-dir": str(binaries),
                                                                                    "kubernetes-version": "v1.36.0"})
    cluster = load_cluster(directory)
    monkeypatch.setenv("OPENI_STATE_DIR", str(tmp_path / "state"))
    with pytest.raises(OpenIError, match="deploy the cluster first"):
        install_kubectl(cluster, tmp_path / "bin", tmp_path / "kubeconfig")
    assert (tmp_path / "bin" / "kubectl").read_bytes() == fake.read_bytes()
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "admin.conf").write_text(for_operator(cluster, ADMIN.encode()))
    lines = install_kubectl(cluster, tmp_path / "bin", tmp_path / "kubeconfig")
    assert lines[0].endswith("is already v1.36.0")
    assert yaml.safe_load((tmp_path / "kubeconfig").read_text())["current-context"] == cluster.id


@pytest.mark.sshd
def test_binaries_are_hashed_once_per_run_and_compared_with_each_host(tmp_path, ssh_config, monkeypatch):
    binaries = tmp_path / "binaries"
    binaries.mkdir()
    (binaries / "cni").mkdir()
    for name in [*binaries_module.NAMES, *(f"cni/{n}" for n in CNI_BINARIES)]:
        # FAKE binaries: this test is about hashing and uploads only
        (binaries / name).write_text(f"#!/bin/sh\necho fake {name}\n")
    cluster = load_cluster(ssh_config(kubernetes={"package-source": "binaries", "binaries-dir": str(binaries),
                                                  "containerd-source": "host"}))
    hashed = []
    monkeypatch.setattr(binaries_module, "file_digest", lambda path: hashed.append(path) or file_digest(path))
    with open_run(cluster, Reporter(), "test", record=False) as run:
        hosts = run.inventory.hosts()[:2]
        plans = {host.name: packages._from_binaries(run, host) for host in hosts}
    assert sorted(hashed) == sorted([*(binaries / name for name in binaries_module.NAMES),
                                     *(binaries / "cni" / n for n in CNI_BINARIES)])
    for changes in plans.values():  # this machine has none of the fakes in /usr/local/bin
        assert [c.description for c in changes if c.description.startswith("upload")] == [
            f"upload {binaries / name} to /usr/local/bin/{name}" for name in binaries_module.NAMES
        ]
        # Sent gzipped from a file in the cache as it is read, not held in memory per host; the
        # host decompresses it into place.
        writes = [c.action for c in changes if c.description.startswith("upload")]
        assert [(w.path, w.mode, w.gzipped) for w in writes] == [
            (f"/usr/local/bin/{name}", 0o755, True) for name in binaries_module.NAMES]
        for write, name in zip(writes, binaries_module.NAMES):
            assert isinstance(write.content, Path) and gzip.decompress(write.content.read_bytes()) == \
                (binaries / name).read_bytes()


def test_a_bundle_whose_files_differ_from_its_manifest_is_refused(tmp_path, example_dir):
    (tmp_path / "cni").mkdir()
    (tmp_path / "containerd").mkdir()
    entries = []
    for name in [*binaries_module.NAMES, *(f"cni/{n}" for n in CNI_BINARIES),
                 *(f"containerd/{n}" for n in CONTAINERD_BINARIES)]:
        (tmp_path / name).write_text(f"fake {name}\n")  # FAKE files: only their digests matter here
        entries.append(BinaryEntry(name, file_digest(tmp_path / name), 10, "test"))
    Manifest("v1.37.2", "source", "amd64", binaries=entries).write(tmp_path)
    cluster = load_cluster(example_dir)
    cluster = dataclasses.replace(cluster, kubernetes=cluster.kubernetes.model_copy(
        update={"binaries_dir": str(tmp_path), "package_source": "binaries"}))
    found = binaries_module.Binaries.from_cluster(cluster)
    assert [b.name for b in found.cni] == list(CNI_BINARIES)
    assert [b.name for b in found.containerd] == list(CONTAINERD_BINARIES)  # containerd-source: bundle
    (tmp_path / "kubelet").write_text("changed after the bundle was made\n")
    with pytest.raises(OpenIError, match="kubelet does not match .*manifest.json .sha256 differs"):
        binaries_module.Binaries.from_cluster(cluster)


def test_containerd_configuration_follows_the_host(example_dir):
    from openi_tasks.k8s.phases.packages import containerd_config

    cluster = load_cluster(example_dir)
    facts = dataclasses.replace(GOOD, containerd="1.6.20", cap_sys_resource=False)

    class FakeRun:  # containerd_config reads only the cluster from the run
        pass

    run = FakeRun()
    run.cluster = cluster
    cpu_host = FakeRun()
    cpu_host.machine = next(m for m in cluster.machines if not m.gpu_count)
    old = tomllib.loads(containerd_config(run, cpu_host, facts, "reg.example/pause:3.10.2").content)
    cri = old["plugins"]["io.containerd.grpc.v1.cri"]
    assert old["version"] == 2 and cri["sandbox_image"] == "reg.example/pause:3.10.2"
    assert cri["restrict_oom_score_adj"] is True  # the host may not lower OOM scores
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d:/etc/docker/certs.d"
    assert set(cri["containerd"]["runtimes"]) == {"runc"}, "no NVIDIA runtime where there is no GPU"
    new = tomllib.loads(containerd_config(run, cpu_host, dataclasses.replace(facts, containerd="v2.2.9",
                                                                             cap_sys_resource=True),
                                          "reg.example/pause:3.10.2").content)
    assert new["version"] == 3
    assert new["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == "reg.example/pause:3.10.2"
    assert new["plugins"]["io.containerd.cri.v1.runtime"]["restrict_oom_score_adj"] is False
    assert "root" not in new and "grpc" not in new  # the host's own containerd keeps its places


def test_openi_tasks_own_containerd_has_places_of_its_own_beside_dockers(example_dir):
    """containerd-source: bundle: containerd 2's format whatever the host's containerd is, with its
    own root, state and socket (none of them Docker's containerd's), NRI off (its socket is one per
    host), and kubelet's CRI endpoint and kubeadm's reset pointed at that socket."""
    from openi_tasks.k8s import kubeadm as kubeadm_module
    from openi_tasks.k8s.phases.packages import containerd_config
    from openi_tasks.k8s.runtime import HOST, OWN, runtime_of

    cluster = load_cluster(example_dir)
    own = dataclasses.replace(cluster, kubernetes=cluster.kubernetes.model_copy(update={"containerd_source": "bundle"}))
    assert runtime_of(cluster) is HOST and runtime_of(own) is OWN
    run, host = types.SimpleNamespace(cluster=own), types.SimpleNamespace(machine=own.machines[0])
    facts = dataclasses.replace(GOOD, containerd="1.6.20")  # Debian's, Docker's: not the one configured here
    rendered = containerd_config(run, host, facts, "reg.example/pause:3.10.2")
    config = tomllib.loads(rendered.content)
    assert rendered.path == "/etc/openi/containerd/config.toml" and config["version"] == 3
    assert (config["root"], config["state"], config["grpc"]["address"]) == \
        ("/var/lib/openi-containerd", "/run/openi-containerd", "/run/openi-containerd/containerd.sock")
    assert config["plugins"]["io.containerd.nri.v1.nri"]["disable"] is True
    images = config["plugins"]["io.containerd.cri.v1.images"]
    assert images["registry"]["config_path"] == "/etc/containerd/certs.d:/etc/docker/certs.d"
    assert images["use_local_image_pull"] is True  # the only pull that reads every directory of config_path
    machine = own.masters[0]
    registration = kubeadm_module._registration(own, machine, kubeadm_module.Adaptations()).to_dict()
    assert registration["criSocket"] == "unix:///run/openi-containerd/containerd.sock"
    assert kubeadm_module.reset_command(own).endswith("--cri-socket unix:///run/openi-containerd/containerd.sock")
    assert kubeadm_module._registration(cluster, machine, kubeadm_module.Adaptations()).to_dict()["criSocket"] == \
        "unix:///run/containerd/containerd.sock"



@pytest.mark.parametrize("containerd, plugin", [("1.6.20", "io.containerd.grpc.v1.cri"),
                                                ("2.2.9", "io.containerd.cri.v1.runtime")])
def test_a_gpu_host_s_containerd_has_the_nvidia_runtime(example_dir, containerd, plugin):
    from openi_tasks.k8s.phases.packages import containerd_config

    cluster = load_cluster(example_dir)

    class Fake:
        pass

    run, gpu_host = Fake(), Fake()
    run.cluster = cluster
    gpu_host.machine = next(m for m in cluster.machines if m.gpu_count)
    facts = dataclasses.replace(GOOD, containerd=containerd)
    config = tomllib.loads(containerd_config(run, gpu_host, facts, "reg.example/pause:3.10.2").content)
    runtimes = config["plugins"][plugin]["containerd"]["runtimes"]
    assert runtimes["nvidia"] == {"runtime_type": "io.containerd.runc.v2",
                                  "options": {"BinaryName": "/usr/bin/nvidia-container-runtime", "SystemdCgroup": True}}
    assert runtimes["runc"]["options"]["SystemdCgroup"] is True
    assert "default_runtime_name" not in config["plugins"][plugin]["containerd"]
    run.cluster = dataclasses.replace(cluster, kubernetes=cluster.kubernetes.model_copy(update={"gpu_default_runtime": True}))
    config = tomllib.loads(containerd_config(run, gpu_host, facts, "reg.example/pause:3.10.2").content)
    assert config["plugins"][plugin]["containerd"]["default_runtime_name"] == "nvidia"


class _ImagesHost:
    """What the images phase asks a host: kubeadm's image list and ctr's."""

    def __init__(self, machine, kubeadm_lists: str, present: str) -> None:
        self.machine, self.name = machine, machine.hostname
        self.kubeadm_lists, self.present = kubeadm_lists, present

    def sh(self, command: str, check: bool = False):
        if command.startswith("kubeadm config images list"):
            return types.SimpleNamespace(exited=0, stdout=self.kubeadm_lists)
        assert "images ls -q" in command, command
        return types.SimpleNamespace(exited=0, stdout=self.present)


@pytest.mark.parametrize("containerd, local", [("1.6.20", False), ("2.1.4", True)])
def test_the_images_phase_pulls_only_what_a_worker_starts_first_and_lacks(example_dir, containerd, local):
    """On workers and the proxy, not the masters (their joins pull their own): kube-proxy, pause
    and the pod network's; never the control plane's, CoreDNS or etcd; nothing already there;
    `--local` only for a containerd 2 (ctr 1.6 has no such flag)."""
    from openi_tasks.k8s.phases.images import NodeImages, pod_network_images

    cluster = load_cluster(example_dir)
    kubeadm_lists = "".join(f"reg.example/{name}\n" for name in (
        "kube-apiserver:v1.37.2", "kube-controller-manager:v1.37.2", "kube-scheduler:v1.37.2", "kube-proxy:v1.37.2",
        "coredns:v1.14.6", "pause:3.10.2", "etcd:3.7.0-0"))
    network = pod_network_images(types.SimpleNamespace(cluster=cluster))
    assert len(network) == 2  # flannel and its CNI plugin
    worker = cluster.workers[0]
    run = types.SimpleNamespace(cluster=cluster, dry_run=False,
                                facts={worker.hostname: dataclasses.replace(GOOD, containerd=containerd)})

    def pulled(present=""):
        changes = NodeImages().plan(run, _ImagesHost(worker, kubeadm_lists, present))
        assert all((" --local " in c.action) == local for c in changes)
        return [c.action.rsplit(" ", 2)[-2] for c in changes]

    assert pulled() == ["reg.example/kube-proxy:v1.37.2", "reg.example/pause:3.10.2", *network]
    assert pulled(present="reg.example/pause:3.10.2\n" + "\n".join(network)) == ["reg.example/kube-proxy:v1.37.2"]

    # A dry run on a host without kubeadm yet (the packages phase would install it) asks it nothing.
    run.dry_run, run.facts[worker.hostname] = True, dataclasses.replace(GOOD, kubeadm="none")
    planned = NodeImages().plan(run, types.SimpleNamespace(machine=worker, name=worker.hostname, sh=None))
    assert [c.description for c in planned] == ["pull the images this node's kubelet starts first into containerd"]

    hosts = [types.SimpleNamespace(name=m.hostname, machine=m) for m in cluster.nodes]
    chosen = NodeImages().hosts(types.SimpleNamespace(hosts=lambda: hosts))
    assert [h.name for h in chosen] == [m.hostname for m in cluster.nodes if not m.is_master] and chosen


def test_an_image_is_pulled_with_the_registry_certificates_the_cri_reads(tmp_path, monkeypatch):
    """The command, run by a real shell against a ctr that records its arguments: the first of the
    CRI's certificate directories that has one for the registry, else the first."""
    import subprocess
    from openi_tasks.k8s.phases import images

    first, second = tmp_path / "containerd-certs.d", tmp_path / "docker-certs.d"
    monkeypatch.setattr(images, "CERTS_DIRS", (str(first), str(second)))
    ctr = tmp_path / "ctr"
    ctr.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path}/args\necho progress\n")
    ctr.chmod(0o755)

    def hosts_dir() -> str:
        done = subprocess.run(["bash", "-c", images.pull_command(str(ctr), "reg.example:5000/kube-proxy:v1.37.2", True)],
                              capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout == "", done  # progress is not kept
        args = (tmp_path / "args").read_text().split("\n")[:-1]
        assert args[:4] == ["-n", "k8s.io", "images", "pull"] and args[-1] == "reg.example:5000/kube-proxy:v1.37.2"
        assert "--local" in args
        return args[args.index("--hosts-dir") + 1]

    assert hosts_dir() == str(first)  # neither has the registry: the CRI's defaults
    (second / "reg.example:5000").mkdir(parents=True)
    assert hosts_dir() == str(second)  # Docker's, where the testbed's registry CA is
    (first / "reg.example:5000").mkdir(parents=True)
    assert hosts_dir() == str(first)


def test_short_image_names_are_qualified_as_containerd_names_them():
    from openi_tasks.k8s.phases.images import qualified

    assert qualified("flannel/flannel:v0.28.10") == "docker.io/flannel/flannel:v0.28.10"
    assert qualified("busybox") == "docker.io/library/busybox:latest"
    assert qualified("reg.example:5000/pause:3.10.2") == "reg.example:5000/pause:3.10.2"
    assert qualified("localhost/stand-in") == "localhost/stand-in:latest"
    assert qualified("reg.example/x@sha256:" + "0" * 64) == "reg.example/x@sha256:" + "0" * 64
