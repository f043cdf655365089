"""Time-trigger maths: exact occurrence instants, validation rules and their messages."""

from __future__ import annotations

import datetime as dt
import itertools
import time

import pytest

from karbor.common import exception
from karbor.common.config import CONF
from karbor.services.operationengine import time_trigger as tt

D = dt.datetime
SEED_PATTERN = "BEGIN:VEVENT\\nRRULE:FREQ=MINUTELY;INTERVAL=5;\\nEND:VEVENT"


def cal(rule: str, **props) -> dict:
    """A calendar trigger as the CLI sends it (literal backslash-n between lines)."""
    return {"format": "calendar", "pattern": f"BEGIN:VEVENT\\nRRULE:{rule}\\nEND:VEVENT",
            **props}


def cron(expr: str, **props) -> dict:
    return {"format": "crontab", "pattern": expr, **props}


def fixed_clock(value: dt.datetime):
    return lambda: value


def first(props: dict, n: int, after: dt.datetime | None = None) -> list[dt.datetime]:
    trigger = tt.load(props)
    start = after if after is not None else trigger.start_time - dt.timedelta(seconds=1)
    out = []
    for value in trigger.occurrences(start):
        out.append(value)
        if len(out) == n:
            break
    return out


def invalid(props: dict, **kwargs) -> str:
    with pytest.raises(exception.InvalidInput) as info:
        tt.validate(props, **kwargs)
    return info.value.msg


@pytest.fixture(autouse=True)
def _conf():
    yield
    for name in ("min_interval", "min_window_time", "max_window_time", "default_window_time",
                 "time_format"):
        CONF.clear_override(name)


# ---------------------------------------------------------------------------------------
# the seed example and the clock


def test_seed_five_minute_pattern_is_accepted_with_default_config():
    clock = fixed_clock(D(2017, 3, 2, 22, 56, 42, 987654))
    stored = tt.normalize({"pattern": SEED_PATTERN, "format": "calendar"}, clock=clock)
    assert stored == {"format": "calendar", "pattern": SEED_PATTERN,
                      "start_time": "2017-03-02 22:56:42"}
    assert tt.next_occurrence(stored, D(2017, 3, 2, 22, 56, 42)) == D(2017, 3, 2, 23, 1, 42)
    # start_time itself is the first occurrence
    assert tt.next_occurrence(stored, D(2017, 3, 1)) == D(2017, 3, 2, 22, 56, 42)


def test_clock_only_defaults_start_time():
    props = cal("FREQ=HOURLY")
    one = tt.load(props, clock=fixed_clock(D(2021, 6, 1, 8, 15, 0)))
    two = tt.load(props, clock=fixed_clock(D(2021, 6, 1, 9, 15, 0)))
    assert one.start_time == D(2021, 6, 1, 8, 15)
    assert two.start_time == D(2021, 6, 1, 9, 15)
    assert one.next_occurrence(D(2021, 6, 1, 8, 15)) == D(2021, 6, 1, 9, 15)
    # an explicit start_time wins over the clock
    given = tt.load(cal("FREQ=HOURLY", start_time="2020-01-01 00:00:00"),
                    clock=fixed_clock(D(2030, 1, 1)))
    assert given.start_time == D(2020, 1, 1)


def test_default_clock_is_whole_seconds_utc():
    now = tt.utcnow()
    assert now.tzinfo is None and now.microsecond == 0
    assert abs((dt.datetime.now(dt.UTC).replace(tzinfo=None) - now).total_seconds()) < 5


# ---------------------------------------------------------------------------------------
# calendar rules


def test_minutely_interval_between_is_half_open():
    props = cal("FREQ=MINUTELY;INTERVAL=15", start_time="2020-01-01 00:00:00")
    assert tt.occurrences_between(props, D(2020, 1, 1), D(2020, 1, 1, 1)) == [
        D(2020, 1, 1, 0, 15), D(2020, 1, 1, 0, 30), D(2020, 1, 1, 0, 45), D(2020, 1, 1, 1, 0)]
    assert tt.occurrences_between(props, D(2020, 1, 1), D(2020, 1, 1, 1), limit=2) == [
        D(2020, 1, 1, 0, 15), D(2020, 1, 1, 0, 30)]
    assert tt.occurrences_between(props, D(2020, 1, 1, 0, 1), D(2020, 1, 1, 0, 14)) == []


