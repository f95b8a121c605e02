"""Pruning of the automatic etcd snapshots: only those, only this cluster's, the newest kept."""

from __future__ import annotations

from openi_tasks.k8s.phases.snapshot import prune


def make(directory, name):
    (directory / name).write_bytes(b"snapshot")
    (directory / f"{name}.sha256").write_text(f"0  {name}\n")


def test_only_the_newest_automatic_snapshots_of_the_cluster_are_kept(tmp_path):
    automatic = [f"etcd-c1-2026120{day}T101500Z-before-clean.db" for day in range(1, 6)]
    manual = "etcd-c1-20261101T101500Z.db"
    labelled = "etcd-c1-20261102T101500Z-before-etcdfix-etcd2.db"
    other_cluster = "etcd-c1-x-20261101T101500Z-before-clean.db"  # cluster "c1-x" shares the directory
    for name in automatic + [manual, labelled, other_cluster]:
        make(tmp_path, name)

    deleted = prune(tmp_path, "c1", keep=2)

    assert sorted(p.name for p in deleted) == sorted([labelled] + automatic[:3])
    left = sorted(p.name for p in tmp_path.iterdir())
    expected = sorted(automatic[3:] + [manual, other_cluster])
    assert left == sorted(expected + [f"{n}.sha256" for n in expected])
    assert prune(tmp_path, "c1", keep=2) == []
