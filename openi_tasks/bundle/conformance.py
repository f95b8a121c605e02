"""The conformance suite in the bundle (`inv k8s.bundle --from-source --conformance`): Kubernetes'
own e2e tests, air-gapped.

    <bundle>/conformance/e2e.test    go test -c k8s.io/kubernetes/test/e2e, at the cluster's version
    <bundle>/conformance/ginkgo      github.com/onsi/ginkgo/v2/ginkgo, at the version Kubernetes requires

and the images the `[Conformance]` tests run, built here and tagged where the suite looks for
them once its registries are remapped to the cluster's (`repo_list`):
`<docker-registry>/e2e-test-images/<name>:<tag>`, `<docker-registry>/etcd:<tag>`, with the
names and tags read from the suite's own image manifest (test/utils/image/manifest.go).

What each image is made of here differs from upstream where upstream's base cannot be pulled
(`SUBSTITUTES`); the images that cannot be built here are named in `NOT_BUILT`, and the tests
that need them are skipped by name (`k8s/conformance.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import OpenIError

MANIFEST_GO = "test/utils/image/manifest.go"
SUITE_DIR = "conformance"
# The suite's registries (RegistryList's yaml keys) and where they are in the cluster's registry.
# invalidRegistry stays invalid (a test expects a pull to fail); privateRegistry stays: its
# images need credentials of Google's, and no conformance test uses them.
REGISTRIES = {"promoterE2eRegistry": "e2e-test-images", "gcRegistry": "", "gcEtcdRegistry": "",
              "buildImageRegistry": "build-image", "sigStorageRegistry": "sig-storage",
              "dockerLibraryRegistry": "library", "cloudProviderGcpRegistry": "cloud-provider-gcp"}
MANIFEST_REGISTRY = {"PromoterE2eRegistry": "promoterE2eRegistry", "GcRegistry": "gcRegistry",
                     "GcEtcdRegistry": "gcEtcdRegistry", "BuildImageRegistry": "buildImageRegistry",
                     "SigStorageRegistry": "sigStorageRegistry", "DockerLibraryRegistry": "dockerLibraryRegistry",
                     "CloudProviderGcpRegistry": "cloudProviderGcpRegistry", "PrivateRegistry": "",
                     "InvalidRegistry": ""}
# The images the conformance tests use: image ID (manifest.go) -> build context under
# templates/bundle/conformance/ (pause and etcd are the bundle's own recipes).
BUILT = {"Agnhost": "agnhost", "AgnhostPrev": "agnhost", "BusyBox": "busybox", "Nginx": "nginx",
         "NginxNew": "nginx", "APIServer": "sample-apiserver", "NonRoot": "nonroot", "Nonewprivs": "nonewprivs",
         "Kitten": "kitten", "Nautilus": "nautilus", "GlibcDnsTesting": "glibc-dns-testing",
         "Etcd": "etcd", "Pause": "pause"}
# Where an image here is not what upstream ships, and why (the base images cannot be pulled here).
SUBSTITUTES = {
    "agnhost": "agnhost from k8s.io/kubernetes' test/images/agnhost at the cluster's version, on Debian 12 "
               "(upstream: Alpine) with the same tools from Debian's packages and the bundle's CoreDNS",
    "agnhost-prev": "the same agnhost build under the older tag the suite names (AgnhostPrev): the tests "
                    "that use both change a pod's image from one tag to the other",
    "busybox": "upstream's busybox at the tag's version, built static with its defconfig from Debian 13's copy of "
               "the source tarball, alone on an empty image as busybox's own image is",
    "nginx": "Debian 12's nginx under both tags the suite names (Nginx, NginxNew): the tests change a "
             "pod's image from one to the other",
    "sample-apiserver": "k8s.io/sample-apiserver at the cluster's version (the suite's tag names 1.29)",
    "etcd": "etcd built from go.etcd.io/etcd at the tag's version",
    "kitten": "kitten's page and data on the agnhost image above",
    "nautilus": "nautilus's page and data on the agnhost image above",
}
# Images of the suite's manifest that are not built here; no [Conformance] test runs them.
NOT_BUILT = ("AgnhostPrivate", "AppArmorLoader", "DistrolessIptables", "IpcUtils", "NFSProvisioner",
             "NodePerfNpbEp", "NodePerfNpbIs", "NodePerfPytorchWideDeep", "Perl", "RegressionIssue74839",
             "ResourceConsumer", "SampleDevicePlugin", "VolumeNFSServer", "VolumeISCSIServer",
             "InvalidRegistryImage")


@dataclass(frozen=True)
class SuiteImage:
    """One image of the suite's manifest: its ID there, name and tag, and where the cluster pulls it."""

    image_id: str
    registry_key: str  # promoterE2eRegistry, gcRegistry, ...
    name: str
    tag: str

    def ref(self, registry: str) -> str:
        path = REGISTRIES.get(self.registry_key)
        if path is None:
            raise OpenIError(f"the suite's image {self.image_id} is in a registry that is not remapped")
        return "/".join(p for p in (registry.rstrip("/"), path, self.name) if p) + f":{self.tag}"


def suite_images(module_dir: Path) -> dict[str, SuiteImage]:
    """Every image of the suite's manifest (`configs[Agnhost] = Config{list.PromoterE2eRegistry,
    "agnhost", "2.66.1"}`), by image ID."""
    text = (module_dir / MANIFEST_GO).read_text()
    found = {}
    for image_id, registry, name, tag in re.findall(
            r'configs\[(\w+)\]\s*=\s*Config\{list\.(\w+),\s*"([^"]+)",\s*"([^"]+)"\}', text):
        found[image_id] = SuiteImage(image_id, MANIFEST_REGISTRY.get(registry, ""), name, tag)
    missing = [i for i in BUILT if i not in found]
    if missing:
        raise OpenIError(f"{module_dir / MANIFEST_GO} names no image {', '.join(missing)}: this version's suite "
                         f"is not one openi-tasks knows how to build")
    return found


def repo_list(registry: str) -> str:
    """The suite's registry list (KUBE_TEST_REPO_LIST) pointing at the cluster's registry."""
    lines = [f"{key}: {'/'.join(p for p in (registry.rstrip('/'), path) if p)}" for key, path in REGISTRIES.items()]
    return "# Written by openi-tasks: the conformance suite's images are in the cluster's registry.\n" + \
        "\n".join(lines) + "\n"