def test_hourly_interval_with_byminute():
    props = cal("FREQ=HOURLY;INTERVAL=2;BYMINUTE=30", start_time="2020-01-01 00:10:00")
    assert first(props, 3) == [D(2020, 1, 1, 0, 30), D(2020, 1, 1, 2, 30),
                               D(2020, 1, 1, 4, 30)]


def test_daily_byhour_takes_seconds_from_start():
    props = cal("FREQ=DAILY;BYHOUR=3;BYMINUTE=0", start_time="2020-01-01 10:00:07")
    assert tt.next_occurrence(props, D(2020, 1, 1, 10)) == D(2020, 1, 2, 3, 0, 7)
    assert tt.next_occurrence(props, D(2020, 1, 2, 3, 0, 7)) == D(2020, 1, 3, 3, 0, 7)


def test_weekly_byday():
    # 2020-01-01 is a Wednesday
    props = cal("FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=22;BYMINUTE=0;BYSECOND=0",
                start_time="2020-01-01 00:00:00")
    assert first(props, 4) == [D(2020, 1, 1, 22), D(2020, 1, 3, 22), D(2020, 1, 6, 22),
                               D(2020, 1, 8, 22)]


def test_weekly_interval_two_counts_weeks_from_the_start_week():
    # Weeks start on Monday (WKST=MO): start_time's week is Dec 30 - Jan 5, so the
    # Tuesday of the following week (Jan 7) is in a skipped week.
    props = cal("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU;BYHOUR=1;BYMINUTE=0;BYSECOND=0",
                start_time="2020-01-01 00:00:00")
    assert first(props, 3) == [D(2020, 1, 14, 1), D(2020, 1, 28, 1), D(2020, 2, 11, 1)]


def test_monthly_last_friday():
    props = cal("FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=23;BYMINUTE=0;BYSECOND=0",
                start_time="2020-01-01 00:00:00")
    assert first(props, 3) == [D(2020, 1, 31, 23), D(2020, 2, 28, 23), D(2020, 3, 27, 23)]


def test_count_exhausts_the_trigger():
    props = cal("FREQ=DAILY;COUNT=3", start_time="2020-01-01 06:00:00")
    assert first(props, 10) == [D(2020, 1, 1, 6), D(2020, 1, 2, 6), D(2020, 1, 3, 6)]
    assert tt.next_occurrence(props, D(2020, 1, 3, 6)) is None


def test_until_in_utc_is_inclusive():
    props = cal("FREQ=DAILY;UNTIL=20200103T000000Z", start_time="2020-01-01 00:00:00")
    tt.validate(props)
    assert first(props, 10) == [D(2020, 1, 1), D(2020, 1, 2), D(2020, 1, 3)]
    assert tt.next_occurrence(props, D(2020, 1, 3)) is None


def test_until_as_a_date():
    props = cal("FREQ=DAILY;UNTIL=20200102", start_time="2020-01-01 00:00:00")
    assert first(props, 10) == [D(2020, 1, 1), D(2020, 1, 2)]


def test_several_rrules_are_merged_in_order():
    pattern = ("BEGIN:VEVENT\\nRRULE:FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0\\n"
               "RRULE:FREQ=WEEKLY;BYDAY=FR;BYHOUR=17;BYMINUTE=0;BYSECOND=0\\nEND:VEVENT")
    props = {"format": "calendar", "pattern": pattern, "start_time": "2020-01-01 00:00:00"}
    tt.validate(props)
    assert first(props, 3) == [D(2020, 1, 3, 17), D(2020, 1, 6, 9), D(2020, 1, 10, 17)]


def test_real_newlines_and_vcalendar_wrapper_work_too():
    text = ("BEGIN:VCALENDAR\nBEGIN:VEVENT\nRRULE:FREQ=HOURLY;INTERVAL=6\nEND:VEVENT\n"
            "END:VCALENDAR")
    props = {"format": "calendar", "pattern": text, "start_time": "2020-01-01 00:00:00"}
    assert first(props, 3) == [D(2020, 1, 1, 0), D(2020, 1, 1, 6), D(2020, 1, 1, 12)]


