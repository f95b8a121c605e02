"""GPU facts: the facts script's GPU lines run in a shell, parsed, and compared with the SKU."""

from __future__ import annotations

import stat
import subprocess

import pytest

from openi_tasks.config import load_cluster
from openi_tasks.k8s import gpufacts, hostfacts

from .conftest import EXAMPLE


@pytest.fixture(scope="module")
def cluster():
    return load_cluster(EXAMPLE)


def gpu_machine(cluster):
    return next(m for m in cluster.machines if m.gpu_count)  # NC24R: 4 x teslak80


def run_script(tmp_path, nvidia_smi: str | None) -> dict[str, str]:
    """The GPU part of the facts script in bash, with a stand-in nvidia-smi (or none) on the PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("cat", "grep", "awk", "head"):
        (bin_dir / tool).symlink_to(subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip())
    if nvidia_smi is not None:
        smi = bin_dir / "nvidia-smi"
        smi.write_text(f"#!/bin/sh\n{nvidia_smi}\n")
        smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    out = subprocess.run(["/bin/bash", "-c", gpufacts.SCRIPT], capture_output=True, text=True,
                         env={"PATH": str(bin_dir)}, timeout=30).stdout
    return hostfacts.key_values(out)


def test_nvidia_smi_gives_models_and_driver(tmp_path, cluster):
    raw = run_script(tmp_path, "echo 'Tesla K80, 535.104.05'; echo 'Tesla K80, 535.104.05'")
    gpus = gpufacts.parse(raw)
    assert gpus == gpufacts.GpuFacts("nvidia-smi", ("Tesla K80", "Tesla K80"), "535.104.05")
    assert gpufacts.mismatch(gpu_machine(cluster), gpus) == \
        "machine type NC24R says 4 GPUs, 2 found by nvidia-smi"


def test_a_failing_nvidia_smi_is_reported_and_the_pci_bus_counted(tmp_path, cluster):
    raw = run_script(tmp_path, "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver'; "
                               "exit 9")
    gpus = gpufacts.parse(raw)
    assert gpus.source == "pci"
    assert gpus.error == "nvidia-smi failed: NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver"
    # This machine has no NVIDIA device on its PCI bus.
    assert gpus.count == 0
    assert "4 GPUs, 0 found by pci (nvidia-smi failed" in gpufacts.mismatch(gpu_machine(cluster), gpus)


def test_without_nvidia_smi_a_host_without_gpus_matches_a_type_without_gpus(tmp_path, cluster):
    gpus = gpufacts.parse(run_script(tmp_path, None))
    assert gpus == gpufacts.GpuFacts("pci")
    cpu_only = next(m for m in cluster.machines if not m.gpu_count)
    assert gpufacts.mismatch(cpu_only, gpus) == ""


def test_the_model_must_name_the_type(cluster):
    machine = gpu_machine(cluster)
    right = gpufacts.GpuFacts("nvidia-smi", ("Tesla K80",) * 4, "535")
    assert gpufacts.mismatch(machine, right) == ""
    wrong = gpufacts.GpuFacts("nvidia-smi", ("Tesla K80",) * 3 + ("NVIDIA A100-SXM4-40GB",), "535")
    assert gpufacts.mismatch(machine, wrong) == "machine type NC24R says teslak80, nvidia-smi reports NVIDIA A100-SXM4-40GB"
    # The PCI bus names no model: only the count is compared.
    assert gpufacts.mismatch(machine, gpufacts.GpuFacts("pci", ("NVIDIA PCI device 0x102d",) * 4)) == ""


def test_a_mismatch_refuses_the_host_unless_the_operator_allows_it(cluster):
    import dataclasses

    machine = gpu_machine(cluster)
    facts = hostfacts.HostFacts(
        os_id="debian", os_version="12", os_codename="bookworm", arch="x86_64", hostname=machine.hostname,
        resolves=(), swap=False, overlay="yes", br_netfilter="yes", sysctls={}, free_bytes=10 * 2**30,
        listening=(), systemd=True, docker=True, docker_active=True, managed=(), kubelet_joined=False,
        apiserver=False, kubeadm="none", gpus=gpufacts.GpuFacts("nvidia-smi", ("Tesla K80",) * 3, "535"))
    assert hostfacts.problems(cluster, machine, facts) == [
        "machine type NC24R says 4 GPUs, 3 found by nvidia-smi (set kubernetes.gpu-mismatch: warn to deploy anyway)"]
    lenient = dataclasses.replace(cluster, kubernetes=cluster.kubernetes.model_copy(update={"gpu_mismatch": "warn"}))
    assert hostfacts.problems(lenient, machine, facts) == []


def test_status_shows_expected_found_and_allocatable_gpus(cluster):
    from openi_tasks.k8s.status import gpu_rows

    gpu_hosts = [m.hostname for m in cluster.machines if m.gpu_count]
    cpu_host = next(m.hostname for m in cluster.machines if not m.gpu_count)
    four = gpufacts.GpuFacts("nvidia-smi", ("Tesla K80",) * 4, "535.104.05")
    found = {gpu_hosts[0]: four, cpu_host: gpufacts.GpuFacts("pci", ("NVIDIA PCI device 0x1db4",))}
    rows = gpu_rows(cluster, found, {gpu_hosts[0].lower(): "4"})
    by_host = {row[0]: row for row in rows}
    assert by_host[gpu_hosts[0]] == (gpu_hosts[0], "4 teslak80", "4 (nvidia-smi, driver 535.104.05)", "4", "ok")
    # A GPU where its machine type says none is shown, with the problem.
    assert by_host[cpu_host][2:] == ("1 (pci)", "0", f"machine type {cluster.by_name[cpu_host].sku_name} says 0 GPUs, "
                                                    f"1 found by pci")
    for other in gpu_hosts[1:]:
        assert by_host[other][2:] == ("?", "0", "not reachable")
    # Found, but not advertised to Kubernetes.
    rows = gpu_rows(cluster, {gpu_hosts[0]: four}, {})
    assert rows[0][-1] == "Kubernetes can allocate 0 of 4 (is the drivers service deployed?)"


def test_a_working_host_driver_is_labelled_and_the_drivers_service_says_it_leaves_it_alone(cluster):
    import dataclasses

    from openi_tasks.k8s.addon_objects import HOST_DRIVER_LABEL, host_driver_labels
    from openi_tasks.services.drivers import host_drivers

    gpu_hosts = [m for m in cluster.nodes if m.gpu_count]
    cpu_host = next(m for m in cluster.nodes if not m.gpu_count)
    working, gone = gpu_hosts[0], gpu_hosts[1]
    base = hostfacts.HostFacts(
        os_id="debian", os_version="12", os_codename="bookworm", arch="x86_64", hostname="any", resolves=(),
        swap=False, overlay="yes", br_netfilter="yes", sysctls={}, free_bytes=10 * 2**30, listening=(), systemd=True,
        docker=True, docker_active=True, managed=(), kubelet_joined=True, apiserver=False, kubeadm="none",
        gpus=gpufacts.GpuFacts("nvidia-smi", ("Tesla K80",), driver="384.111"))
    facts = {working.hostname: base, gone.hostname: dataclasses.replace(base, gpus=gpufacts.GpuFacts("pci", ("10de:102d",))),
             cpu_host.hostname: base}
    labels = {o["metadata"]["name"]: o["metadata"]["labels"] for o in host_driver_labels(cluster, facts)}
    # Only GPU hosts whose facts were gathered; no label (which removes an old one) where nvidia-smi did not answer.
    assert labels == {working.hostname.lower(): {HOST_DRIVER_LABEL: "384.111"}, gone.hostname.lower(): {}}
    node_labels = {working.hostname.lower(): {HOST_DRIVER_LABEL: "384.111"},
                   gone.hostname.lower(): {HOST_DRIVER_LABEL: "550.54.15"}}
    said = host_drivers(cluster, lambda node: node_labels.get(node, {}))
    assert said[0] == (f"{working.hostname}: NVIDIA driver 384.111 works on the host: left alone (no unload, no install)",
                       False)
    assert said[1][1] is True and "the configuration says nvidia-drivers-version 384.111" in said[1][0]
    assert len(said) == 2
