"""Cron expressions and time zones of schedules: what is refused (and why), and when the next run falls."""

from datetime import datetime

import pytest

from hopper.engine.cron import check_cron, check_timezone, local_time, next_run
from hopper.engine.errors import ValidationError


@pytest.mark.parametrize("expression,says", [
    ("", "empty"), ("   ", "empty"), ("* * * *", "has 4 fields"), ("0 2 * * * *", "has 6 fields"),
    ("61 * * * *", "not valid"), ("0 24 * * *", "not valid"), ("0 2 32 * *", "not valid"),
    ("0 2 * 13 *", "not valid"), ("a b c d e", "not valid"), ("*/0 * * * *", "not valid"),
    ("\x00 * * * *", "not valid"), ("9999999999999999999 * * * *", "not valid"), ("@daily", "has 1 fields"),
])
def test_bad_cron_expressions_are_refused_naming_the_field(expression, says):
    with pytest.raises(ValidationError) as info:
        check_cron(expression)
    assert info.value.field == "cron" and says in info.value.message


def test_good_cron_expressions_are_normalised():
    assert check_cron("  0   2 * *   1-5 ") == "0 2 * * 1-5"
    assert check_cron("*/15 * * * *") == "*/15 * * * *"


@pytest.mark.parametrize("name", ["", "Mars/Olympus", "Europe/Berlin/../../etc", "UTC+25", "/etc/localtime", "UTC\x00",
                                  "a" * 300])
def test_unknown_time_zones_are_refused(name):
    with pytest.raises(ValidationError) as info:
        check_timezone(name)
    assert info.value.field == "timezone"


def test_next_run_reads_the_cron_in_its_time_zone_across_dst():
    # 02:00 in Berlin is 01:00 UTC in winter and 00:00 UTC in summer
    assert next_run("0 2 * * *", "Europe/Berlin", datetime(2026, 1, 10, 12)) == datetime(2026, 1, 11, 1)
    assert next_run("0 2 * * *", "Europe/Berlin", datetime(2026, 7, 10, 12)) == datetime(2026, 7, 11, 0)
    # the night clocks go forward (29 March 2026), 02:00 does not exist: the run is at the jump, once
    assert next_run("0 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12)) == datetime(2026, 3, 29, 1)
    assert next_run("0 2 * * *", "Europe/Berlin", datetime(2026, 3, 29, 1)) == datetime(2026, 3, 30, 0)
    assert next_run("0 2 * * *", "UTC", datetime(2026, 1, 10, 12)) == datetime(2026, 1, 11, 2)


def test_a_cron_that_matches_no_date_is_refused():
    with pytest.raises(ValidationError) as info:
        next_run("0 0 30 2 *", "UTC", datetime(2026, 1, 1))
    assert info.value.field == "cron" and "matches no date" in info.value.message
    assert next_run("0 0 29 2 *", "UTC", datetime(2026, 1, 1)) == datetime(2028, 2, 29)  # a leap day is a date


def test_next_run_is_strictly_after_and_whole_seconds():
    assert next_run("*/5 * * * *", "UTC", datetime(2026, 1, 1, 12, 0)) == datetime(2026, 1, 1, 12, 5)
    assert next_run("*/5 * * * *", "UTC", datetime(2026, 1, 1, 12, 4, 59, 999999)) == datetime(2026, 1, 1, 12, 5)
    assert next_run("0 9 * * 1", "America/New_York", datetime(2026, 11, 26, 15)) == datetime(2026, 11, 30, 14)


def test_local_time_names_the_zone():
    assert f"{local_time(datetime(2026, 7, 11, 0), 'Europe/Berlin'):%H:%M %Z}" == "02:00 CEST"