def test_end_time_bounds_occurrences():
    props = cal("FREQ=DAILY", start_time="2020-01-01 00:00:00", end_time="2020-01-02 12:00:00")
    tt.validate(props)
    assert first(props, 10) == [D(2020, 1, 1), D(2020, 1, 2)]
    assert tt.next_occurrence(props, D(2020, 1, 2)) is None
    # an occurrence exactly at end_time still fires
    exact = cal("FREQ=DAILY", start_time="2020-01-01 00:00:00", end_time="2020-01-03 00:00:00")
    assert tt.next_occurrence(exact, D(2020, 1, 2)) == D(2020, 1, 3)


# ---------------------------------------------------------------------------------------
# crontab


def test_crontab_every_two_hours():
    props = cron("0 */2 * * *", start_time="2020-01-01 01:00:00")
    assert first(props, 3) == [D(2020, 1, 1, 2), D(2020, 1, 1, 4), D(2020, 1, 1, 6)]


def test_crontab_weekdays_skip_the_weekend():
    # 2020-01-03 is a Friday
    props = cron("30 3 * * 1-5", start_time="2020-01-03 04:00:00")
    assert tt.next_occurrence(props, D(2020, 1, 3, 4)) == D(2020, 1, 6, 3, 30)


def test_crontab_start_time_itself_fires_and_earlier_times_wait_for_it():
    props = cron("0 0 * * *", start_time="2020-01-01 00:00:00")
    assert tt.next_occurrence(props, D(2019, 6, 1, 12)) == D(2020, 1, 1)
    assert tt.next_occurrence(props, D(2020, 1, 1)) == D(2020, 1, 2)
    assert tt.next_occurrence(props, D(2020, 1, 1, 23, 59, 59, 999999)) == D(2020, 1, 2)


def test_crontab_end_time_and_between():
    props = cron("15 * * * *", start_time="2020-01-01 00:00:00",
                 end_time="2020-01-01 02:15:00")
    assert tt.occurrences_between(props, D(2019, 1, 1), D(2030, 1, 1)) == [
        D(2020, 1, 1, 0, 15), D(2020, 1, 1, 1, 15), D(2020, 1, 1, 2, 15)]


def test_format_falls_back_to_time_format_option():
    CONF.set_override("time_format", "crontab")
    trigger = tt.validate({"pattern": "0 6 * * *", "start_time": "2020-01-01 00:00:00"})
    assert trigger.format == "crontab"
    assert trigger.next_occurrence(D(2020, 1, 1)) == D(2020, 1, 1, 6)
    assert trigger.to_properties()["format"] == "crontab"


def test_the_trigger_format_property_beats_the_option():
    CONF.set_override("time_format", "crontab")
    trigger = tt.validate(cal("FREQ=DAILY", start_time="2020-01-01 00:00:00"))
    assert trigger.next_occurrence(D(2020, 1, 1)) == D(2020, 1, 2)


# ---------------------------------------------------------------------------------------
# window


def test_window_defaults_to_default_window_time_and_is_not_stored():
    trigger = tt.validate(cal("FREQ=DAILY"), clock=fixed_clock(D(2020, 1, 1)))
    assert trigger.window == 900
    assert "window" not in trigger.to_properties()


@pytest.mark.parametrize(("default", "expected"), [(10, 60), (100000, 86400), (1200, 1200)])
def test_default_window_is_clamped_into_the_allowed_range(default, expected):
    CONF.set_override("default_window_time", default)
    assert tt.validate(cal("FREQ=DAILY")).window == expected


@pytest.mark.parametrize(("given", "stored"), [(60, "60"), (86400, "86400"), ("1800", "1800"),
                                                (" 900 ", "900")])
def test_window_edges_and_strings_are_accepted(given, stored):
    props = tt.normalize(cal("FREQ=DAILY", window=given, start_time="2020-01-01 00:00:00"))
    assert props["window"] == stored


@pytest.mark.parametrize("given", [59, 86401, 0, -5, "30"])
def test_window_out_of_range_is_refused(given):
    msg = invalid(cal("FREQ=DAILY", window=given))
    assert "window must be between 60 and 86400 seconds" in msg
    assert f"window({int(given)})" in msg


