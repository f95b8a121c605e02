"""Tasks of the `k8s` namespace: bring Kubernetes up on the hosts and keep it healthy."""

from __future__ import annotations

from pathlib import Path

from invoke import Context, Exit

from ..cli import PATH_HELP, confirm, load, required, split_list, task, whole_number
from ..errors import UsageError
from ..report import Reporter

NODES_HELP = "nodes file: machine-list entries of the hosts to act on (same format as machine-list)"


@task(
    help={
        "path": PATH_HELP,
        "dry-run": "connect and gather facts, then print what would change on each host; change nothing",
        "only": "run only these phases (comma-separated)",
        "skip": "skip these phases (comma-separated)",
        "break-lock": "remove a stale cluster lock left by an interrupted run",
    }
)
def deploy(c: Context, reporter: Reporter, path=None, dry_run=False, only=None, skip=None, break_lock=False):
    """Deploy Kubernetes: Docker, etcd (TLS), API endpoint, control plane, workers, add-ons."""
    from .deploy import deploy as run_deploy
    cluster = load(c, path, reporter)
    run_deploy(cluster, reporter, dry_run=dry_run, only=split_list(only), skip=split_list(skip), break_lock=break_lock)


@task(
    help={
        "path": PATH_HELP,
        "yes": "do not ask for confirmation",
        "dry-run": "show what would be removed from each host; remove nothing",
        "break-lock": "remove a stale cluster lock left by an interrupted run",
    }
)
def clean(c: Context, reporter: Reporter, path=None, yes=False, dry_run=False, break_lock=False):
    """Remove everything deploy put on the hosts (containers, files, data, kubeadm state)."""
    from .clean import clean as run_clean
    cluster = load(c, path, reporter)
    if not (yes or dry_run):
        confirm(f"This removes Kubernetes and etcd's data from {len(cluster.machines)} hosts of {cluster.id}.",
                cluster.id)
    run_clean(cluster, reporter, dry_run=dry_run, break_lock=break_lock)


@task(
    name="install-kubectl",
    help={
        "path": PATH_HELP,
        "bin-dir": "where to put kubectl (default ~/.local/bin)",
        "kubeconfig": "the kubeconfig file to merge the cluster's context into (default ~/.kube/config)",
    },
)
def install_kubectl(c: Context, reporter: Reporter, path=None, bin_dir="~/.local/bin", kubeconfig="~/.kube/config"):
    """Install kubectl here and merge the cluster's admin kubeconfig into ~/.kube/config."""
    from .kubectl import install_kubectl as run_install_kubectl
    cluster = load(c, path, reporter)
    for line in run_install_kubectl(cluster, Path(bin_dir).expanduser(), Path(kubeconfig).expanduser()):
        reporter.info(line)


@task(help={"path": PATH_HELP})
def status(c: Context, reporter: Reporter, path=None):
    """Show hosts, etcd members, the API endpoint's backends and Kubernetes nodes (exit 1 if unhealthy)."""
    from .status import show_status
    if not show_status(load(c, path, reporter), reporter):
        raise Exit(code=1)


@task(
    help={
        "path": PATH_HELP,
        "within": "certificates expiring within this many days are due (default 30): listed with exit 1, or renewed",
        "renew": "renew the certificates that are due, one master at a time, and refresh admin.conf",
        "all": "with --renew: renew every certificate, whatever its expiry",
        "dry-run": "with --renew: show what would be renewed and restarted on each host; change nothing",
    }
)
def certs(c: Context, reporter: Reporter, path=None, within=None, renew=False, all_=False, dry_run=False):
    """Show every certificate the cluster depends on and its expiry; --renew renews those due (CAs excepted)."""
    import datetime

    from .certs import WARN_WITHIN_DAYS, show_certificates
    days = whole_number(within, "--within", WARN_WITHIN_DAYS)
    if (all_ or dry_run) and not renew:
        raise UsageError("--all and --dry-run go with --renew")
    cluster = load(c, path, reporter)
    if renew:
        from .renew import EVERYTHING, renew as run_renew
        run_renew(cluster, reporter, EVERYTHING if all_ else datetime.timedelta(days=days), dry_run=dry_run)
        if dry_run:
            return
    if not show_certificates(cluster, reporter, within=days):
        raise Exit(code=1)


