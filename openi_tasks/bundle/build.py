"""`inv k8s.bundle`: gather exactly what a configuration needs, with a manifest of sha256 sums.

From upstream releases (the default): see `upstream`. From source (`--from-source`): every binary
built from its Go module at the pinned version, every image built from the configured base image.
The binaries go into the bundle directory (the configuration's `binaries-dir`, or `--out`); the
images into this machine's Docker, tagged as the cluster pulls them, and with `--push` into the
cluster's registry. Each step is skipped when its inputs have not changed since the last build,
and says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..config import Cluster
from ..dockerbuild import built_image, inputs_hash, is_stand_in, stream_build
from ..errors import OpenIError
from ..localfiles import file_digest, local_docker
from ..render import TEMPLATES
from ..report import Activity, Reporter
from . import conformance, recipes, upstream
from .cache import cache_dir
from .gobuild import BuildFailed, Go, GoBuild
from .manifest import BinaryEntry, ImageEntry, Manifest
from .needs import CNI_BINARIES, NODE_ARCH, NODE_BINARIES, ImageNeed, image_needs

if TYPE_CHECKING:
    import docker

CONTEXTS = TEMPLATES / "bundle"
CONSTANTS = "cmd/kubeadm/app/constants/constants.go"
PAUSE_SOURCE = "build/pause/linux/pause.c"
# Ports the stand-ins answer on: those the shipped manifests probe.
STAND_INS = {
    "dashboard": {"HTTPS_PORTS": "8443"},
    "dashboard-metrics-scraper": {"HTTP_PORTS": "8000"},
}


@dataclass(frozen=True)
class Built:
    """An image to build: its build context, the files that go into it, its build arguments."""

    need: ImageNeed
    context: str
    files: dict[str, Path]
    buildargs: dict[str, str]
    source: str


class BundleBuilder:
    def __init__(self, cluster: Cluster, reporter: Reporter, out: Path, *, base_image: str,
                 client: "docker.DockerClient | None" = None) -> None:
        self.cluster = cluster
        self.reporter = reporter
        self.out = out
        self.base_image = base_image
        self._client = client
        self.build_root = cache_dir() / "build"

    @property
    def client(self) -> "docker.DockerClient":
        if self._client is None:
            self._client = local_docker()
        return self._client

    # --- from upstream releases ------------------------------------------------------------------

    def from_upstream(self, release_url: str, cni_url: str, mirror: str = "",
                      containerd_url: str = upstream.CONTAINERD_RELEASES,
                      runc_url: str = upstream.RUNC_RELEASES) -> Manifest:
        k = self.cluster.kubernetes
        version = k.kubernetes_version
        manifest = Manifest(version, "upstream", NODE_ARCH)
        upstream.refuse_stand_ins(image_needs(self.cluster, "", ""))  # before anything is downloaded
        client = self.client
        with self.reporter.activity(f"bundle for Kubernetes {version} from upstream releases") as activity:
            self.out.mkdir(parents=True, exist_ok=True)
            manifest.binaries += upstream.download_binaries(release_url, version, self.out, activity)
            needs = image_needs(self.cluster, *upstream.kubeadm_image_tags(self.out / "kubeadm", version))
            manifest.binaries += upstream.download_cni(cni_url, k.cni_plugins_version, self.out, activity)
            if k.containerd_from_bundle:
                manifest.binaries += upstream.download_containerd(containerd_url, runc_url, k.containerd_version,
                                                                  k.runc_version, self.out, activity)
            manifest.images += [upstream.pull(client, need, mirror, activity) for need in needs]
        manifest.write(self.out)
        return manifest

    # --- from source ---------------------------------------------------------------------------

    def from_source(self, conformance: bool = False) -> Manifest:
        """`conformance`: also the conformance suite and its images (see `bundle/conformance.py`)."""
        k = self.cluster.kubernetes
        version = k.kubernetes_version
        manifest = Manifest(version, "source", NODE_ARCH)
        with self.reporter.activity(f"bundle for Kubernetes {version} from Go modules") as activity:
            go = Go(progress=activity.event)
            base_id = self._base_image_id()
            module_dir = go.module_dir("k8s.io/kubernetes", version)
            coredns_tag, pause_tag = kubeadm_image_tags(module_dir / CONSTANTS)
            needs = image_needs(self.cluster, coredns_tag, pause_tag)
            # Everything else before Kubernetes' binaries: when another process is building those
            # (tests/prebuild.py on a new machine, a second k8s.bundle), these builds use the wait.
            planned = {need: self._plan_image(go, need, {}, module_dir, activity) for need in needs
                       if need.role not in recipes.CONTROL_PLANE_IMAGES}
            activity.step(f"CNI plugins {k.cni_plugins_version}: {', '.join(CNI_BINARIES)}")
            cni = self._go(go, recipes.cni_plugins(k.cni_plugins_version), activity)
            runtime = self._runtime(go, activity) if k.containerd_from_bundle else []
            activity.step(f"Kubernetes {version}: kubeadm, kubelet, kubectl and the control plane")
            k8s = self._go(go, recipes.kubernetes(version, go.release_time("k8s.io/kubernetes", version)), activity)
            builds = [planned.get(need) or self._plan_image(go, need, k8s, module_dir, activity) for need in needs]
            manifest.binaries += self._install_binaries(k8s, cni, version, k.cni_plugins_version, activity)
            manifest.binaries += self._copy_into_bundle(runtime, activity) if runtime else []
            for build in builds:
                manifest.images.append(self._build_image(build, base_id, activity))
            if conformance:
                self._conformance(go, manifest, module_dir, coredns_tag, base_id, activity)
        manifest.write(self.out)
        return manifest

    def _runtime(self, go: Go, activity: Activity) -> list[tuple[str, Path, str]]:
        """containerd and runc built: (where in the bundle, built file, source) of each binary."""
        k = self.cluster.kubernetes
        activity.step(f"containerd {k.containerd_version} and runc {k.runc_version}, kubelet's runtime")
        containerd = self._go(go, recipes.containerd(k.containerd_version), activity)
        if shutil.which("gcc") is None or not Path("/usr/include/seccomp.h").is_file():
            raise BuildFailed("building runc needs a C compiler and libseccomp's headers "
                              "(apt-get install gcc libseccomp-dev)")
        runc = self._go(go, recipes.runc(k.runc_version), activity)
        return ([(f"containerd/{name}", path, f"github.com/containerd/containerd/v2@{k.containerd_version}")
                 for name, path in containerd.items()] +
                [("containerd/runc", runc["runc"], f"github.com/opencontainers/runc@{k.runc_version}")])

    def _conformance(self, go: Go, manifest: Manifest, module_dir: Path, coredns_tag: str, base_id: str,
                     activity: Activity) -> None:
        """e2e.test and ginkgo into <bundle>/conformance/, and the suite's images (see conformance.py)."""
        version = self.cluster.kubernetes.kubernetes_version
        activity.step(f"the conformance suite of Kubernetes {version}: e2e.test, ginkgo and the tests' programs")
        built = self._go(go, recipes.conformance(version, go.release_time("k8s.io/kubernetes", version)), activity)
        manifest.binaries += self._copy_into_bundle(
            [(f"{conformance.SUITE_DIR}/{name}", built[name], f"{package}@{version}")
             for name, package in (("e2e.test", "k8s.io/kubernetes/test/e2e"),
                                   ("ginkgo", recipes.CONFORMANCE_PROGRAMS["ginkgo"]))], activity)
        coredns = self._go(go, recipes.coredns(coredns_tag), activity)["coredns"]
        images = conformance.suite_images(module_dir)
        registry = self.cluster.kubernetes.docker_registry
        have = {entry.ref: entry for entry in manifest.images}
        agnhost = ""
        for image_id, context in conformance.BUILT.items():
            suite = images[image_id]
            need = ImageNeed(context, suite.ref(registry))
            if need.ref in have:  # the cluster's own pause, say
                continue
            if image_id == "AgnhostPrev":
                entry = self._tag(agnhost, need.ref, conformance.SUBSTITUTES["agnhost-prev"], activity)
            else:
                entry = self._build_image(self._suite_build(go, need, context, built, coredns, module_dir,
                                                            agnhost, activity), base_id, activity)
            if image_id == "Agnhost":
                agnhost = need.ref
            manifest.images.append(entry)
            have[entry.ref] = entry

    def _suite_build(self, go: Go, need: ImageNeed, context: str, built: dict[str, Path], coredns: Path,
                     module_dir: Path, agnhost: str, activity: Activity) -> Built:
        version = self.cluster.kubernetes.kubernetes_version
        source = conformance.SUBSTITUTES.get(context, f"k8s.io/kubernetes@{version}/test/images/{context}")
        if context == "etcd":
            return Built(need, "etcd", self._go(go, recipes.etcd(need.tag), activity), {}, source)
        if context == "pause":
            return Built(need, "pause", {"pause": self._pause(module_dir, need.tag, activity)}, {},
                         f"k8s.io/kubernetes@{version}/{PAUSE_SOURCE}")
        files: dict[str, Path] = {}
        buildargs: dict[str, str] = {}
        if context == "agnhost":
            porter = module_dir / "test/images/agnhost/porter"
            files = {"agnhost": built["agnhost"], "coredns": coredns, "localhost.crt": porter / "localhost.crt",
                     "localhost.key": porter / "localhost.key"}
        elif context in ("kitten", "nautilus"):
            html = module_dir / "test/images" / context / "html"
            files = {f"{context}.jpg": html / f"{context}.jpg", "data.json": html / "data.json"}
            buildargs = {"AGNHOST": agnhost, "AGNHOST_ID": self.client.images.get(agnhost).id}
        elif context == "nginx":
            buildargs = {"TAG": need.tag}
        elif context == "busybox":  # its upstream version: the tag's, before the suite's own suffix
            buildargs = {"VERSION": need.tag.split("-")[0]}
        elif context == "nonewprivs":
            files = {"nnp": built["nonewprivs"]}
        elif context == "sample-apiserver":
            files = {"sample-apiserver": built["sample-apiserver"]}
        elif context == "glibc-dns-testing":
            files = {"coredns": coredns}
        return Built(need, f"{conformance.SUITE_DIR}/{context}", files, buildargs, source)

    def _tag(self, existing: str, ref: str, source: str, activity: Activity) -> ImageEntry:
        image = self.client.images.get(existing)
        if ref not in image.tags:
            image.tag(ref)
        activity.step(f"image {ref}: the image of {existing}")
        return ImageEntry(ref, image.id, source)

    def _go(self, go: Go, spec: GoBuild, activity: Activity) -> dict[str, Path]:
        target = self.build_root / spec.name
        before = (target / ".openi-build").read_text() if (target / ".openi-build").is_file() else ""
        built = go.build(spec, target)
        after = (target / ".openi-build").read_text()
        activity.step(f"{spec.name}: {'unchanged (built before)' if before == after else 'built'}")
        return built

    def _plan_image(self, go: Go, need: ImageNeed, k8s: dict[str, Path], module_dir: Path,
                    activity: Activity) -> Built:
        role, tag = need.role, need.tag
        if role in recipes.CONTROL_PLANE_IMAGES:
            if tag != self.cluster.kubernetes.kubernetes_version:
                raise recipes.NotBuildable(f"{need.ref}: its tag must be the Kubernetes version")
            context = "kube-proxy" if role == "kube-proxy" else "kube-component"
            return Built(need, context, {role: k8s[role]}, {"BINARY": role}, f"k8s.io/kubernetes@{tag}")
        if role == "pause":
            return Built(need, "pause", {"pause": self._pause(module_dir, tag, activity)}, {},
                         f"k8s.io/kubernetes@{self.cluster.kubernetes.kubernetes_version}/{PAUSE_SOURCE}")
        if role == "coredns":
            built = self._go(go, recipes.coredns(tag), activity)
            return Built(need, "coredns", built, {}, f"github.com/coredns/coredns@{tag}")
        if role == "etcd":
            spec = recipes.etcd(tag)
            return Built(need, "etcd", self._go(go, spec, activity), {}, f"go.etcd.io/etcd@{spec.requires['go.etcd.io/etcd/server/v3']}")
        if role == "flannel":
            main_go = (go.module_dir("github.com/flannel-io/flannel", tag) / "main.go").read_text()
            return Built(need, "flannel", self._go(go, recipes.flannel(tag, main_go), activity), {},
                         f"github.com/flannel-io/flannel@{tag} (without the backends "
                         f"{', '.join(recipes.FLANNEL_LEFT_OUT)})")
        if role == "flannel-cni-plugin":
            return Built(need, "flannel-cni-plugin", self._go(go, recipes.flannel_cni_plugin(tag), activity), {},
                         f"github.com/containernetworking/plugins@{tag}/plugins/meta/flannel")
        if role == "haproxy":
            return self._haproxy(need)
        if role in STAND_INS:
            if not is_stand_in(need.name):
                raise recipes.NotBuildable(
                    f"{need.ref}: the {role} cannot be built here (its source is not served). Use a bundle from "
                    f"upstream releases, or name a stand-in image (a repository ending in -stand-in) to run one "
                    f"that only answers its probes")
            source = (CONTEXTS / "stand-in" / "main.go").read_text()
            built = self._go(go, recipes.stand_in(source), activity)
            return Built(need, "stand-in", built, {"NAME": role, **STAND_INS[role]}, "openi-tasks stand-in (STAND-IN)")
        if role == "nvidia-device-plugin":
            if not is_stand_in(need.name):
                raise recipes.NotBuildable(
                    f"{need.ref}: NVIDIA's device plugin needs NVML and GPUs, which a build here cannot use. Use a "
                    f"bundle from upstream releases, or name a stand-in image (a repository ending in -stand-in; "
                    f"kubernetes.nvidia-device-plugin-image) for a cluster without GPUs")
            source = (CONTEXTS / "nvidia-device-plugin-stand-in" / "main.go").read_text()
            version = self.cluster.kubernetes.kubernetes_version
            built = self._go(go, recipes.nvidia_device_plugin_stand_in(version, source), activity)
            return Built(need, "nvidia-device-plugin-stand-in", built, {},
                         "openi-tasks nvidia-device-plugin stand-in (STAND-IN)")
        raise recipes.NotBuildable(f"{need.ref}: no recipe for {role}")

    @staticmethod
    def _haproxy(need: ImageNeed) -> Built:
        if not re.fullmatch(r"debian-[a-z]+", need.tag):
            raise recipes.NotBuildable(
                f"{need.ref}: haproxy is built from the base image's Debian package, so its tag must say so "
                f"(debian-<suite>, e.g. debian-bookworm); set kubernetes.haproxy-image accordingly")
        return Built(need, "haproxy", {}, {}, f"Debian package haproxy ({need.tag})")

    def haproxy_image(self, ref: str) -> ImageEntry:
        """haproxy from the base image's Debian package, tagged `ref`, for a load balancer that is not
        among the configuration's needs (the testbed's stand-in for a cloud load balancer)."""
        with self.reporter.activity(f"image {ref}") as activity:
            return self._build_image(self._haproxy(ImageNeed("haproxy", ref)), self._base_image_id(), activity)

    def _pause(self, module_dir: Path, tag: str, activity: Activity) -> Path:
        """Kubernetes' pause.c, built static with this machine's C compiler."""
        target = self.build_root / f"pause-{tag}" / "pause"
        source = module_dir / PAUSE_SOURCE
        stamp = target.with_name(".openi-build")
        key = f"{file_digest(source)} {tag}"
        if target.is_file() and stamp.is_file() and stamp.read_text() == key:
            activity.step(f"pause {tag}: unchanged (built before)")
            return target
        if shutil.which("gcc") is None:
            raise BuildFailed("building pause needs a C compiler (apt-get install gcc libc6-dev)")
        target.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["gcc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{tag}", "-o", str(target),
                                 str(source)], capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildFailed(f"pause {tag}: gcc failed:\n    {result.stderr.strip()[-800:]}")
        stamp.write_text(key)
        activity.step(f"pause {tag}: built")
        return target

    def _install_binaries(self, k8s: dict[str, Path], cni: dict[str, Path], version: str, cni_version: str,
                          activity: Activity) -> list[BinaryEntry]:
        """Copy the node binaries into the bundle directory where they differ; their manifest entries."""
        files = [(name, k8s[name], f"k8s.io/kubernetes@{version}") for name in NODE_BINARIES]
        files += [(f"cni/{name}", cni[name], f"github.com/containernetworking/plugins@{cni_version}")
                  for name in CNI_BINARIES]
        return self._copy_into_bundle(files, activity)

    def _copy_into_bundle(self, files: list[tuple[str, Path, str]], activity: Activity) -> list[BinaryEntry]:
        """(path in the bundle, built file, source): copied where they differ; their manifest entries."""
        self.out.mkdir(parents=True, exist_ok=True)
        entries, copied = [], []
        for relative, built, source in files:
            target = self.out / relative
            digest = file_digest(built)
            if not (target.is_file() and file_digest(target) == digest):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(built, target)
                copied.append(relative)
            target.chmod(0o755)
            entries.append(BinaryEntry(relative, digest, target.stat().st_size, source))
        activity.step(f"binaries in {self.out}: " + (f"copied {', '.join(copied)}" if copied else "unchanged"))
        return entries

    def _base_image_id(self) -> str:
        from docker.errors import ImageNotFound

        try:
            return self.client.images.get(self.base_image).id
        except ImageNotFound:
            try:
                return self.client.images.pull(self.base_image).id
            except Exception as exc:  # any failure to get the base is the same error for the operator
                raise OpenIError(f"the bundle's base image {self.base_image} is not on this machine and cannot be "
                                 f"pulled ({str(exc).splitlines()[0][:200]}); set --base-image") from None

    def _build_image(self, build: Built, base_id: str, activity: Activity) -> ImageEntry:
        with tempfile.TemporaryDirectory(prefix="openi-bundle-") as tmp:
            context = Path(tmp) / build.context
            shutil.copytree(CONTEXTS / build.context, context, ignore=shutil.ignore_patterns("*.go"))
            for name, path in build.files.items():
                shutil.copyfile(path, context / name)
                (context / name).chmod(0o755)
            buildargs = {"BASE": self.base_image, **build.buildargs}
            inputs = inputs_hash(context, base_id, repr(sorted(buildargs.items())))
            image = built_image(self.client, inputs)
            if image is not None:
                if build.need.ref not in image.tags:
                    image.tag(build.need.ref)
                activity.step(f"image {build.need.ref}: unchanged")
                return ImageEntry(build.need.ref, image.id, build.source)
            image_id = stream_build(self.client, build.need.ref, context, build.need.ref, inputs, activity.event,
                                    buildargs=buildargs)
            activity.step(f"image {build.need.ref}: built")
            return ImageEntry(build.need.ref, image_id, build.source)

    # --- loading -------------------------------------------------------------------------------

    def push(self, manifest: Manifest) -> list[tuple[str, str]]:
        """Push every image to the registry its reference names; (ref, pushed | unchanged)."""
        results = []
        with self.reporter.activity(f"push {len(manifest.images)} images") as activity:
            for entry in manifest.images:
                status = push_image(self.client, entry.ref, activity.event)
                activity.step(f"{entry.ref}: {status}")
                results.append((entry.ref, status))
        return results

    def save_images(self, manifest: Manifest) -> None:
        """`docker save` archives of every image into <bundle>/images/, with their sha256."""
        directory = self.out / "images"
        directory.mkdir(parents=True, exist_ok=True)
        with self.reporter.activity(f"save {len(manifest.images)} images into {directory}") as activity:
            for entry in manifest.images:
                name = re.sub(r"[^A-Za-z0-9_.-]", "_", entry.ref.rsplit("/", 1)[-1]) + ".tar"
                target = directory / name
                with open(target, "wb") as handle:
                    for chunk in self.client.images.get(entry.ref).save(named=True):
                        handle.write(chunk)
                entry.archive, entry.archive_sha256 = f"images/{name}", file_digest(target)
                activity.step(f"{entry.ref} -> {entry.archive}")
        manifest.write(self.out)


