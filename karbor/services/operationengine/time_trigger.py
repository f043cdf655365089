"""Time-trigger maths: validate a trigger's properties and compute when it fires.

Everything here is pure: the only notion of "now" is an injectable ``clock``
(used solely to default ``start_time``), so the API, the scheduler and the
tests all get the same answers for the same inputs.  Times are naive
datetimes meaning UTC; there is no DST to care about.

Two pattern formats exist, chosen by the trigger's own ``format`` property
(the original ignored it and used the global ``time_format``; we only fall
back to that option when the property is absent):

* ``calendar``: iCalendar text with a VEVENT holding one or more RRULEs,
  expanded by ``dateutil.rrule`` from ``start_time``;
* ``crontab``: a croniter expression, first firing at or after ``start_time``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import icalendar
from croniter import croniter
from croniter.croniter import CroniterError
from dateutil import rrule

from karbor.common import exception
from karbor.common.config import CONF

LOG = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]

FORMATS = ("calendar", "crontab")
STORED_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
ACCEPTED_TIME_FORMATS = (STORED_TIME_FORMAT, "%Y-%m-%dT%H:%M:%S")
# Far enough from datetime's limits that stepping a little past them never overflows.
EARLIEST = dt.datetime(1970, 1, 1)
LATEST = dt.datetime(9000, 12, 31, 23, 59, 59)
PROPERTY_NAMES = ("format", "pattern", "start_time", "end_time", "window")

# How many leading occurrences the min_interval check inspects: enough to see
# every gap of any periodic rule a backup schedule plausibly uses (e.g. the
# Monday gap of a weekday rule, the two hours of BYHOUR=1,2) at a tiny cost.
INTERVAL_SAMPLES = 100

# How much work one search for occurrences may do, in Python calls (profiler events).
# dateutil checks UNTIL only on candidate instants, so neither UNTIL nor COUNT bounds
# a rule that rarely matches: FREQ=SECONDLY;INTERVAL=7;BYMONTH=2;BYMONTHDAY=29;
# BYHOUR=0;BYMINUTE=0;BYSECOND=1 ran for minutes.  Counting calls (not seconds) keeps
# the verdict the same on a busy and an idle machine; 2 million is about a third of a
# second and covers a hundred occurrences of every sensible backup schedule.
SEARCH_BUDGET = 2_000_000

_SUB_MONTHLY = ("WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY")
_SUB_WEEKLY = ("DAILY", "HOURLY", "MINUTELY", "SECONDLY")
_DAY_AND_TIME_FILTERS = ("BYMONTH", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYDAY",
                         "BYHOUR", "BYMINUTE", "BYSECOND", "WKST")
_UNTIL_UTC = re.compile(r"(UNTIL=\d{8}(?:T\d{6})?)Z", re.IGNORECASE)
_WEEKDAY_ORDINAL = re.compile(r"^[+-]?\d+")
_INT_TEXT = re.compile(r"^\s*[+-]?\d+\s*$")


def utcnow() -> dt.datetime:
    """The default clock: naive UTC with whole seconds, as trigger times are stored."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def naive_utc(value: dt.datetime) -> dt.datetime:
    """Aware datetimes (from a caller's clock, say) become the naive UTC used throughout."""
    if value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _invalid(name: str, value: Any, why: str) -> exception.InvalidInput:
    return exception.InvalidInput(reason=f"The trigger {name}({value}) is invalid: {why}")


class SearchTooLong(Exception):
    """The search for the next occurrence used up its budget (see SEARCH_BUDGET)."""


class _Budget:
    """Runs steps of an occurrence search under a thread-local call counter."""

    def __init__(self, limit: int):
        self.left = limit

    def _count(self, frame, event, arg) -> None:
        self.left -= 1
        if self.left < 0:
            raise SearchTooLong()

    def next(self, values: Iterator[dt.datetime]) -> dt.datetime:
        if self.left < 0:
            raise SearchTooLong()
        previous = sys.getprofile()
        sys.setprofile(self._count)
        try:
            return next(values)
        finally:
            sys.setprofile(previous)


class Schedule(Protocol):
    def iter_after(self, after: dt.datetime) -> Iterator[dt.datetime]:
        """Occurrences strictly after ``after`` and not before the start time, ascending."""


# ---------------------------------------------------------------------------------------
# calendar


def _unescape(pattern: str) -> str:
    # The CLI passes "\n" through as two characters (and JSON escapes them),
    # so a pattern typed on one line arrives with literal backslash-n.
    return pattern.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\\r", "\n")