@pytest.mark.parametrize("given", ["abc", "1.5", True, 12.0, [60]])
def test_window_must_be_an_integer(given):
    msg = invalid(cal("FREQ=DAILY", window=given))
    assert "The trigger window(" in msg and "integer number of seconds" in msg


def test_window_range_follows_configuration():
    CONF.set_override("min_window_time", 900)
    CONF.set_override("max_window_time", 1800)
    assert "between 900 and 1800 seconds" in invalid(cal("FREQ=DAILY", window=600))
    assert tt.validate(cal("FREQ=DAILY", window=1800)).window == 1800


def test_load_does_not_apply_the_window_policy():
    # a stored trigger stays readable after the allowed range shrinks
    trigger = tt.load(cal("FREQ=DAILY", window=5, start_time="2020-01-01 00:00:00"))
    assert trigger.window == 5
    assert trigger.next_occurrence(D(2020, 1, 1)) == D(2020, 1, 2)


# ---------------------------------------------------------------------------------------
# min_interval


def test_every_minute_passes_the_default_min_interval():
    tt.validate(cal("FREQ=MINUTELY"))
    tt.validate(cron("* * * * *"))


def test_interval_below_min_interval_is_refused():
    CONF.set_override("min_interval", 3600)
    msg = invalid({"pattern": SEED_PATTERN, "format": "calendar"})
    assert msg.startswith("Invalid input received: The trigger pattern(" + SEED_PATTERN)
    assert "300 seconds apart, less than min_interval (3600 seconds)" in msg
    tt.validate(cal("FREQ=HOURLY"))


def test_smallest_gap_counts_not_the_first_one():
    # 01:00 and 02:00 every day: the gap from 02:00 to 01:00 next day is 23 h,
    # but the 1 h gap must be found even when the first computed gap is the long one.
    CONF.set_override("min_interval", 7200)
    props = cal("FREQ=DAILY;BYHOUR=1,2;BYMINUTE=0;BYSECOND=0",
                start_time="2020-01-01 01:30:00")
    assert "3600 seconds apart" in invalid(props)


def test_seconds_in_crontab_are_caught():
    msg = invalid(cron("* * * * * */30"))
    assert "30 seconds apart, less than min_interval (60 seconds)" in msg


def test_secondly_rule_is_caught():
    assert "1 seconds apart" in invalid(cal("FREQ=SECONDLY"))


def test_single_occurrence_has_no_interval_to_check():
    CONF.set_override("min_interval", 86400)
    tt.validate(cal("FREQ=MINUTELY;COUNT=1", start_time="2020-01-01 00:00:00"))


def test_end_time_can_hide_a_short_gap():
    # the short gap of this rule only happens after end_time
    CONF.set_override("min_interval", 7200)
    props = cal("FREQ=DAILY;BYHOUR=1,2;BYMINUTE=0;BYSECOND=0",
                start_time="2020-01-01 01:30:00", end_time="2020-01-02 01:30:00")
    assert tt.validate(props).next_occurrence(D(2020, 1, 1)) == D(2020, 1, 1, 2)


# ---------------------------------------------------------------------------------------
# start_time / end_time


def test_iso_start_and_end_are_normalised():
    props = tt.normalize(cal("FREQ=DAILY", start_time="2020-01-01T06:00:00",
                             end_time="2020-02-01T06:00:00Z"))
    assert props["start_time"] == "2020-01-01 06:00:00"
    assert props["end_time"] == "2020-02-01 06:00:00"


@pytest.mark.parametrize("value", ["2020/01/01 00:00:00", "yesterday", "2020-01-01",
                                   "2020-13-01 00:00:00", 1577836800])
def test_bad_start_time_is_refused(value):
    msg = invalid(cal("FREQ=DAILY", start_time=value))
    assert f"The trigger start_time({value}) is invalid" in msg


def test_bad_end_time_is_refused():
    assert "The trigger end_time(soon) is invalid" in invalid(cal("FREQ=DAILY",
                                                                  end_time="soon"))