@task(
    help={
        "path": PATH_HELP,
        "to": "the version to upgrade to, as kubernetes-configuration's kubernetes-version must already say",
        "batch": "how many workers are drained and upgraded at once (default 1)",
        "dry-run": "print the plan and what would change on each host; change nothing",
        "break-lock": "remove a stale cluster lock left by an interrupted run",
    }
)
def upgrade(c: Context, reporter: Reporter, to=None, path=None, batch=None, dry_run=False, break_lock=False):
    """Upgrade Kubernetes one minor version at a time: etcd, masters one by one, workers in batches;
    a node whose pods run on another container runtime than the configured one moves to it, drained."""
    from .upgrade import upgrade as run_upgrade
    target = required(to, "--to VERSION")
    size = whole_number(batch, "--batch", 1)
    cluster = load(c, path, reporter)
    run_upgrade(cluster, reporter, target, batch=size, dry_run=dry_run, break_lock=break_lock)


@task(help={"path": PATH_HELP, "nodes": NODES_HELP, "force": "act even on a member that looks healthy"})
def etcdfix(c: Context, reporter: Reporter, nodes=None, path=None, force=False):
    """Repair one broken etcd member: snapshot, remove, wipe, re-add, rejoin."""
    from ..config.nodes import load_nodes
    from .etcdfix import etcdfix as run_etcdfix
    cluster = load(c, path, reporter)
    run_etcdfix(cluster, reporter, load_nodes(required(nodes, "--nodes FILE"), cluster), force=force)


UPDATE_HELP = "also edit cluster-configuration.yaml's machine-list (comments are kept)"


@task(
    help={
        "path": PATH_HELP,
        "nodes": NODES_HELP,
        "update-config": UPDATE_HELP,
        "dry-run": "show what would change on each host; change nothing",
        "only": "run only these phases (comma-separated)",
        "skip": "skip these phases (comma-separated)",
    }
)
def add(c: Context, reporter: Reporter, nodes=None, path=None, update_config=False, dry_run=False, only=None, skip=None):
    """Add the hosts of a nodes file to the cluster (workers, or masters one at a time)."""
    from ..config.edit import add_machines
    from ..config.nodes import load_nodes, node_entries
    from .maintenance import add as run_add
    cluster = load(c, path, reporter)
    nodes_file = required(nodes, "--nodes FILE")
    machines = load_nodes(nodes_file, cluster, allow_new=True)
    new = [m.hostname for m in machines if m.hostname not in cluster.by_name]
    run_add(cluster, reporter, machines, dry_run=dry_run, only=split_list(only), skip=split_list(skip))
    if new and not dry_run:
        if update_config:
            add_machines(cluster.path, [e for e in node_entries(nodes_file) if e.get("hostname") in new])
            reporter.info(f"added {', '.join(new)} to {cluster.path / 'cluster-configuration.yaml'}")
        else:
            reporter.warn(f"add {', '.join(new)} to cluster-configuration.yaml (or run again with --update-config)")


@task(
    help={
        "path": PATH_HELP,
        "nodes": NODES_HELP,
        "yes": "do not ask for confirmation",
        "update-config": UPDATE_HELP,
        "dry-run": "show what would change on each host; change nothing",
    }
)
def remove(c: Context, reporter: Reporter, nodes=None, path=None, yes=False, update_config=False, dry_run=False):
    """Drain and remove the hosts of a nodes file (a master's etcd member too)."""
    from ..config.edit import remove_machines
    from ..config.nodes import load_nodes
    from .maintenance import remove as run_remove
    cluster = load(c, path, reporter)
    machines = load_nodes(required(nodes, "--nodes FILE"), cluster)
    names = [m.hostname for m in machines]
    if not (yes or dry_run):
        confirm(f"This removes {', '.join(names)} from {cluster.id} and resets them.", cluster.id)
    run_remove(cluster, reporter, machines, dry_run=dry_run)
    if not dry_run:
        if update_config:
            remove_machines(cluster.path, names)
            reporter.info(f"removed {', '.join(names)} from {cluster.path / 'cluster-configuration.yaml'}")
        else:
            reporter.warn(f"remove {', '.join(names)} from cluster-configuration.yaml (or use --update-config): "
                          f"until then, a deploy would bring them back")


@task(help={"path": PATH_HELP, "nodes": NODES_HELP, "dry-run": "show what would change on each host; change nothing"})
def repair(c: Context, reporter: Reporter, nodes=None, path=None, dry_run=False):
    """Reset and rejoin broken workers (refused on etcd hosts)."""
    from ..config.nodes import load_nodes
    from .maintenance import repair as run_repair
    cluster = load(c, path, reporter)
    run_repair(cluster, reporter, load_nodes(required(nodes, "--nodes FILE"), cluster), dry_run=dry_run)