def _rrule_texts(pattern: str) -> list[str]:
    try:
        components = icalendar.Calendar.from_ical(_unescape(pattern), multiple=True)
    except Exception as exc:  # icalendar raises ValueError, but also others on junk
        raise _invalid("pattern", pattern, f"not iCalendar text ({exc})") from None
    texts = []
    for component in components:
        for event in component.walk("VEVENT"):
            value = event.get("RRULE")
            values = value if isinstance(value, list) else [value]
            for item in values:
                if item is None:
                    continue
                if not isinstance(item, icalendar.vRecur):
                    # icalendar keeps what it cannot parse as a "broken" value
                    raise _invalid("pattern", pattern, "the RRULE cannot be parsed.")
                raw = item.to_ical()
                texts.append(raw.decode() if isinstance(raw, bytes) else str(raw))
    if not texts:
        raise _invalid("pattern", pattern, "it needs a VEVENT with an RRULE, e.g. "
                       "BEGIN:VEVENT\\nRRULE:FREQ=WEEKLY;INTERVAL=1;\\nEND:VEVENT")
    return texts


def _rule_parts(text: str) -> dict[str, str]:
    parts = {}
    for chunk in text.split(";"):
        if chunk.strip():
            key, _, value = chunk.partition("=")
            parts[key.strip().upper()] = value.strip()
    return parts


def _check_counts(pattern: str, text: str) -> None:
    """INTERVAL and COUNT must be positive: dateutil loops forever on INTERVAL=0."""
    parts = _rule_parts(text)
    for key in ("INTERVAL", "COUNT"):
        if key in parts and not (parts[key].isdigit() and int(parts[key]) > 0):
            raise _invalid("pattern", pattern, f"{key} must be a positive integer.")


def _check_searchable(pattern: str, text: str, start: dt.datetime) -> None:
    """Refuse rules whose emptiness dateutil would only discover after seconds of work.

    dateutil walks a fine-grained rule day by day up to year 9999 before
    concluding it never fires (``FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=30`` takes
    about six seconds).  A yearly rule with the same day and time filters fires
    on a superset of those instants and is exhausted in a fraction of that, so
    it proves emptiness cheaply.  BYSETPOS on daily or finer rules is refused
    because it can empty a rule in ways no such superset reveals.
    """
    parts = _rule_parts(text)
    freq = parts.get("FREQ", "").upper()
    if freq not in _SUB_MONTHLY:
        return
    if "BYSETPOS" in parts and freq in _SUB_WEEKLY:
        raise _invalid("pattern", pattern, "BYSETPOS is only supported with "
                       "FREQ=WEEKLY, MONTHLY or YEARLY.")
    coarse = ["FREQ=YEARLY"]
    for key in _DAY_AND_TIME_FILTERS:
        if key not in parts:
            continue
        value = parts[key]
        if key == "BYDAY":
            # Ordinals mean nothing below MONTHLY (dateutil ignores them there).
            value = ",".join(_WEEKDAY_ORDINAL.sub("", day) for day in value.split(","))
        coarse.append(f"{key}={value}")
    try:
        # A yearly rule checks its filter values up front (finer ones only while
        # iterating), so this is also where BYMINUTE=61 and the like are caught.
        superset = rrule.rrulestr(";".join(coarse), dtstart=start)
    except (ValueError, TypeError) as exc:
        raise _invalid("pattern", pattern, str(exc)) from None
    if superset.after(start, inc=True) is None:
        raise _invalid("pattern", pattern, "it never fires after start_time.")


@dataclass(frozen=True)
class CalendarSchedule:
    rules: rrule.rruleset

    @classmethod
    def parse(cls, pattern: str, start: dt.datetime) -> CalendarSchedule:
        rules = rrule.rruleset()
        for text in _rrule_texts(pattern):
            # Everything is UTC: a "Z" UNTIL next to a naive start is the same instant.
            text = _UNTIL_UTC.sub(r"\1", text)
            _check_counts(pattern, text)
            try:
                rules.rrule(rrule.rrulestr(text, dtstart=start))
            except (ValueError, TypeError) as exc:
                reason = str(exc)
                if isinstance(exc, TypeError) and "freq" in reason:
                    reason = "the RRULE has no FREQ."
                raise _invalid("pattern", pattern, reason) from None
            _check_searchable(pattern, text, start)
        return cls(rules)

    def iter_after(self, after: dt.datetime) -> Iterator[dt.datetime]:
        return self.rules.xafter(after, inc=False)


