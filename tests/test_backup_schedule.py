"""`k8s.backup --schedule`: what the operator writes, what the masters get, and what status says.
Running the timer on real masters is in test_cluster.py."""

from __future__ import annotations

import subprocess
import types

import pytest

from openi_tasks.config import load_cluster
from openi_tasks.errors import UsageError
from openi_tasks.k8s.phases.backup_schedule import JOB_ENV, JOB_SCRIPT, UNIT_FILES, ScheduledSnapshots, job_files
from openi_tasks.k8s.schedule import parse_schedule

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
])
def test_bad_backup_options_exit_2_before_any_host_is_touched(args, fragment):
    # The example configuration's hosts are private addresses no test may reach: a refusal
    # before any connection is the only way this can pass quickly.
    result = inv("k8s.backup", "-p", str(EXAMPLE), *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr
