"""backup-schedule: a systemd timer on every master that snapshots its own etcd member
(`inv k8s.backup --schedule`), or, given no schedule, no such timer.

Each master's job saves a snapshot through its member's local client port with the member's own
certificate, checksums it into /var/lib/openi/etcd-snapshots, copies it to `--to` and uploads it
to `--to-s3` when given (k8s/s3.py), and keeps the newest `--keep` in each place. Every master
takes its own, as RKE2's servers do: a snapshot survives the loss of any one master.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ...errors import OpenIError
from ...operations import ensure_absent, ensure_files
from ...phase import Change, Phase
from ...render import RenderedFile, render
from ...run import Run
from ...ssh import Host
from ..files import ETCD_PKI, member_of
from ..s3 import S3Target, curl_config
from ..schedule import Schedule

JOB_DIR = "/etc/openi/etcd-backup"
JOB_ENV = f"{JOB_DIR}/job.env"
JOB_SCRIPT = f"{JOB_DIR}/snapshot.sh"
SNAPSHOTS = "/var/lib/openi/etcd-snapshots"
UNIT = "openi-etcd-backup"
UNIT_FILES = (f"/etc/systemd/system/{UNIT}.service", f"/etc/systemd/system/{UNIT}.timer")
S3_CURL = f"{JOB_DIR}/s3.curl"  # the keys: 0600
S3_CA = f"{JOB_DIR}/s3-ca.crt"
STOP_TIMER = f"systemctl disable --now {UNIT}.timer 2>/dev/null; systemctl stop {UNIT}.service 2>/dev/null; true"


def job_files(run: Run, host: Host, schedule: Schedule, keep: int, to_dir: str,
              s3: S3Target | None = None) -> list[RenderedFile]:
    k = run.cluster.kubernetes
    context = {"cluster": run.cluster, "k8s": k, "member": member_of(run.cluster, host.machine),
               "schedule": schedule, "keep": keep, "to_dir": to_dir, "pki": ETCD_PKI, "snapshots": SNAPSHOTS,
               "env_file": JOB_ENV, "script": JOB_SCRIPT, "s3": s3, "s3_curl": S3_CURL}
    files = [
        RenderedFile(JOB_ENV, render("k8s/backup/job.env.j2", **context), 0o600),
        RenderedFile(JOB_SCRIPT, render("k8s/backup/snapshot.sh.j2", **context), 0o700),
        RenderedFile(UNIT_FILES[0], render("k8s/backup/openi-etcd-backup.service.j2", **context)),
        RenderedFile(UNIT_FILES[1], render("k8s/backup/openi-etcd-backup.timer.j2", **context)),
    ]
    if s3 is not None:
        ca = Path(k.etcd_backup_s3_ca_file).expanduser().read_text() if k.etcd_backup_s3_ca_file else None
        files.append(RenderedFile(S3_CURL, curl_config(k, S3_CA if ca else None), 0o600))
        files += [RenderedFile(S3_CA, ca)] if ca else []
    return files


class BackupSchedule(Phase):
    """`schedule` None removes the timer and its job (the snapshots already taken stay)."""

    name = "backup-schedule"
    title = "Scheduled etcd snapshots on the masters"

    def __init__(self, schedule: Schedule | None, keep: int = 5, to_dir: str = "", s3: S3Target | None = None) -> None:
        self.schedule = schedule
        self.keep = keep
        self.to_dir = to_dir
        self.s3 = s3

    def hosts(self, run: Run) -> list[Host]:
        return run.hosts("master")

    def plan(self, run: Run, host: Host) -> list[Change]:
        active = host.sh(f"systemctl is-enabled --quiet {UNIT}.timer && systemctl is-active --quiet {UNIT}.timer")
        if self.schedule is None:
            changes = [Change(f"stop and disable {UNIT}.timer", STOP_TIMER)] if active.exited == 0 else []
            removed = ensure_absent(host, [JOB_DIR, *UNIT_FILES])
            return changes + removed + ([Change("reload systemd", "systemctl daemon-reload")] if removed else [])
        if self.s3 is not None:
            require_curl_with_sigv4(host)
        files = job_files(run, host, self.schedule, self.keep, self.to_dir, self.s3)
        wanted = {f.path for f in files}
        changes = ensure_files(host, files) + ensure_absent(host, [p for p in (S3_CURL, S3_CA) if p not in wanted])
        if changes or active.exited != 0:
            copies = " and ".join([self.to_dir] * bool(self.to_dir) + [str(self.s3)] * bool(self.s3))
            changes.append(Change(f"start {UNIT}.timer ({self.schedule.text}; the newest {self.keep} kept"
                                  f"{f', copied to {copies}' if copies else ''})",
                                  f"systemctl daemon-reload && systemctl enable {UNIT}.timer && "
                                  f"systemctl restart {shlex.quote(UNIT + '.timer')}"))
        return changes


CURL_SIGV4 = (7, 75)  # the first curl with --aws-sigv4


def require_curl_with_sigv4(host: Host) -> None:
    """The job signs its S3 requests with curl: a master without a curl that can is refused, named."""
    found = re.match(r"curl (\d+)\.(\d+)", host.sh("curl --version 2>/dev/null | head -n 1").stdout)
    if found is None or (int(found[1]), int(found[2])) < CURL_SIGV4:
        have = f"curl {found[1]}.{found[2]}" if found else "no curl"
        raise OpenIError(f"{host.name} has {have}: --to-s3 needs curl {CURL_SIGV4[0]}.{CURL_SIGV4[1]} or newer "
                         f"(its --aws-sigv4 signs the uploads; Debian 12 has 7.88)")


# What `k8s.status` asks a master about its scheduled snapshots (nothing when it has no timer);
# ages are taken on the host's own clock.
FACTS = (
    f"if test -f {JOB_ENV}; then ( . {JOB_ENV}; echo \"schedule=$SCHEDULE\"; echo \"gap=$LONGEST_GAP\"; "
    f"echo \"since=$(( $(date +%s) - $(stat -c %Y {JOB_ENV}) ))\"; "
    f"echo \"timer=$(systemctl is-active {UNIT}.timer)\"; "
    f"echo \"result=$(systemctl show -p Result --value {UNIT}.service)\"; "
    "latest=$(ls -1 \"$SNAPSHOTS\" 2>/dev/null | grep -E \"$OWN_SNAPSHOTS\" | sort | tail -n 1); "
    "if [ -n \"$latest\" ]; then echo \"name=$latest\"; "
    "echo \"age=$(( $(date +%s) - $(stat -c %Y \"$SNAPSHOTS/$latest\") ))\"; "
    "echo \"size=$(stat -c %s \"$SNAPSHOTS/$latest\")\"; "
    "echo \"sha256=$(cut -d' ' -f1 \"$SNAPSHOTS/$latest.sha256\" 2>/dev/null)\"; fi ); fi")


@dataclass(frozen=True)
class ScheduledSnapshots:
    """A master's timer and its newest scheduled snapshot, from FACTS."""

    schedule: str
    longest_gap: int
    installed_ago: int
    timer: str
    last_result: str
    name: str = ""
    age: int = 0
    size: int = 0
    sha256: str = ""

    @classmethod
    def parse(cls, facts: dict[str, str]) -> "ScheduledSnapshots | None":
        if "schedule" not in facts:
            return None
        number = lambda key: int(facts.get(key) or 0)  # noqa: E731
        return cls(facts["schedule"], number("gap"), number("since"), facts.get("timer", ""),
                   facts.get("result", ""), facts.get("name", ""), number("age"), number("size"),
                   facts.get("sha256", ""))

    @property
    def problem(self) -> str:
        """What is wrong, or "" : a late snapshot is one older than twice the longest wait."""
        due = 2 * self.longest_gap
        if self.timer != "active":
            return f"the timer is {self.timer or 'missing'}"
        if self.last_result not in ("", "success"):
            return f"the last run failed ({self.last_result}; journalctl -u {UNIT})"
        if not self.name:
            return f"no snapshot {duration(self.installed_ago)} after the timer was set" if self.installed_ago > due else ""
        if self.age > due:
            return f"late: the last is {duration(self.age)} old, more than twice the schedule's {duration(self.longest_gap)}"
        if not self.sha256:
            return "the last snapshot has no checksum"
        return ""


def duration(seconds: int) -> str:
    """4d, 2.5h, 12min, 40s."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}".replace(".0", "")
    return f"{seconds}s"