@pytest.mark.parametrize("end", ["2020-01-01 00:00:00", "2019-12-31 23:59:59"])
def test_end_time_must_follow_start_time(end):
    msg = invalid(cal("FREQ=DAILY", start_time="2020-01-01 00:00:00", end_time=end))
    assert "end_time" in msg and "later than start_time (2020-01-01 00:00:00)" in msg


def test_end_time_one_second_after_start_is_fine():
    props = cal("FREQ=DAILY", start_time="2020-01-01 00:00:00", end_time="2020-01-01 00:00:01")
    assert first(props, 5) == [D(2020, 1, 1)]


def test_no_occurrence_before_end_time_is_refused():
    props = cal("FREQ=DAILY;BYHOUR=12", start_time="2020-01-01 13:00:00",
                end_time="2020-01-02 11:00:00")
    assert "never fires between start_time and end_time" in invalid(props)


# ---------------------------------------------------------------------------------------
# bad patterns and properties


@pytest.mark.parametrize(("pattern", "why"), [
    ("abc", "not iCalendar text"),
    ("BEGIN:VEVENT\\nEND:VEVENT", "needs a VEVENT with an RRULE"),
    ("BEGIN:VEVENT\\nRRULE:FREQ=FORTNIGHTLY\\nEND:VEVENT", "FREQ"),
    ("BEGIN:VEVENT\\nRRULE:INTERVAL=2\\nEND:VEVENT", "the RRULE has no FREQ"),
    ("BEGIN:VEVENT\\nRRULE:FREQ=DAILY;BYHOUR=25\\nEND:VEVENT", "hour must be in 0..23"),
    ("BEGIN:VEVENT\\nRRULE:FREQ=DAILY;FOO=1\\nEND:VEVENT", "FOO"),
    ("BEGIN:VEVENT\\nRRULE:FREQ=DAILY;BYHOUR=1,2;BYSETPOS=1\\nEND:VEVENT", "BYSETPOS"),
    ("BEGIN:VEVENT\\nRRULE:FREQ=HOURLY;BYMINUTE=61\\nEND:VEVENT", "minute must be in 0..59"),
    ("BEGIN:VEVENT\\nRRULE:FREQ=DAILY;UNTIL=garbage\\nEND:VEVENT", "cannot be parsed"),
    ("BEGIN:VEVENT\\nRRULE:FREQ=DAILY;BYDAY=XX\\nEND:VEVENT", "cannot be parsed"),
    # dateutil would loop forever on these two
    ("BEGIN:VEVENT\\nRRULE:FREQ=DAILY;INTERVAL=0\\nEND:VEVENT",
     "INTERVAL must be a positive integer"),
    ("BEGIN:VEVENT\\nRRULE:FREQ=DAILY;INTERVAL=-2\\nEND:VEVENT",
     "INTERVAL must be a positive integer"),
    ("BEGIN:VEVENT\\nRRULE:FREQ=DAILY;COUNT=0\\nEND:VEVENT", "COUNT must be a positive integer"),
])
def test_bad_calendar_patterns(pattern, why):
    msg = invalid({"format": "calendar", "pattern": pattern})
    assert msg.startswith(f"Invalid input received: The trigger pattern({pattern}) is invalid")
    assert why in msg


@pytest.mark.parametrize("pattern", ["bad", "61 * * * *", "* * *", "0 0 * * MON-FUNDAY"])
def test_bad_crontab_patterns(pattern):
    msg = invalid(cron(pattern))
    assert f"The trigger pattern({pattern}) is invalid: not a crontab expression" in msg


def test_calendar_text_under_crontab_format_is_refused():
    assert "not a crontab expression" in invalid(cron(SEED_PATTERN))


@pytest.mark.parametrize("props", [
    cal("FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=30"),
    cal("FREQ=HOURLY;BYMONTH=4;BYMONTHDAY=31"),
    cron("0 0 30 2 *"),
])
def test_rules_that_never_fire_are_refused_quickly(props):
    began = time.monotonic()
    assert "never fires after start_time" in invalid(props)
    assert time.monotonic() - began < 2


def test_unknown_format_is_refused():
    msg = invalid({"format": "cron", "pattern": "* * * * *"})
    assert msg == ("Invalid input received: The trigger format(cron) is invalid: it must be "
                   "one of calendar, crontab.")


