"""kubeadm's configuration, checked field by field, and what the control-plane phases would write."""

from __future__ import annotations

import dataclasses
import re
import subprocess

import pytest
import yaml

from openi_tasks.config import load_cluster
from openi_tasks.state import StateDir
from openi_tasks.k8s import kubeadm
from openi_tasks.k8s.pki import ClusterPki

from .conftest import EXAMPLE, ORIGINAL


@pytest.fixture(scope="module")
def cluster():
    return load_cluster(EXAMPLE)


@pytest.fixture(scope="module")
def join(cluster, tmp_path_factory):
    pki = ClusterPki(cluster, StateDir(tmp_path_factory.mktemp("state")))
    return kubeadm.JoinSecrets("abcdef.0123456789abcdef", kubeadm.ca_cert_hash(pki.kubernetes_ca.cert_pem)), pki


def test_init_configuration(cluster, join):
    secrets, _ = join
    data = kubeadm.init_configuration(cluster, cluster.masters[0], secrets).to_dict()
    assert data["apiVersion"] == "kubeadm.k8s.io/v1beta4" and data["kind"] == "InitConfiguration"
    assert data["bootstrapTokens"] == [{
        "token": "abcdef.0123456789abcdef", "ttl": "24h0m0s", "usages": ["signing", "authentication"],
        "groups": ["system:bootstrappers:kubeadm:default-node-token"],
    }]
    assert data["nodeRegistration"] == {
        "name": "openi-master-1", "criSocket": "unix:///run/containerd/containerd.sock",
        "kubeletExtraArgs": [{"name": "node-ip", "value": "10.10.0.11"}],
    }
    assert data["localAPIEndpoint"] == {"advertiseAddress": "10.10.0.11", "bindPort": 6443}