def push_image(client: "docker.DockerClient", ref: str, progress: Callable[[str], None]) -> str:
    """Push `ref` unless the registry already holds exactly this image; says which."""
    from docker.errors import APIError, NotFound

    image = client.images.get(ref)
    repository = ref.rsplit(":", 1)[0]
    try:
        remote = client.images.get_registry_data(ref).id
        if any(d == f"{repository}@{remote}" for d in image.attrs.get("RepoDigests") or []):
            return "unchanged (already in the registry)"
    except (NotFound, APIError):
        pass  # not there yet (or the registry does not say): push
    for line in client.images.push(ref, stream=True, decode=True):
        if "error" in line:
            raise OpenIError(f"pushing {ref} failed: {line['error']}")
        if line.get("status"):
            progress(f"{ref}: {line['status']} {line.get('progress', '')}")
    return "pushed"


def kubeadm_image_tags(constants: Path) -> tuple[str, str]:
    """(CoreDNS tag, pause tag) that this kubeadm asks for, from its own constants."""
    text = constants.read_text()
    coredns = re.search(r'CoreDNSVersion\s*=\s*"([^"]+)"', text)
    pause = re.search(r'PauseVersion\s*=\s*"([^"]+)"', text)
    if not coredns or not pause:
        raise OpenIError(f"cannot read kubeadm's CoreDNS and pause versions from {constants}")
    return coredns[1], pause[1]
