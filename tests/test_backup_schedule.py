"""`k8s.backup --schedule`: what the operator writes, what the masters get, and what status says.
Running the timer on real masters is in test_cluster.py."""

from __future__ import annotations

import subprocess
import types

import pytest
import yaml

from openi_tasks.config import load_cluster
from openi_tasks.errors import OpenIError, UsageError
from openi_tasks.k8s.phases.backup_schedule import (JOB_ENV, JOB_SCRIPT, S3_CA, S3_CURL, UNIT_FILES,
                                                    ScheduledSnapshots, job_files, require_curl_with_sigv4)
from openi_tasks.k8s.s3 import S3Target, parse_s3_url
from openi_tasks.k8s.schedule import parse_schedule
from openi_tasks.run import secrets_of

from .conftest import EXAMPLE
from .test_cli import inv


@pytest.mark.parametrize("text, timer, gap", [
    ("0 */12 * * *", ("OnCalendar=*-*-* 00,12:00:00",), 12 * 3600),
    ("30 2 * * sun", ("OnCalendar=Sun *-*-* 02:30:00",), 7 * 86400),
    ("*/20 * * * *", ("OnCalendar=*-*-* *:00,20,40:00",), 20 * 60),
    ("0 3 * * 1-5", ("OnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 03:00:00",), 3 * 86400),  # Friday to Monday
    ("0 0 1 jan,jul *", ("OnCalendar=*-01,07-01 00:00:00",), 184 * 86400),
    ("0 0 * * 7", ("OnCalendar=Sun *-*-* 00:00:00",), 7 * 86400),  # cron's 7 is Sunday too
    ("15min", ("OnActiveSec=900s", "OnUnitActiveSec=900s"), 900),
    ("12h", ("OnActiveSec=43200s", "OnUnitActiveSec=43200s"), 43200),
])
def test_a_schedule_becomes_a_timer_and_its_longest_wait(text, timer, gap):
    schedule = parse_schedule(text)
    assert schedule.timer == timer
    assert schedule.longest_gap == gap


@pytest.mark.parametrize("text, fragment", [
    ("0 0 30 2 *", "never run"),
    ("5s", "at least 10s"),
    ("0 12 * *", "five fields"),
    ("60 * * * *", "minute '60': 60 is not within 0-59"),
    ("0 0 1 * mon", "not both"),
    ("0 5-1 * * *", "runs backwards"),
    ("0 0 * foo *", "month 'foo'"),
    ("*/0 * * * *", "at least 1"),
    ("every day", "five fields"),
])
def test_a_schedule_that_cannot_be_is_refused_with_the_reason(text, fragment):
    with pytest.raises(UsageError, match=fragment):
        parse_schedule(text)


def test_every_problem_of_a_cron_expression_at_once():
    with pytest.raises(UsageError) as refused:
        parse_schedule("61 25 * * x")
    assert "minute '61'" in str(refused.value) and "hour '25'" in str(refused.value) and "day of week 'x'" in str(refused.value)


def facts(**changes) -> dict[str, str]:
    found = {"schedule": "0 */12 * * *", "gap": "43200", "since": "90000", "timer": "active", "result": "success",
             "name": "etcd-c-etcd1-20261207T000000Z.db", "age": "3600", "size": "2048", "sha256": "ab" * 32}
    return {k: v for k, v in {**found, **changes}.items() if v is not None}


@pytest.mark.parametrize("changes, problem", [
    ({}, ""),
    ({"age": str(2 * 43200 + 1)}, "late: the last is 1d old, more than twice the schedule's 12h"),
    ({"timer": "inactive"}, "the timer is inactive"),
    ({"result": "exit-code"}, "the last run failed (exit-code; journalctl -u openi-etcd-backup)"),
    ({"name": None, "age": None, "since": "600"}, ""),  # set ten minutes ago: none due yet
    ({"name": None, "age": None}, "no snapshot 1d after the timer was set"),
    ({"sha256": ""}, "the last snapshot has no checksum"),
])
def test_status_calls_a_scheduled_snapshot_late_after_twice_the_longest_wait(changes, problem):
    assert ScheduledSnapshots.parse(facts(**changes)).problem == problem


