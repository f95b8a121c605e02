"""images: the images the kubelet of each worker (and of the proxy node) starts first, pulled into
kubelet's runtime while the control plane is set up (this phase runs together with control-plane):
the sandbox (pause) image, kube-proxy and the pod network's.

Without it such a node pulls them only after it has joined, one after another, and is Ready that
much later; it waits idle for the masters meanwhile.

Pulled with the runtime's own `ctr` into its Kubernetes namespace (k8s.io), where containerd's CRI
finds them, with the registry certificates of the same directories the CRI reads (see
templates/k8s/containerd/config.toml.j2); only images that are not there yet. CoreDNS and the
add-ons are left to the nodes the scheduler picks.
"""

from __future__ import annotations

import shlex

from ...phase import Change, Phase
from ...run import Run
from ...ssh import Host
from ..addon_objects import pod_network_objects
from ..runtime import runtime_of
from .facts import facts_of
from .packages import containerd_release, kubeadm_images

FIRST = ("kube-proxy", "pause")  # of kubeadm's images, what a worker's kubelet starts
# The CRI's registry configuration directories (config_path), in the order it reads them.
CERTS_DIRS = ("/etc/containerd/certs.d", "/etc/docker/certs.d")


def image_name(ref: str) -> str:
    """The repository's last part: 172.30.0.2:5000/kube-proxy:v1.37.2 -> kube-proxy."""
    last = ref.split("@")[0].rsplit("/", 1)[-1]
    return last.split(":")[0]


def qualified(ref: str) -> str:
    """`ref` as containerd names it (ctr takes no short names): flannel/flannel:v1 is
    docker.io/flannel/flannel:v1, and busybox is docker.io/library/busybox:latest."""
    first, _, rest = ref.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        ref = f"docker.io/{ref}" if rest else f"docker.io/library/{ref}"
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last or "@" in last else f"{ref}:latest"


def pod_network_images(run: Run) -> list[str]:
    """Every image of the pod network's DaemonSets, init containers included."""
    images = []
    for obj in pod_network_objects(run.cluster):
        if obj["kind"] == "DaemonSet":
            pod = obj["spec"]["template"]["spec"]
            images += [qualified(c["image"]) for c in pod.get("initContainers", []) + pod.get("containers", [])]
    return list(dict.fromkeys(images))


def pull_command(ctr: str, ref: str, local: bool) -> str:
    """`ctr images pull` of `ref` into the k8s.io namespace, trusting the registry as the CRI does
    (the first of CERTS_DIRS that has a directory for the registry); progress is not kept."""
    registry = shlex.quote(ref.split("/")[0])
    return (f"dir={CERTS_DIRS[0]}; for d in {' '.join(CERTS_DIRS)}; do [ -d \"$d\"/{registry} ] && {{ dir=$d; break; }}; done; "
            f"{ctr} -n k8s.io images pull{' --local' if local else ''} --hosts-dir \"$dir\" {shlex.quote(ref)} >/dev/null")


class NodeImages(Phase):
    name = "images"
    title = "Pull the images the workers' kubelets start first, while the control plane comes up"

    def hosts(self, run: Run) -> list[Host]:
        """Workers and the proxy, idle while the masters come up. Not the masters: their joins pull
        their images themselves, and pulls beside etcd and the API servers slowed them (on the
        testbed, pulling on the later masters too made the first master's init 31 to 40 s instead
        of 11 to 17)."""
        return [host for host in run.hosts() if not host.machine.is_master]

    def plan(self, run: Run, host: Host) -> list[Change]:
        runtime = runtime_of(run.cluster)
        facts = facts_of(run, host)
        if run.dry_run and facts.kubeadm == "none":  # the packages phase would have installed it
            return [Change(f"pull the images this node's kubelet starts first into {runtime.service}", lambda: None)]
        wanted = [qualified(ref) for ref in kubeadm_images(run, host) if image_name(ref) in FIRST]
        wanted += pod_network_images(run)
        listed = host.sh(f"{runtime.ctr} -n k8s.io images ls -q 2>/dev/null")
        present = set(listed.stdout.split()) if listed.exited == 0 else set()
        local = containerd_release(run, facts) >= (2, 0)
        return [Change(f"pull {ref} into {runtime.service}", pull_command(runtime.ctr, ref, local))
                for ref in wanted if ref not in present]