@pytest.mark.parametrize("props", [{"format": "calendar"}, {"format": "calendar",
                                                            "pattern": "  "},
                                   {"format": "calendar", "pattern": 5}])
def test_pattern_is_required(props):
    assert invalid(props) == "Invalid input received: The trigger pattern is missing."


def test_unknown_property_is_refused():
    msg = invalid(cal("FREQ=DAILY", timezone="Europe/Paris"))
    assert "property timezone is not supported" in msg


def test_to_properties_are_strings():
    trigger = tt.validate(cal("FREQ=DAILY", window=1800, start_time="2020-01-01T00:00:00",
                              end_time="2021-01-01 00:00:00"))
    props = trigger.to_properties()
    assert props == {"format": "calendar", "pattern": cal("FREQ=DAILY")["pattern"],
                     "start_time": "2020-01-01 00:00:00", "end_time": "2021-01-01 00:00:00",
                     "window": "1800"}
    # the stored form loads back to the same trigger
    assert tt.load(props) == trigger


def test_a_parsed_trigger_can_be_passed_instead_of_properties():
    trigger = tt.validate(cal("FREQ=HOURLY", start_time="2020-01-01 00:00:00"))
    assert tt.next_occurrence(trigger, D(2020, 1, 1, 0, 30)) == D(2020, 1, 1, 1)
    assert tt.occurrences_between(trigger, D(2020, 1, 1), D(2020, 1, 1, 2)) == [
        D(2020, 1, 1, 1), D(2020, 1, 1, 2)]


@pytest.mark.parametrize("value", ["1969-12-31 23:59:59", "9001-01-01 00:00:00",
                                   "0001-01-01 00:00:00", "9999-12-31 23:59:59"])
def test_times_near_the_datetime_limits_are_refused(value):
    msg = invalid(cron("0 0 * * *", start_time=value))
    assert f"The trigger start_time({value}) is invalid: it must lie between 1970-01-01 " \
           "and 9000-12-31." in msg
    assert "end_time(" in invalid(cron("0 0 * * *", end_time=value))


def test_running_past_year_9999_ends_the_trigger():
    props = cal("FREQ=YEARLY", start_time="9000-06-01 00:00:00")
    assert tt.occurrences_between(props, D(9997, 1, 1), D(9999, 12, 31)) == [
        D(9997, 6, 1), D(9998, 6, 1), D(9999, 6, 1)]
    assert tt.next_occurrence(props, D(9999, 6, 1)) is None
    assert tt.next_occurrence(cron("0 0 * * *", start_time="9000-01-01 00:00:00"),
                              D(9999, 12, 31)) is None


def test_aware_datetimes_are_taken_as_utc():
    plus_two = dt.timezone(dt.timedelta(hours=2))
    props = cal("FREQ=HOURLY", start_time="2020-01-01 00:00:00")
    # 02:30+02:00 is 00:30 UTC
    assert tt.next_occurrence(props, D(2020, 1, 1, 2, 30, tzinfo=plus_two)) == D(2020, 1, 1, 1)
    trigger = tt.load(cal("FREQ=HOURLY"), clock=fixed_clock(D(2020, 1, 1, 12, tzinfo=plus_two)))
    assert trigger.start_time == D(2020, 1, 1, 10)


# ---------------------------------------------------------------------------------------
# daylight saving time: trigger times are UTC, so there is none
#
# 2030 DST changes: Europe (EU rule, last Sunday) 2030-03-31 01:00 UTC and 2030-10-27
# 01:00 UTC; United States (second Sunday of March, first of November) 2030-03-10 and
# 2030-11-03 at 02:00 local time.  A DAILY trigger fires every 24 hours across all of
# them, at the same UTC wall-clock time; whatever local time that is, is the user's
# business (the original Karbor behaves alike: its times are UTC too).

DST_CHANGES = [D(2030, 3, 10), D(2030, 3, 31), D(2030, 10, 27), D(2030, 11, 3)]


def _every_24h(values: list[dt.datetime]) -> bool:
    return all(b - a == dt.timedelta(hours=24) for a, b in itertools.pairwise(values))


