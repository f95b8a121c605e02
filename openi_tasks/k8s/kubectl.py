"""`inv k8s.install-kubectl`: kubectl on the operator's machine, and the cluster's context in
~/.kube/config (merged: other clusters, users and contexts are never touched)."""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import yaml

from ..config import Cluster
from ..download import download_checked, published_sha256
from ..errors import OpenIError
from ..state import StateDir, write_private

ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def installed_version(kubectl: Path) -> str | None:
    try:
        out = subprocess.run([str(kubectl), "version", "--client", "-o", "yaml"], capture_output=True, text=True, timeout=20)
    except OSError:
        return None
    data = yaml.safe_load(out.stdout) if out.returncode == 0 else None
    return (data or {}).get("clientVersion", {}).get("gitVersion")


def install_binary(cluster: Cluster, bin_dir: Path) -> str:
    """Put the configured version of kubectl in `bin_dir`; say what was done."""
    k = cluster.kubernetes
    target = bin_dir / "kubectl"
    if installed_version(target) == k.kubernetes_version:
        return f"{target} is already {k.kubernetes_version}"
    bin_dir.mkdir(parents=True, exist_ok=True)
    if k.package_source == "binaries":
        source = Path(k.binaries_dir or "").expanduser() / "kubectl"
        if not source.is_file():
            raise OpenIError(f"{source} does not exist (kubernetes.binaries-dir must hold kubectl)")
        shutil.copyfile(source, target)
        origin = str(source)
    else:
        arch = ARCH.get(platform.machine(), platform.machine())
        url = f"{k.kubectl_download_url.rstrip('/')}/{k.kubernetes_version}/bin/linux/{arch}/kubectl"
        download_checked(url, target, published_sha256(url + ".sha256"))
        origin = url
    target.chmod(0o755)
    version = installed_version(target)
    if version is None:
        raise OpenIError(f"{target} (from {origin}) does not run")
    return f"installed kubectl {version} from {origin} into {target}"


def merge_kubeconfig(kube_config: Path, admin: Path) -> str:
    """Add (or refresh) the cluster's entries in `kube_config`; keep a backup of the old file."""
    if not admin.is_file():
        raise OpenIError(f"no admin kubeconfig at {admin}: deploy the cluster first (inv k8s.deploy)")
    ours = yaml.safe_load(admin.read_text())
    if kube_config.is_file():
        merged = yaml.safe_load(kube_config.read_text()) or {}
        write_private(kube_config.with_name(kube_config.name + ".openi-backup"), kube_config.read_bytes())
    else:
        merged = {"apiVersion": "v1", "kind": "Config", "preferences": {}}
    for section in ("clusters", "users", "contexts"):
        entries = [e for e in merged.get(section) or [] if e.get("name") not in {o["name"] for o in ours[section]}]
        merged[section] = entries + ours[section]
    context = ours["current-context"]
    if not merged.get("current-context"):
        merged["current-context"] = context
    write_private(kube_config, yaml.safe_dump(merged, sort_keys=False))
    return f"context {context} in {kube_config} (use it: kubectl --context {context} get nodes)"


def install_kubectl(cluster: Cluster, bin_dir: Path, kube_config: Path) -> list[str]:
    return [install_binary(cluster, bin_dir), merge_kubeconfig(kube_config, StateDir.of(cluster).admin_conf)]