def test_cluster_configuration_uses_external_etcd_and_the_endpoint(cluster):
    data = kubeadm.cluster_configuration(cluster).to_dict()
    assert data["kind"] == "ClusterConfiguration"
    assert data["clusterName"] == "openi-example"
    assert data["kubernetesVersion"] == "v1.37.2"
    assert data["controlPlaneEndpoint"] == "10.10.0.10:6443"
    assert data["imageRepository"] == "registry.k8s.io"
    assert data["networking"] == {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12"}
    assert data["etcd"] == {"external": {
        "endpoints": ["https://10.10.0.11:2379", "https://10.10.0.12:2379", "https://10.10.0.13:2379"],
        "caFile": "/etc/kubernetes/pki/etcd/ca.crt",
        "certFile": "/etc/kubernetes/pki/apiserver-etcd-client.crt",
        "keyFile": "/etc/kubernetes/pki/apiserver-etcd-client.key",
    }}
    assert data["apiServer"]["certSANs"] == [
        "10.10.0.10", "10.10.0.11", "10.10.0.12", "10.10.0.13", "openi-master-1", "openi-master-2", "openi-master-3"
    ]
    # No insecure port and no plain-HTTP etcd anywhere in what kubeadm is given.
    text = yaml.safe_dump(data)
    assert "insecure" not in text and "http://" not in text


def test_join_configuration_for_a_master_and_a_worker(cluster, join):
    secrets, _ = join
    master = kubeadm.join_configuration(cluster, cluster.masters[1], secrets).to_dict()
    worker = kubeadm.join_configuration(cluster, cluster.by_name["openi-worker-2"], secrets).to_dict()
    discovery = {"bootstrapToken": {"apiServerEndpoint": "10.10.0.10:6443", "token": "abcdef.0123456789abcdef",
                                    "caCertHashes": [secrets.ca_cert_hash]}}
    assert master["discovery"] == discovery == worker["discovery"]
    assert master["controlPlane"] == {"localAPIEndpoint": {"advertiseAddress": "10.10.0.12", "bindPort": 6443}}
    assert "controlPlane" not in worker
    assert worker["nodeRegistration"]["name"] == "openi-worker-2"
    assert worker["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "node-ip", "value": "10.10.0.22"}]


def test_ca_hash_matches_openssl(join, tmp_path):
    secrets, pki = join
    ca = tmp_path / "ca.crt"
    ca.write_bytes(pki.kubernetes_ca.cert_pem)
    spki = subprocess.run(
        f"openssl x509 -pubkey -noout -in {ca} | openssl pkey -pubin -outform der | sha256sum",
        shell=True, capture_output=True, text=True, check=True,
    ).stdout.split()[0]
    assert secrets.ca_cert_hash == f"sha256:{spki}"


def test_config_files_per_role(cluster, join):
    secrets, _ = join
    path, text = kubeadm.config_file(cluster, cluster.masters[0], secrets)
    kinds = [d["kind"] for d in yaml.safe_load_all(text)]
    assert path == "/etc/openi/kubeadm/init.yaml"
    assert kinds == ["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"]
    path, text = kubeadm.config_file(cluster, cluster.by_name["openi-proxy"], secrets)
    assert path == "/etc/openi/kubeadm/join.yaml"
    # A joining node takes kubelet's and kube-proxy's settings from the cluster (uploaded at init).
    assert [d["kind"] for d in yaml.safe_load_all(text)] == ["JoinConfiguration"]
    path, text = kubeadm.config_file(cluster, cluster.masters[0], secrets)
    kubelet = list(yaml.safe_load_all(text))[2]
    assert kubelet == {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
                       "cgroupDriver": "systemd", "failSwapOn": True,
                       "serializeImagePulls": False, "maxParallelImagePulls": 4,
                       "resolvConf": "/etc/openi/kubelet/resolv.conf"}  # the example sets cluster-dns
    serial = dataclasses.replace(cluster, kubernetes=cluster.kubernetes.model_copy(
        update={"kubelet_max_parallel_image_pulls": 1}))
    kubelet = list(yaml.safe_load_all(kubeadm.config_file(serial, serial.masters[0], secrets)[1]))[2]
    assert "serializeImagePulls" not in kubelet and "maxParallelImagePulls" not in kubelet  # kubelet's default
    thresholds = {"imagefs.available": "2Gi", "nodefs.available": "1Gi"}
    evicting = dataclasses.replace(cluster, kubernetes=cluster.kubernetes.model_copy(
        update={"kubelet_eviction_hard": thresholds}))
    kubelet = list(yaml.safe_load_all(kubeadm.config_file(evicting, evicting.masters[0], secrets)[1]))[2]
    assert kubelet["evictionHard"] == thresholds


def test_host_facts_adapt_kubeadm_s_configuration(cluster, join):
    """A cgroup v1 host: kubelet told not to fail and SystemVerification ignored on that host; a
    host that cannot size conntrack: kube-proxy leaves it alone. None of it on a usual host."""
    secrets, _ = join
    adapt = kubeadm.Adaptations(cgroup_v1=True, any_cgroup_v1=True, conntrack_fixed=True)
    init, _, kubelet, proxy = yaml.safe_load_all(kubeadm.config_file(cluster, cluster.masters[0], secrets, adapt)[1])
    assert init["nodeRegistration"]["ignorePreflightErrors"] == ["SystemVerification"]
    assert kubelet["failCgroupV1"] is False
    assert proxy == {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
                     "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                                   "tcpCloseWaitTimeout": "0s"}}
    join_doc, = yaml.safe_load_all(kubeadm.config_file(
        cluster, cluster.by_name["openi-worker-1"], secrets, kubeadm.Adaptations(any_cgroup_v1=True))[1])
    assert "ignorePreflightErrors" not in join_doc["nodeRegistration"]  # this host is not cgroup v1
    usual = list(yaml.safe_load_all(kubeadm.config_file(cluster, cluster.masters[0], secrets)[1]))
    assert len(usual) == 3 and "failCgroupV1" not in usual[2] and "ignorePreflightErrors" not in \
        usual[0]["nodeRegistration"]


def test_bootstrap_token_is_kept_private_and_well_formed(tmp_path):
    path = StateDir(tmp_path).bootstrap_token
    token = kubeadm.bootstrap_token(path, persist=True)
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", token)
    assert kubeadm.bootstrap_token(path, persist=True) == token
    assert path.stat().st_mode & 0o077 == 0 and path.parent.stat().st_mode & 0o077 == 0


def test_single_master_endpoint_and_ipv4_only_names():
    cluster = load_cluster(ORIGINAL)
    data = kubeadm.cluster_configuration(cluster).to_dict()
    assert data["controlPlaneEndpoint"] == "192.168.1.100:6443"
    assert data["apiServer"]["certSANs"][0] == "192.168.1.100"


def test_control_plane_certificates_are_issued_once_and_kept(cluster, tmp_path):
    first = ClusterPki(cluster, StateDir(tmp_path)).control_plane_files()
    again = ClusterPki(cluster, StateDir(tmp_path)).control_plane_files()
    assert first == again
    assert set(first) == {"ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub",
                          "etcd/ca.crt", "apiserver-etcd-client.crt", "apiserver-etcd-client.key"}
    for key in (tmp_path / "pki").rglob("*.key"):
        assert key.stat().st_mode & 0o077 == 0, key


def test_an_expired_etcd_certificate_is_issued_again(cluster, tmp_path, monkeypatch):
    """A re-deploy must not hand a member the expired certificate it kept in the state directory."""
    import datetime

    from cryptography import x509

    import openi_tasks.pki

    member = cluster.etcd_members[0]
    long_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=900)
    monkeypatch.setattr(openi_tasks.pki, "now", lambda: long_ago)  # issued 900 days ago: expired 75 days ago
    old = ClusterPki(cluster, StateDir(tmp_path)).member_files(member)["server.crt"]
    monkeypatch.undo()
    assert x509.load_pem_x509_certificate(old).not_valid_after_utc < datetime.datetime.now(datetime.timezone.utc)
    new = ClusterPki(cluster, StateDir(tmp_path)).member_files(member)["server.crt"]
    assert new != old
    assert x509.load_pem_x509_certificate(new).not_valid_after_utc > datetime.datetime.now(datetime.timezone.utc)
    assert ClusterPki(cluster, StateDir(tmp_path)).member_files(member)["server.crt"] == new  # kept while valid


def test_a_certificate_due_within_the_renewal_window_is_issued_again(cluster, tmp_path):
    import datetime

    member = cluster.etcd_members[0]
    first = ClusterPki(cluster, StateDir(tmp_path)).member_files(member)
    # 825 days of validity: not due within 800 days, due within 900.
    window = ClusterPki(cluster, StateDir(tmp_path), renew_within=datetime.timedelta(days=800)).member_files(member)
    assert window == first
    renewed = ClusterPki(cluster, StateDir(tmp_path), renew_within=datetime.timedelta(days=900)).member_files(member)
    assert renewed["server.crt"] != first["server.crt"] and renewed["peer.crt"] != first["peer.crt"]
    assert renewed["ca.crt"] == first["ca.crt"], "the CA is never renewed"
    assert ClusterPki(cluster, StateDir(tmp_path)).member_files(member) == renewed


def test_the_renewal_configuration_holds_no_token_and_names_the_master(cluster):
    text = kubeadm.local_config_file(cluster, cluster.masters[1])
    documents = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in documents] == ["InitConfiguration", "ClusterConfiguration"]
    assert documents[0]["bootstrapTokens"] == []
    assert documents[0]["localAPIEndpoint"] == {"advertiseAddress": cluster.masters[1].address, "bindPort": 6443}
    assert documents[1]["etcd"]["external"]["certFile"] == "/etc/kubernetes/pki/apiserver-etcd-client.crt"


def test_the_configured_certificate_lifetime_applies_to_etcd_s_and_kubeadm_s_certificates(cluster, tmp_path):
    import dataclasses
    import datetime

    from cryptography import x509

    short = dataclasses.replace(cluster, kubernetes=cluster.kubernetes.model_copy(update={"certificate_days": 20}))
    server = ClusterPki(short, StateDir(tmp_path)).member_files(short.etcd_members[0])["server.crt"]
    left = x509.load_pem_x509_certificate(server).not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(days=19, hours=23) < left <= datetime.timedelta(days=20)
    assert kubeadm.cluster_configuration(short).to_dict()["certificateValidityPeriod"] == "480h0m0s"
    assert "certificateValidityPeriod" not in kubeadm.cluster_configuration(cluster).to_dict()


def test_the_per_node_pod_subnet_reaches_the_controller_manager_only_when_it_is_not_the_default(cluster):
    import dataclasses

    assert "controllerManager" not in kubeadm.cluster_configuration(cluster).to_dict()  # kubeadm's /24
    smaller = dataclasses.replace(cluster, kubernetes=cluster.kubernetes.model_copy(update={"node_cidr_mask_size": 25}))
    assert kubeadm.cluster_configuration(smaller).to_dict()["controllerManager"] == \
        {"extraArgs": [{"name": "node-cidr-mask-size", "value": "25"}]}


def test_gpu_nodes_join_tainted_only_when_the_configuration_asks(cluster, join):
    import dataclasses

    join, _ = join
    gpu = next(m for m in cluster.nodes if m.gpu_count and not m.is_master)
    cpu = next(m for m in cluster.nodes if not m.gpu_count and not m.is_master)
    untainted = kubeadm.join_configuration(cluster, gpu, join).to_dict()["nodeRegistration"]
    assert "taints" not in untainted  # kubeadm's default: none on a worker
    tainting = dataclasses.replace(cluster, kubernetes=cluster.kubernetes.model_copy(update={"gpu_taint": True}))
    registration = kubeadm.join_configuration(tainting, gpu, join).to_dict()["nodeRegistration"]
    assert registration["taints"] == [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
    assert "taints" not in kubeadm.join_configuration(tainting, cpu, join).to_dict()["nodeRegistration"]
    # A GPU master keeps the control-plane taint that kubeadm would otherwise have given it.
    master = dataclasses.replace(gpu, role="master")
    taints = kubeadm.join_configuration(tainting, master, join).to_dict()["nodeRegistration"]["taints"]
    assert taints == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                      {"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
    args = {a["name"]: a["value"] for a in kubeadm.cluster_configuration(cluster).to_dict()["apiServer"]["extraArgs"]}
    assert args["enable-admission-plugins"] == "NodeRestriction,ExtendedResourceToleration"