def test_a_master_without_the_timer_has_no_scheduled_snapshots():
    assert ScheduledSnapshots.parse({}) is None


def test_the_masters_job_is_private_quoted_and_valid_shell(tmp_path):
    cluster = load_cluster(EXAMPLE)
    master = cluster.masters[0]
    run = types.SimpleNamespace(cluster=cluster)
    host = types.SimpleNamespace(machine=master)
    odd = "/mnt/etcd backups/it's here"
    files = {f.path: f for f in job_files(run, host, parse_schedule("0 */6 * * *"), 3, odd)}
    assert files[JOB_ENV].mode == 0o600 and files[JOB_SCRIPT].mode == 0o700
    env = tmp_path / "job.env"
    env.write_text(files[JOB_ENV].content)
    shown = subprocess.run(["sh", "-c", f". {env}; printf '%s|%s|%s' \"$TO_DIR\" \"$KEEP\" \"$SCHEDULE\""],
                           capture_output=True, text=True, check=True).stdout
    assert shown == f"{odd}|3|0 */6 * * *"
    # The job prunes, and k8s.status finds, only this member's scheduled snapshots.
    member = next(m.name for m in cluster.etcd_members if m.machine is master)
    names = [f"etcd-{cluster.id}-{member}-20261207T000000Z.db", f"etcd-{cluster.id}-{member}-20261207T000000Z.db.sha256",
             f"etcd-{cluster.id}-other-20261207T000000Z.db", f"etcd-{cluster.id}-20261207T000000Z-before-clean.db"]
    own = subprocess.run(["sh", "-c", f'. {env}; printf "%s\\n" "$@" | grep -E "$OWN_SNAPSHOTS"', "sh", *names],
                         capture_output=True, text=True).stdout.split()
    assert own == names[:1]
    script = tmp_path / "snapshot.sh"
    script.write_text(files[JOB_SCRIPT].content)
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    assert "OnCalendar=*-*-* 00,06,12,18:00:00" in files[UNIT_FILES[1]].content