@pytest.mark.parametrize("day", DST_CHANGES, ids=lambda d: d.strftime("%Y-%m-%d"))
@pytest.mark.parametrize("clock", ["01:30:00", "02:30:00", "00:59:59", "23:00:00"])
def test_daily_calendar_trigger_fires_every_24h_across_dst_changes(day, clock):
    start = day - dt.timedelta(days=2)
    props = cal("FREQ=DAILY;INTERVAL=1;", start_time=f"{start:%Y-%m-%d} {clock}")
    tt.validate(props)
    hours, minutes, seconds = (int(x) for x in clock.split(":"))
    expected = [start + dt.timedelta(days=n, hours=hours, minutes=minutes, seconds=seconds)
                for n in range(5)]
    assert first(props, 5) == expected
    assert _every_24h(expected)


def test_daily_trigger_around_the_european_changes_exactly():
    # 01:30 UTC: 02:30 CET before the spring change (the local hour 02:00-03:00 that does
    # not exist on 2030-03-31), 03:30 CEST after it; the UTC instants do not move.
    spring = cal("FREQ=DAILY", start_time="2030-03-30 01:30:00")
    assert first(spring, 3) == [D(2030, 3, 30, 1, 30), D(2030, 3, 31, 1, 30),
                                D(2030, 4, 1, 1, 30)]
    # 00:30 UTC on 2030-10-27 is 02:30 CEST, the local hour that happens twice that night;
    # the trigger still fires once, 24 hours after the day before.
    autumn = cal("FREQ=DAILY", start_time="2030-10-26 00:30:00")
    assert first(autumn, 3) == [D(2030, 10, 26, 0, 30), D(2030, 10, 27, 0, 30),
                                D(2030, 10, 28, 0, 30)]
    assert tt.occurrences_between(autumn, D(2030, 10, 27), D(2030, 10, 27, 23, 59, 59)) == [
        D(2030, 10, 27, 0, 30)]


def test_daily_trigger_around_the_us_changes_exactly():
    # 07:00 UTC is 02:00 EST before 2030-03-10 and 03:00 EDT after; it stays 07:00 UTC.
    spring = cal("FREQ=DAILY;BYHOUR=7;BYMINUTE=0;BYSECOND=0", start_time="2030-03-09 00:00:00")
    assert first(spring, 3) == [D(2030, 3, 9, 7), D(2030, 3, 10, 7), D(2030, 3, 11, 7)]
    autumn = cal("FREQ=DAILY;BYHOUR=6;BYMINUTE=0;BYSECOND=0", start_time="2030-11-02 00:00:00")
    assert first(autumn, 3) == [D(2030, 11, 2, 6), D(2030, 11, 3, 6), D(2030, 11, 4, 6)]


def test_hourly_trigger_has_24_occurrences_on_dst_days():
    props = cal("FREQ=HOURLY", start_time="2030-01-01 00:00:00")
    for day in DST_CHANGES:
        got = tt.occurrences_between(props, day - dt.timedelta(seconds=1),
                                     day + dt.timedelta(hours=23))
        assert got == [day + dt.timedelta(hours=h) for h in range(24)]


@pytest.mark.parametrize("day", DST_CHANGES, ids=lambda d: d.strftime("%Y-%m-%d"))
def test_daily_crontab_fires_every_24h_across_dst_changes(day):
    props = cron("30 1 * * *", start_time=f"{day - dt.timedelta(days=2):%Y-%m-%d} 00:00:00")
    tt.validate(props)
    got = first(props, 5)
    assert got == [day + dt.timedelta(days=n, hours=1, minutes=30) for n in range(-2, 3)]
    assert _every_24h(got)


def test_weekly_trigger_across_dst_keeps_its_utc_time():
    # Sundays 01:30 UTC, the instant of the EU spring change on 2030-03-31 included.
    props = cal("FREQ=WEEKLY;BYDAY=SU;BYHOUR=1;BYMINUTE=30;BYSECOND=0",
                start_time="2030-03-20 00:00:00")
    assert first(props, 3) == [D(2030, 3, 24, 1, 30), D(2030, 3, 31, 1, 30),
                               D(2030, 4, 7, 1, 30)]


