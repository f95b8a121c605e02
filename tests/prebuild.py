"""The slowest Go builds a test session needs, started in the background when it starts (see
conftest.py), in the order the tests need them: the cluster's Kubernetes binaries, SeaweedFS (the
S3 server of test_cluster's --to-s3 test), the conformance suite (e2e.test, ginkgo and the test
images' programs) for the project's default Kubernetes version, then KWOK (the last platform test
simulates nodes with it).

On a machine with warm caches it finds them built and ends in seconds. On a new one it runs at the
idle scheduling priority, so it takes only CPU time that nothing else wants: the unit tests' spare
core first, then what the cluster tests leave while their clusters wait. A test's own
`k8s.bundle` that needs one of them waits for it (Go.build takes turns) or finds it built.

    python -m tests.prebuild
"""

from __future__ import annotations

from openi_tasks.bundle import recipes
from openi_tasks.bundle.cache import cache_dir
from openi_tasks.bundle.gobuild import Go
from openi_tasks.config.files import KubernetesSettings
from openi_tasks.testbed import kwok, s3_server


def main() -> None:
    version = KubernetesSettings().kubernetes_version
    go = Go(progress=print)
    released = go.release_time("k8s.io/kubernetes", version)
    kubernetes = recipes.kubernetes(version, released)
    go.build(kubernetes, cache_dir() / "build" / kubernetes.name)
    s3_server.build()
    conformance = recipes.conformance(version, released)
    go.build(conformance, cache_dir() / "build" / conformance.name)
    kwok.build()


if __name__ == "__main__":
    main()
