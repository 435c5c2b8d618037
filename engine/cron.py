"""Cron expressions and time zones of scheduled workloads: validation and the next run time, in UTC.

Times in the store are naive UTC (as everywhere in Hopper); a schedule's cron is read in its own time zone, so
"0 2 * * *" in Europe/Berlin is 02:00 Berlin time in winter and in summer (croniter handles the DST shifts).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from hopper.engine.errors import ValidationError

CRON_FIELDS = 5  # minute hour day-of-month month day-of-week; a seconds field would fire faster than a poll


def utcnow() -> datetime:
    """Now, as the store keeps times (naive UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def check_cron(expression: str) -> str:
    """The expression with single spaces, or ``ValidationError`` (field ``cron``) saying what is wrong."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValidationError("cron expression is empty; give 5 fields: minute hour day month weekday, "
                              "e.g. \"0 2 * * *\"", field="cron")
    parts = expression.split()
    if len(parts) != CRON_FIELDS:
        raise ValidationError(f"cron expression {expression!r} has {len(parts)} fields; give 5: minute hour day "
                              "month weekday, e.g. \"0 2 * * *\"", field="cron")
    normalised = " ".join(parts)
    if not croniter.is_valid(normalised):
        raise ValidationError(f"cron expression {expression!r} is not valid (minute 0-59, hour 0-23, day 1-31, "
                              "month 1-12, weekday 0-6; * , - / allowed)", field="cron")
    return normalised


def check_timezone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (Europe/Berlin, UTC), or ``ValidationError`` (field ``timezone``)."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("time zone is empty; give an IANA name such as UTC or Europe/Berlin", field="timezone")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long to be a file of the tz database
        raise ValidationError(f"unknown time zone {name!r}; give an IANA name such as UTC or Europe/Berlin",
                              field="timezone") from None


def next_run(expression: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` (naive UTC) that the cron matches in ``timezone``, as naive UTC."""
    zone = check_timezone(timezone)
    start = after.replace(tzinfo=UTC).astimezone(zone)
    try:
        nxt = croniter(check_cron(expression), start).get_next(datetime)
    except CroniterBadDateError:
        raise ValidationError(f"cron expression {expression!r} matches no date (such as 30 February)",
                              field="cron") from None
    return nxt.astimezone(UTC).replace(tzinfo=None, microsecond=0)


def local_time(when: datetime, timezone: str) -> datetime:
    """A naive UTC time in the schedule's zone (for names and tables)."""
    return when.replace(tzinfo=UTC).astimezone(check_timezone(timezone))
