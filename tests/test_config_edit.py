"""--update-config: machine-list entries added and removed, with the file's comments kept."""

from __future__ import annotations

from openi_tasks.config import load_cluster
from openi_tasks.config.edit import add_machines, remove_machines


def test_add_then_remove_keeps_comments_and_validity(example_dir):
    path = example_dir / "cluster-configuration.yaml"
    before = path.read_text()
    comments = [line for line in before.splitlines() if line.strip().startswith("#")]
    add_machines(example_dir, [{"hostname": "openi-worker-3", "hostip": "10.10.0.23", "machine-type": "NC24R",
                                "k8s-role": "worker", "pai-worker": "true"}])
    cluster = load_cluster(example_dir)
    assert cluster.by_name["openi-worker-3"].labels["pai-worker"] == "true"
    after = path.read_text()
    assert all(comment in after for comment in comments)
    remove_machines(example_dir, ["openi-worker-3"])
    assert "openi-worker-3" not in path.read_text()
    assert [m.hostname for m in load_cluster(example_dir).machines] == [m.hostname for m in cluster.machines[:-1]]
    assert all(comment in path.read_text() for comment in comments)
