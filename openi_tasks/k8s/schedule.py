"""When a scheduled job runs, as the operator writes it and as systemd's timer needs it.

`--schedule` takes a cron expression (five fields: minute hour day-of-month month day-of-week,
with lists, ranges, steps and names) or an interval (`30s`, `15min`, `12h`, `1d`). A cron
expression becomes a timer's `OnCalendar=` with every field spelt out as a list, which systemd
reads the same on every version; an interval becomes `OnActiveSec=`/`OnUnitActiveSec=`. Both give
the longest time between two runs, which `k8s.status` uses to call a snapshot late.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from .s3 import S3Target

# (name, lowest, highest, names of values) of cron's five fields
FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
SYSTEMD_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
INTERVAL = re.compile(r"(\d+)\s*(s|sec|m|min|h|d)")
SHORTEST_INTERVAL = 10  # seconds: a snapshot of a large etcd takes longer than that
HORIZON_DAYS = 4 * 366  # a cron expression that fires in none of them never fires (Feb 30)


def schedule_options(schedule: str, keep: str | None, to: str | None,
                     to_s3: str | None = None) -> tuple["Schedule | None", int, str, "S3Target | None"]:
    """`k8s.backup --schedule/--keep/--to/--to-s3` as (the schedule or None for `off`, how many to
    keep, the copy directory or "", the S3 target or None): every problem of them in one UsageError."""
    from ..cli import whole_number
    from ..config.files import host_directory
    from .s3 import parse_s3_url

    problems: list[str] = []
    off = schedule.strip().lower() == "off"
    if off and (keep is not None or to is not None or to_s3 is not None):
        problems.append("--schedule off removes the timer: --keep, --to and --to-s3 do not go with it")
    plan = None
    if not off:
        try:
            plan = parse_schedule(schedule)
        except UsageError as exc:
            problems.append(str(exc))
    kept = 5
    try:
        kept = whole_number(keep, "--keep", 5)
        if kept < 1:
            problems.append("--keep must be at least 1")
    except UsageError as exc:
        problems.append(str(exc))
    to_dir = ""
    if to:
        try:
            to_dir = host_directory(to, "--to")
        except UsageError as exc:
            problems.append(str(exc))
    s3 = None
    if to_s3:
        try:
            s3 = parse_s3_url(to_s3)
        except UsageError as exc:
            problems.append(str(exc))
    if problems:
        raise UsageError("; ".join(problems))
    return plan, kept, to_dir, s3


@dataclass(frozen=True)
class Schedule:
    """The operator's text, the timer's [Timer] lines, and the longest wait between two runs."""

    text: str
    timer: tuple[str, ...]
    longest_gap: int  # seconds


def parse_schedule(text: str) -> Schedule:
    """A cron expression or an interval; a clear UsageError for anything else."""
    words = text.split()
    interval = INTERVAL.fullmatch(words[0].lower()) if len(words) == 1 else None
    if interval:
        number, unit = interval.groups()
        seconds = int(number) * UNITS[unit]
        if seconds < SHORTEST_INTERVAL:
            raise UsageError(f"--schedule {text!r}: at least {SHORTEST_INTERVAL}s between snapshots")
        return Schedule(text, (f"OnActiveSec={seconds}s", f"OnUnitActiveSec={seconds}s"), seconds)
    if len(words) != 5:
        raise UsageError(f"--schedule {text!r}: give a cron expression of five fields (minute hour day-of-month "
                         f"month day-of-week, e.g. '0 */12 * * *') or an interval (30s, 15min, 12h, 1d)")
    values = []
    problems = []
    for word, (name, low, high, names) in zip(words, FIELDS):
        try:
            values.append(_field(word.lower(), low, high, names))
        except ValueError as exc:
            problems.append(f"{name} {word!r}: {exc}")
            values.append(None)
    if problems:
        raise UsageError(f"--schedule {text!r}: " + "; ".join(problems))
    minutes, hours, days, months, weekdays = values
    weekdays = {d % 7 for d in weekdays} if weekdays is not None else None  # 7 is Sunday too
    if days is not None and weekdays is not None:
        # cron runs when either matches, systemd only when both do: no timer says what cron means
        raise UsageError(f"--schedule {text!r}: restrict the day of the month or the day of the week, not both")
    timer = "{}*-{}-{} {}:{}:00".format(
        ",".join(SYSTEMD_DAYS[d] for d in sorted(weekdays)) + " " if weekdays is not None else "",
        *(_listed(v) for v in (months, days, hours, minutes)))
    gap = _longest_gap(minutes, hours, days, months, weekdays)
    if gap is None:
        raise UsageError(f"--schedule {text!r}: no such day in {HORIZON_DAYS // 366} years; it would never run")
    return Schedule(text, (f"OnCalendar={timer}",), gap)


def _field(word: str, low: int, high: int, names: tuple[str, ...]) -> set[int] | None:
    """The values a cron field allows (None for `*`, every value)."""
    if word == "*":
        return None
    found: set[int] = set()
    for part in word.split(","):
        match = re.fullmatch(r"(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?", part)
        if not match:
            raise ValueError("not a value, a range (a-b), a list (a,b) or a step (*/n, a-b/n)")
        span, step = match[1], int(match[2] or 1)
        if step < 1:
            raise ValueError("a step must be at least 1")
        if span == "*":
            first, last = low, high
        else:
            ends = [_value(end, low, high, names) for end in span.split("-")]
            first, last = ends[0], ends[-1]
            if last < first:
                raise ValueError(f"the range {span} runs backwards")
            if match[2] and len(ends) == 1:
                last = high  # `5/15`: from 5, every 15
        found.update(range(first, last + 1, step))
    return found


def _value(word: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if word in names:
        return names.index(word) + (1 if low == 1 else 0)
    if not word.isdigit():
        raise ValueError(f"{word} is not a number" + (f" or one of {', '.join(names)}" if names else ""))
    if not low <= int(word) <= high:
        raise ValueError(f"{word} is not within {low}-{high}")
    return int(word)


def _listed(values: set[int] | None) -> str:
    return "*" if values is None else ",".join(f"{v:02d}" for v in sorted(values))


def _longest_gap(minutes, hours, days, months, weekdays) -> int | None:
    """The longest time between two runs, over the coming years (leap years and months of every
    length included); None when it never runs."""
    start = datetime.date.today()
    times = [h * 3600 + m * 60 for h in sorted(hours or range(24)) for m in sorted(minutes or range(60))]
    longest = max((b - a for a, b in zip(times, times[1:])), default=0)  # within a day
    matching = []
    for offset in range(HORIZON_DAYS):
        day = start + datetime.timedelta(days=offset)
        if ((months is None or day.month in months) and (days is None or day.day in days)
                and (weekdays is None or day.isoweekday() % 7 in weekdays)):
            matching.append(offset)
    if not matching:
        return None
    if len(matching) == 1:
        return HORIZON_DAYS * 86400
    across = max(b - a for a, b in zip(matching, matching[1:])) * 86400 - times[-1] + times[0]
    return max(longest, across)