# ---------------------------------------------------------------------------------------
# crontab


@dataclass(frozen=True)
class CrontabSchedule:
    expression: str
    start: dt.datetime

    @classmethod
    def parse(cls, pattern: str, start: dt.datetime) -> CrontabSchedule:
        expression = pattern.strip()
        try:
            croniter(expression, start)
        except (CroniterError, ValueError, TypeError, KeyError) as exc:
            raise _invalid("pattern", pattern, f"not a crontab expression ({exc})") from None
        return cls(expression, start)

    def iter_after(self, after: dt.datetime) -> Iterator[dt.datetime]:
        # croniter returns instants strictly after its base; starting one second
        # before start_time lets start_time itself fire (cron has 1 s resolution).
        base = max(after, self.start - dt.timedelta(seconds=1))
        it = croniter(self.expression, base)
        while True:
            try:
                value = it.get_next(dt.datetime)
            except CroniterError:  # no match within croniter's search horizon
                return
            yield value


# ---------------------------------------------------------------------------------------
# the trigger


@dataclass(frozen=True)
class TimeTrigger:
    """A parsed time trigger; ``window`` bounds how late an occurrence may still start."""

    format: str
    pattern: str
    start_time: dt.datetime
    end_time: dt.datetime | None
    window: int
    window_given: bool
    schedule: Schedule = field(repr=False, compare=False)

    def search(self, after: dt.datetime, budget: int = SEARCH_BUDGET) -> Iterator[dt.datetime]:
        """Occurrences strictly after ``after``, ascending, up to ``end_time`` inclusive.

        Running past year 9999 ends the sequence instead of raising; spending more than
        ``budget`` calls on the whole sequence raises ``SearchTooLong``.
        """
        values = self.schedule.iter_after(naive_utc(after))
        meter = _Budget(budget)
        while True:
            try:
                value = meter.next(values)
            except (StopIteration, OverflowError):
                return
            if self.end_time is not None and value > self.end_time:
                return
            yield value

    def occurrences(self, after: dt.datetime) -> Iterator[dt.datetime]:
        """As ``search``, but a search over budget ends the sequence (logged): the
        scheduler then treats the trigger as exhausted instead of spinning on it."""
        try:
            yield from self.search(after)
        except SearchTooLong:
            LOG.warning("trigger pattern %r: no further occurrence after %s found within "
                        "the search budget; treating it as exhausted", self.pattern, after)

    def next_occurrence(self, after: dt.datetime) -> dt.datetime | None:
        return next(self.occurrences(after), None)

    def to_properties(self) -> dict[str, str]:
        """The stored form: every value a string, as the original API showed them.

        ``window`` is only kept when the user gave it, so a trigger created
        without one follows later changes of ``default_window_time``.
        """
        props = {"format": self.format, "pattern": self.pattern,
                 "start_time": self.start_time.strftime(STORED_TIME_FORMAT)}
        if self.end_time is not None:
            props["end_time"] = self.end_time.strftime(STORED_TIME_FORMAT)
        if self.window_given:
            props["window"] = str(self.window)
        return props


def parse_time(name: str, value: Any) -> dt.datetime:
    """``YYYY-MM-DD HH:MM:SS`` (the original's format) or ISO ``YYYY-MM-DDTHH:MM:SS``, UTC."""
    if isinstance(value, dt.datetime):
        return naive_utc(value).replace(microsecond=0)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1]
        for fmt in ACCEPTED_TIME_FORMATS:
            try:
                parsed = dt.datetime.strptime(text, fmt)
            except ValueError:
                continue
            if not EARLIEST <= parsed <= LATEST:
                raise _invalid(name, value, f"it must lie between {EARLIEST:%Y-%m-%d} and "
                                            f"{LATEST:%Y-%m-%d}.")
            return parsed
    raise _invalid(name, value, "use the format YYYY-MM-DD HH:MM:SS (UTC).")


def default_window() -> int:
    low, high = CONF.min_window_time, CONF.max_window_time
    return min(max(CONF.default_window_time, low), high)