@pytest.fixture
def berlin_local_time(monkeypatch):
    """The host's own time zone set to Europe/Berlin (it must not matter)."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    assert time.localtime(D(2030, 7, 1).timestamp()).tm_isdst == 1
    yield
    monkeypatch.undo()
    time.tzset()


def test_host_time_zone_does_not_shift_triggers(berlin_local_time):
    daily = cal("FREQ=DAILY", start_time="2030-03-30 01:30:00")
    assert first(daily, 3) == [D(2030, 3, 30, 1, 30), D(2030, 3, 31, 1, 30),
                               D(2030, 4, 1, 1, 30)]
    crontab = cron("30 1 * * *", start_time="2030-10-26 00:00:00")
    assert first(crontab, 3) == [D(2030, 10, 26, 1, 30), D(2030, 10, 27, 1, 30),
                                 D(2030, 10, 28, 1, 30)]
    # the default clock is UTC too, not the host's local time
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    now = tt.utcnow()
    assert dt.timedelta(0) <= now - before <= dt.timedelta(seconds=2)


# A calendar pattern's DTSTART (with or without TZID) is ignored: only the VEVENT's RRULEs
# are read, anchored at the trigger's start_time, in UTC.  So a Berlin-local DTSTART
# neither moves the occurrences nor brings local-time DST shifts back; an unknown TZID is
# not an error either, since nothing reads it.

BERLIN_DTSTART = ("BEGIN:VEVENT\\nDTSTART;TZID=Europe/Berlin:20300330T020000\\n"
                  "RRULE:FREQ=DAILY;INTERVAL=1;\\nEND:VEVENT")


def test_dtstart_with_tzid_is_ignored_and_start_time_rules():
    props = {"format": "calendar", "pattern": BERLIN_DTSTART,
             "start_time": "2030-03-29 01:30:00"}
    trigger = tt.validate(props)
    assert trigger.to_properties()["pattern"] == BERLIN_DTSTART  # stored as given
    expected = [D(2030, 3, 29, 1, 30), D(2030, 3, 30, 1, 30), D(2030, 3, 31, 1, 30),
                D(2030, 4, 1, 1, 30)]
    assert first(props, 4) == expected
    assert first(cal("FREQ=DAILY;INTERVAL=1;", start_time="2030-03-29 01:30:00"), 4) == expected
    # across the autumn change as well
    autumn = {**props, "start_time": "2030-10-26 02:00:00"}
    assert first(autumn, 3) == [D(2030, 10, 26, 2), D(2030, 10, 27, 2), D(2030, 10, 28, 2)]


@pytest.mark.parametrize("dtstart", [
    "DTSTART;TZID=America/New_York:20300309T020000",
    "DTSTART;TZID=No/Such_Zone:20300309T020000",
    "DTSTART:20300309T020000Z",
    "DTSTART:20300309T020000",
    "DTSTART;VALUE=DATE:20300309",
])
def test_any_dtstart_is_ignored(dtstart):
    pattern = f"BEGIN:VEVENT\\n{dtstart}\\nRRULE:FREQ=DAILY;BYHOUR=7;BYMINUTE=0;BYSECOND=0\\n" \
              "END:VEVENT"
    props = {"format": "calendar", "pattern": pattern, "start_time": "2030-03-09 00:00:00"}
    tt.validate(props)
    assert first(props, 3) == [D(2030, 3, 9, 7), D(2030, 3, 10, 7), D(2030, 3, 11, 7)]


def test_vcalendar_with_vtimezone_and_tzid_is_still_utc():
    pattern = ("BEGIN:VCALENDAR\nBEGIN:VTIMEZONE\nTZID:Europe/Berlin\nEND:VTIMEZONE\n"
               "BEGIN:VEVENT\nDTSTART;TZID=Europe/Berlin:20300330T020000\n"
               "RRULE:FREQ=DAILY;UNTIL=20300401T013000Z\nEND:VEVENT\nEND:VCALENDAR")
    props = {"format": "calendar", "pattern": pattern, "start_time": "2030-03-30 01:30:00"}
    tt.validate(props)
    # UNTIL is UTC and inclusive
    assert first(props, 10) == [D(2030, 3, 30, 1, 30), D(2030, 3, 31, 1, 30),
                                D(2030, 4, 1, 1, 30)]