@pytest.mark.parametrize("args, fragment", [
    (["--schedule", "61 * * * *"], "minute '61'"),
    (["--schedule", "1h", "--keep", "0"], "--keep must be at least 1"),
    (["--schedule", "1h", "--to", "/etc"], "--to '/etc' must not be the system directory /etc"),
    (["--schedule", "off", "--keep", "3"], "--schedule off removes the timer"),
    (["--keep", "3"], "go with --schedule"),
    (["--verify", "x.db", "--schedule", "1h"], "--verify checks a snapshot file"),
    (["--schedule", "61 * * * *", "--keep", "x", "--to", "/usr"],  # every problem at once
     "minute '61': 61 is not within 0-59; --keep must be a whole number, not 'x'; --to '/usr' must not be"),
    (["--schedule", "1h", "--to-s3", "http://s3.example.com/bkt1/x"], "must be an https:// URL"),
    (["--schedule", "1h", "--to-s3", "https://s3.example.com/"], "needs a bucket after the host"),
    (["--schedule", "off", "--to-s3", "https://s3.example.com/bkt1"], "--keep, --to and --to-s3 do not go with it"),
    (["--to-s3", "https://s3.example.com/bkt1"], "go with --schedule"),
    # The example configuration has no keys: named before any host is touched.
    (["--schedule", "1h", "--to-s3", "https://s3.example.com/bkt1"],
     "kubernetes.etcd-backup-s3-access-key is not set (needed by --to-s3); "
     "kubernetes.etcd-backup-s3-secret-key is not set"),
])
def test_bad_backup_options_exit_2_before_any_host_is_touched(args, fragment):
    # The example configuration's hosts are private addresses no test may reach: a refusal
    # before any connection is the only way this can pass quickly.
    result = inv("k8s.backup", "-p", str(EXAMPLE), *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("url, target", [
    ("https://s3.example.com/etcd-backups", S3Target("https://s3.example.com", "etcd-backups", "")),
    ("https://10.0.0.5:8333/b.1/cluster-a/", S3Target("https://10.0.0.5:8333", "b.1", "cluster-a/")),
    ("https://s3.example.com/bkt/a/b_c", S3Target("https://s3.example.com", "bkt", "a/b_c/")),
])
def test_an_s3_url_names_the_endpoint_the_bucket_and_a_prefix(url, target):
    assert parse_s3_url(url) == target
    assert S3Target("https://h", "bkt", "a/b/").list_query == "list-type=2&prefix=a%2Fb%2F"


def test_every_problem_of_an_s3_url_at_once():
    with pytest.raises(UsageError) as refused:
        parse_s3_url("ftp://user@/B?x=1")
    for fragment in ("https://", "names no host", "no user, query or fragment", "'B' is not a bucket name"):
        assert fragment in str(refused.value)


def test_the_s3_keys_reach_the_masters_only_in_a_private_curl_configuration(example_dir, tmp_path):
    secret = 'se"cret\\with/+and=='
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = example_dir / "kubernetes-configuration.yaml"
    document = yaml.safe_load(settings.read_text())
    document["kubernetes"].update({"etcd-backup-s3-access-key": "AKIDEXAMPLE", "etcd-backup-s3-secret-key": secret,
                                   "etcd-backup-s3-ca-file": str(ca), "etcd-backup-s3-region": "eu-west-1"})
    settings.write_text(yaml.safe_dump(document))
    cluster = load_cluster(example_dir)
    run = types.SimpleNamespace(cluster=cluster)
    host = types.SimpleNamespace(machine=cluster.masters[0])
    target = parse_s3_url("https://10.0.0.5:8333/etcd-backups/cluster-a")
    files = {f.path: f for f in job_files(run, host, parse_schedule("1h"), 2, "", target)}
    assert files[S3_CURL].mode == 0o600 and files[S3_CA].content == ca.read_text()
    others = "".join(f.content for path, f in files.items() if path != S3_CURL)
    assert "cret" not in others and "AKIDEXAMPLE" not in others
    # curl reads the user back exactly as configured (its quoting of \\ and ").
    config = tmp_path / "s3.curl"
    config.write_text(files[S3_CURL].content)
    traced = subprocess.run(["curl", "--config", str(config), "--cacert", "/dev/null", "--connect-timeout", "1",
                             "-v", "http://127.0.0.1:9/"], capture_output=True, text=True)
    assert "aws:amz:eu-west-1:s3" in files[S3_CURL].content and traced.returncode != 0
    assert "Invalid" not in traced.stderr and "unknown" not in traced.stderr.lower(), traced.stderr
    env = tmp_path / "job.env"
    env.write_text(files[JOB_ENV].content)
    shown = subprocess.run(["sh", "-c", f". {env}; printf '%s|%s|%s|%s' \"$S3_BUCKET_URL\" \"$S3_PREFIX\" \"$S3_LIST\" "
                            f"\"$S3_CURL\""], capture_output=True, text=True, check=True).stdout
    assert shown == f"https://10.0.0.5:8333/etcd-backups|cluster-a/|list-type=2&prefix=cluster-a%2F|{S3_CURL}"
    assert secret in secrets_of(cluster)


@pytest.mark.parametrize("version, refused", [
    ("curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1", None),
    ("curl 8.11.0 (x86_64-pc-linux-gnu)", None),
    ("curl 7.74.0 (x86_64-pc-linux-gnu)", "master1 has curl 7.74: --to-s3 needs curl 7.75 or newer"),
    ("", "master1 has no curl: --to-s3 needs curl 7.75 or newer"),
])
def test_a_master_whose_curl_cannot_sign_is_refused_by_name(version, refused):
    host = types.SimpleNamespace(name="master1", sh=lambda command: types.SimpleNamespace(stdout=version))
    if refused is None:
        require_curl_with_sigv4(host)
    else:
        with pytest.raises(OpenIError, match=refused):
            require_curl_with_sigv4(host)
