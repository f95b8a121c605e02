"""The air-gapped Kubernetes bundle (`inv k8s.bundle`): exactly what a configuration needs, built
from the Go modules at the pinned versions (`build`, `recipes`, `gobuild`), with a manifest of
sha256 sums (`manifest`), for `binaries-dir` and the cluster's registry."""