@task(
    help={
        "path": PATH_HELP,
        "from-source": "build every binary and image from the Go modules at the configured versions",
        "release-url": "Kubernetes' release downloads (default: kubernetes.kubectl-download-url, "
                       "https://dl.k8s.io/release): <url>/<version>/bin/linux/amd64/kubeadm and its .sha256",
        "cni-url": "the CNI plugins' releases (default: GitHub's release downloads of containernetworking/plugins): "
                   "<url>/<version>/cni-plugins-linux-amd64-<version>.tgz and its .sha256",
        "containerd-url": "containerd's releases (default: GitHub's release downloads): "
                          "<url>/<version>/containerd-<version>-linux-amd64.tar.gz and its .sha256sum",
        "runc-url": "runc's releases (default: GitHub's release downloads): <url>/<version>/runc.amd64, "
                    "with its digest in <url>/<version>/runc.sha256sum",
        "mirror": "pull images from this registry, which keeps their upstream paths "
                  "(<mirror>/registry.k8s.io/kube-apiserver:<version>)",
        "out": "the bundle directory (default: kubernetes.binaries-dir)",
        "push": "push the images to the registries their references name (the cluster's registry)",
        "save-images": "also write `docker load`able archives of the images into <bundle>/images/",
        "base-image": "image the built images start from (default: kubernetes.bundle-base-image)",
        "conformance": "with --from-source: also Kubernetes' conformance suite (e2e.test, ginkgo) and the images "
                       "its tests run, for inv k8s.conformance",
    }
)
def bundle(c: Context, reporter: Reporter, path=None, from_source=False, release_url=None, cni_url=None, mirror=None,
           out=None, push=False, save_images=False, base_image=None, conformance=False, containerd_url=None,
           runc_url=None):
    """Gather every binary and image the configuration needs (an air-gapped bundle, with a sha256 manifest)."""
    from ..bundle.build import BundleBuilder
    from ..bundle.upstream import CNI_RELEASES, CONTAINERD_RELEASES, RUNC_RELEASES

    cluster = load(c, path, reporter)
    directory = Path(out or cluster.kubernetes.binaries_dir or "").expanduser()
    if not (out or cluster.kubernetes.binaries_dir):
        raise UsageError("say where the bundle goes: --out DIR, or kubernetes.binaries-dir in the configuration")
    if from_source and (release_url or cni_url or mirror or containerd_url or runc_url):
        raise UsageError("--release-url, --cni-url, --containerd-url, --runc-url and --mirror are where released "
                         "artifacts come from; --from-source builds them instead")
    if base_image and not from_source:
        raise UsageError("--base-image is the base of images built --from-source")
    if conformance and not from_source:
        raise UsageError("--conformance builds the suite from its Go modules: use it with --from-source")
    builder = BundleBuilder(cluster, reporter, directory, base_image=base_image or cluster.kubernetes.bundle_base_image)
    if from_source:
        manifest = builder.from_source(conformance=conformance)
    else:
        manifest = builder.from_upstream(release_url or cluster.kubernetes.kubectl_download_url,
                                         cni_url or CNI_RELEASES, mirror or "", containerd_url or CONTAINERD_RELEASES,
                                         runc_url or RUNC_RELEASES)
    if save_images:
        builder.save_images(manifest)
    pushed = builder.push(manifest) if push else []
    reporter.table(f"bundle {directory} ({manifest.origin})", ("artifact", "sha256"),
                   [(b.path, b.sha256[:16]) for b in manifest.binaries] + [(i.ref, i.id[7:23]) for i in manifest.images])
    if pushed:
        reporter.table("pushed", ("image", "result"), pushed)
    reporter.info(f"manifest: {directory / 'manifest.json'}")