def _parse_window(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _invalid("window", value, "it must be an integer number of seconds.")
    if isinstance(value, str):
        if not _INT_TEXT.match(value):
            raise _invalid("window", value, "it must be an integer number of seconds.")
        return int(value)
    return value


def _parse_format(properties: Mapping[str, Any]) -> str:
    value = properties.get("format")
    if value is None or value == "":
        return CONF.time_format
    if value not in FORMATS:
        raise _invalid("format", value, f"it must be one of {', '.join(FORMATS)}.")
    return value


def load(properties: Mapping[str, Any] | TimeTrigger, *,
         clock: Clock = utcnow) -> TimeTrigger:
    """Parse properties without the policy checks (window range, min_interval).

    The scheduler uses this for stored triggers so that tightening the
    configuration later does not make existing triggers unreadable.
    """
    if isinstance(properties, TimeTrigger):
        return properties
    unknown = sorted(set(properties) - set(PROPERTY_NAMES))
    if unknown:
        raise exception.InvalidInput(
            reason=f"The trigger property {unknown[0]} is not supported; allowed: "
                   f"{', '.join(PROPERTY_NAMES)}.")
    fmt = _parse_format(properties)
    pattern = properties.get("pattern")
    if not isinstance(pattern, str) or not pattern.strip():
        raise exception.InvalidInput(reason="The trigger pattern is missing.")
    raw_start = properties.get("start_time")
    start = naive_utc(clock()).replace(microsecond=0) if raw_start in (None, "") \
        else parse_time("start_time", raw_start)
    raw_end = properties.get("end_time")
    end = None if raw_end in (None, "") else parse_time("end_time", raw_end)
    raw_window = properties.get("window")
    window_given = raw_window not in (None, "")
    window = _parse_window(raw_window) if window_given else default_window()
    parser = CalendarSchedule if fmt == "calendar" else CrontabSchedule
    schedule = parser.parse(pattern, start)
    return TimeTrigger(format=fmt, pattern=pattern, start_time=start, end_time=end,
                       window=window, window_given=window_given, schedule=schedule)


def validate(properties: Mapping[str, Any] | TimeTrigger, *,
             clock: Clock = utcnow) -> TimeTrigger:
    """Parse and apply every rule a new or updated trigger must satisfy."""
    trigger = load(properties, clock=clock)
    low, high = CONF.min_window_time, CONF.max_window_time
    if not low <= trigger.window <= high:
        raise _invalid("window", trigger.window,
                       f"window must be between {low} and {high} seconds.")
    if trigger.end_time is not None and trigger.end_time <= trigger.start_time:
        raise _invalid("end_time", trigger.end_time.strftime(STORED_TIME_FORMAT),
                       "it must be later than start_time "
                       f"({trigger.start_time.strftime(STORED_TIME_FORMAT)}).")
    first = trigger.search(trigger.start_time - dt.timedelta(seconds=1))
    sample: list[dt.datetime] = []
    try:
        sample.extend(itertools.islice(first, INTERVAL_SAMPLES))
    except SearchTooLong:
        if not sample:
            raise _invalid("pattern", trigger.pattern,
                           "no occurrence was found within the search limit; the rule "
                           "matches too rarely for its FREQ (use a coarser FREQ, e.g. "
                           "YEARLY with BYMONTH and BYMONTHDAY).") from None
        # enough to know it fires; the min_interval check uses what was found
    if not sample:
        where = "between start_time and end_time" if trigger.end_time else "after start_time"
        raise _invalid("pattern", trigger.pattern, f"it never fires {where}.")
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(sample)]
    if gaps and min(gaps) < CONF.min_interval:
        raise _invalid("pattern", trigger.pattern,
                       f"two adjacent occurrences are {int(min(gaps))} seconds apart, less "
                       f"than min_interval ({CONF.min_interval} seconds).")
    return trigger


def normalize(properties: Mapping[str, Any], *, clock: Clock = utcnow) -> dict[str, str]:
    """Validated properties in their stored form (``start_time`` defaulted to now)."""
    return validate(properties, clock=clock).to_properties()


def next_occurrence(properties: Mapping[str, Any] | TimeTrigger, after: dt.datetime, *,
                    clock: Clock = utcnow) -> dt.datetime | None:
    """The first occurrence strictly after ``after``; None once the trigger is exhausted."""
    return load(properties, clock=clock).next_occurrence(after)


def occurrences_between(properties: Mapping[str, Any] | TimeTrigger, start: dt.datetime,
                        end: dt.datetime, *, limit: int | None = None,
                        clock: Clock = utcnow) -> list[dt.datetime]:
    """Occurrences in the half-open interval ``(start, end]``, at most ``limit`` of them.

    Half-open so that polling with consecutive ``(previous_now, now]``
    intervals sees every occurrence exactly once.
    """
    trigger = load(properties, clock=clock)
    end = naive_utc(end)
    found = itertools.takewhile(lambda t: t <= end, trigger.occurrences(start))
    return list(itertools.islice(found, limit))