@task(
    help={
        "path": PATH_HELP,
        "out": "also copy the snapshot (and its .sha256) to this file or directory",
        "schedule": "instead of a snapshot now, a timer on every master that takes one of its own member: a cron "
                    "expression ('0 */12 * * *') or an interval (30s, 15min, 12h, 1d); 'off' removes the timer",
        "keep": "with --schedule: how many of each master's scheduled snapshots to keep in each place (default 5)",
        "to": "with --schedule: also copy each snapshot to this directory on the master (a mounted share)",
        "to-s3": "with --schedule: also upload each snapshot to S3, https://host[:port]/bucket[/prefix] (path style), "
                 "signed with the keys in kubernetes-configuration.yaml (etcd-backup-s3-access-key and "
                 "etcd-backup-s3-secret-key); as many kept there",
        "dry-run": "with --schedule: show what would change on each master; change nothing",
        "verify": "instead of a snapshot: restore this snapshot file into a throwaway etcd on this machine's Docker "
                  "and report its revision, key count and resources; the cluster is not touched",
    }
)
def backup(c: Context, reporter: Reporter, path=None, out=None, schedule=None, keep=None, to=None, to_s3=None,
           dry_run=False, verify=None):
    """Write a timestamped, checksummed etcd snapshot to the state directory, or schedule them on the masters."""
    from .backup import backup as run_backup, schedule_backups
    if verify is not None:
        if any(v is not None for v in (out, schedule, keep, to, to_s3)) or dry_run:
            raise UsageError("--verify checks a snapshot file: it takes no other option but --path")
        from .snapshot_drill import drill
        file = Path(verify).expanduser()
        result = drill(load(c, path, reporter), file)
        kinds = ", ".join(f"{name} {count}" for name, count in result.resources.most_common(8))
        reporter.table(f"restored {file.name} into a throwaway etcd", ("sha256", "revision", "keys", "most keys"),
                       [(result.sha256[:16], result.revision, len(result.keys), kinds or "-")])
        print(f"snapshot verified: revision {result.revision}, {len(result.keys)} keys")
        return
    if schedule is None:
        if keep is not None or to is not None or to_s3 is not None or dry_run:
            raise UsageError("--keep, --to, --to-s3 and --dry-run go with --schedule")
        snapshot = run_backup(load(c, path, reporter), Path(out).expanduser() if out else None)
        reporter.info(f"etcd snapshot written ({snapshot.stat().st_size} bytes, sha256 in {snapshot.name}.sha256):")
        print(snapshot)
        return
    from .schedule import schedule_options
    if out is not None:
        raise UsageError("--out takes a snapshot now; with --schedule, --to copies each scheduled one")
    plan, kept, to_dir, s3 = schedule_options(schedule, keep, to, to_s3)
    cluster = load(c, path, reporter)
    if s3 is not None:
        from .s3 import credential_problems
        problems = credential_problems(cluster.kubernetes)
        if problems:
            raise UsageError("; ".join(problems))
    schedule_backups(cluster, reporter, plan, kept, to_dir, s3, dry_run=dry_run)


@task(
    help={
        "path": PATH_HELP,
        "snapshot": "the snapshot file to restore (its .sha256 must be beside it)",
        "yes": "do not ask for confirmation",
        "dry-run": "show what would be done on each master; change nothing",
    }
)
def restore(c: Context, reporter: Reporter, snapshot=None, path=None, yes=False, dry_run=False):
    """Rebuild the whole etcd cluster from a snapshot."""
    from .backup import verify
    from .restore import restore as run_restore
    cluster = load(c, path, reporter)
    file = Path(required(snapshot, "--snapshot FILE")).expanduser()
    verify(file)
    if not (yes or dry_run):
        confirm(f"This replaces etcd's data on {len(cluster.masters)} masters of {cluster.id} with {file.name}.",
                cluster.id)
    run_restore(cluster, reporter, file, dry_run=dry_run)


@task(
    help={
        "path": PATH_HELP,
        "mode": "quick (48 tests across pods, services, DNS, networking, ConfigMaps and Secrets, authorization and "
                "the API machinery; minutes) or certified (every [Conformance] test, [Serial] ones in a second "
                "pass; hours; two of them taint a node)",
        "focus": "only the tests of the mode whose names match this (Go) regular expression",
        "skip": "leave out the tests whose names match this (Go) regular expression",
        "out": "directory for the JUnit report, ginkgo's JSON report and the e2e log "
               "(default <state>/conformance/<UTC time>)",
    }
)
def conformance(c: Context, reporter: Reporter, path=None, mode="quick", focus=None, skip=None, out=None):
    """Run Kubernetes' conformance suite (from the bundle) against the cluster; exit 1 if a test fails."""
    from .conformance import run as run_conformance
    tally = run_conformance(load(c, path, reporter), reporter, mode=mode, focus=focus, skip=skip,
                            out=Path(out).expanduser() if out else None)
    if tally.failed:
        raise Exit(code=1)
