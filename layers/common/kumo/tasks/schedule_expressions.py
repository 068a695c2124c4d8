"""Schedules of scheduled webhook tasks: parses the expression and computes when the task runs.

Three syntaxes are accepted:

* classic five-field cron, ``minute hour day-of-month month day-of-week``
  (``*/15 9-17 * * MON-FRI``);
* EventBridge ``cron(minutes hours day-of-month month day-of-week year)``;
* EventBridge ``rate(N minutes|hours|days)``.

Cron fields are read on the wall clock of the schedule's IANA time zone. Every datetime going in or
out is timezone-aware, and every run time is a whole UTC minute because the scheduler ticks once a
minute.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import MAXYEAR, UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Schedule", "ScheduleError", "TimeZoneError", "parse_schedule"]

_MAX_EXPRESSION_LENGTH = 256
_MAX_ZONE_LENGTH = 64
_MAX_RATE_SECONDS = 3650 * 86_400
# A five-field schedule that runs at all runs within 8 years (29 February across 2100), so a
# search this long tells "rare" from "never" without walking an unbounded calendar.
_CLASSIC_SEARCH_YEARS = 10
_EVENTBRIDGE_YEARS = (1970, 2199)
# min_gap_seconds samples runs from a fixed point so the answer does not depend on today's date.
_GAP_REFERENCE = datetime(2030, 1, 1, tzinfo=UTC)
_GAP_SAMPLE_RUNS = 200
# What min_gap_seconds reports for a schedule that runs at most once: there is no gap at all, so
# any "at least N seconds between runs" rule must pass.
_NO_REPEAT_GAP_SECONDS = 400 * 366 * 86_400

_SYNTAX_HELP = (
    "expected a cron expression such as '*/15 * * * *', "
    "'cron(0 9 ? * MON-FRI *)' or 'rate(5 minutes)'"
)
_FUNCTION_FORM = re.compile(r"([A-Za-z]+)\s*\((.*)\)", re.DOTALL)
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*")
_RATE_UNITS = {
    "minute": 60,
    "minutes": 60,
    "hour": 3600,
    "hours": 3600,
    "day": 86_400,
    "days": 86_400,
}
_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_SATURDAY = 5  # datetime.weekday()


class ScheduleError(ValueError):
    """The expression or time zone is invalid; str(error) is a clear message shown to API users."""


class TimeZoneError(ScheduleError):
    """The time zone, not the expression, is what is invalid."""


@dataclass(frozen=True, slots=True)
class _Field:
    label: str
    low: int
    high: int
    names: Mapping[str, int] | None = None
    name_hint: str = ""
    # Whether a backwards range such as 22-2 wraps around (hours, weekdays) or is a mistake (years).
    cyclic: bool = True
    # Classic cron spells Sunday as 0 and as 7; ranges wrap over 0-6 so Sunday is not counted twice.
    sunday_is_seven: bool = False

    @property
    def wrap_high(self) -> int:
        return self.high - 1 if self.sunday_is_seven else self.high


_MINUTE = _Field("minute field", 0, 59)
_HOUR = _Field("hour field", 0, 23)
_DAY_OF_MONTH = _Field("day-of-month field", 1, 31)
_MONTH = _Field("month field", 1, 12, _MONTH_NAMES, "JAN-DEC")
_CLASSIC_DAY_OF_WEEK = _Field(
    "day-of-week field",
    0,
    7,
    {name: number for number, name in enumerate(_DAY_NAMES)},
    "SUN-SAT",
    sunday_is_seven=True,
)
_EVENTBRIDGE_DAY_OF_WEEK = _Field(
    "day-of-week field",
    1,
    7,
    {name: number for number, name in enumerate(_DAY_NAMES, 1)},
    "SUN-SAT",
)
_YEAR = _Field("year field", *_EVENTBRIDGE_YEARS, cyclic=False)


@dataclass(frozen=True, slots=True)
class _Rate:
    seconds: int


@dataclass(frozen=True, slots=True)
class _Cron:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    # None: any year (bounded by the search horizon); otherwise sorted.
    years: tuple[int, ...] | None
    # Unrestricted day fields: '*' (or '?' in EventBridge). Both restricted means either matches.
    any_day_of_month: bool
    any_day_of_week: bool
    days: frozenset[int] = frozenset()
    last_day: bool = False
    nearest_weekdays: frozenset[int] = frozenset()
    last_weekday_of_month: bool = False
    # Days of the week as datetime.weekday() numbers, Monday = 0.
    weekdays: frozenset[int] = frozenset()
    nth_weekdays: frozenset[tuple[int, int]] = frozenset()
    last_weekdays: frozenset[int] = frozenset()
    eventbridge: bool = False

    def matching_days(self, year: int, month: int) -> Sequence[int]:
        first_weekday, length = calendar.monthrange(year, month)
        if self.any_day_of_month and self.any_day_of_week:
            return range(1, length + 1)
        by_date = (
            set() if self.any_day_of_month else self._dates(year, month, first_weekday, length)
        )
        if self.any_day_of_week:
            return sorted(by_date)
        return [
            day
            for day in range(1, length + 1)
            if day in by_date or self._weekday_matches(day, (first_weekday + day - 1) % 7, length)
        ]

    def _dates(self, year: int, month: int, first_weekday: int, length: int) -> set[int]:
        dates = {day for day in self.days if day <= length}
        if self.last_day:
            dates.add(length)
        if self.last_weekday_of_month:
            dates.add(_nearest_weekday(length, first_weekday, length))
        for day in self.nearest_weekdays:
            # Quartz semantics: a day the month does not have has no nearest weekday either.
            if day <= length:
                dates.add(_nearest_weekday(day, first_weekday, length))
        return dates

    def _weekday_matches(self, day: int, weekday: int, length: int) -> bool:
        return (
            weekday in self.weekdays
            or (weekday, (day - 1) // 7 + 1) in self.nth_weekdays
            or (weekday in self.last_weekdays and day + 7 > length)
        )


def _nearest_weekday(day: int, first_weekday: int, length: int) -> int:
    """The Monday-to-Friday day closest to `day` without leaving the month (cron's ``W``)."""
    weekday = (first_weekday + day - 1) % 7
    if weekday == _SATURDAY:
        return day + 2 if day == 1 else day - 1
    if weekday == _SATURDAY + 1:
        return day - 2 if day == length else day + 1
    return day


@dataclass(frozen=True, slots=True)
class Schedule:
    """A validated schedule; build it with parse_schedule, which also rejects never-firing ones."""

    expression: str
    timezone: str = "UTC"
    _rule: _Rate | _Cron = field(init=False, repr=False, compare=False)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.expression, str):
            raise ScheduleError(f"schedule must be a string; {_SYNTAX_HELP}")
        if not isinstance(self.timezone, str):
            raise ScheduleError("time zone must be a string such as 'UTC' or 'Europe/Berlin'")
        # Frozen: the normalised values and the compiled rule are set once, here.
        object.__setattr__(self, "expression", self.expression.strip())
        object.__setattr__(self, "timezone", self.timezone.strip())
        object.__setattr__(self, "_zone", _load_zone(self.timezone))
        object.__setattr__(self, "_rule", _compile(self.expression))

    def first_slot(self, now: datetime) -> datetime:
        """The first run strictly after `now`.

        Raises ScheduleError if the schedule has no run after `now` (its year field has ended).
        """
        moment = _as_utc(now, "now")
        rule = self._rule
        if isinstance(rule, _Rate):
            return _ceil_minute(moment + timedelta(seconds=rule.seconds))
        return self._next_run(rule, _floor_minute(moment))

    def slot_after(self, slot: datetime, now: datetime) -> datetime:
        """The run after `slot`, strictly after both `slot` and `now`.

        Runs missed while the scheduler was behind are skipped, never replayed. A rate keeps its
        phase: the result is ``slot + k * interval`` for the smallest k >= 1 that is after `now`.
        Raises ScheduleError if the schedule has no further run.
        """
        handed_out = _floor_minute(_as_utc(slot, "slot"))
        moment = _as_utc(now, "now")
        rule = self._rule
        if isinstance(rule, _Rate):
            interval = timedelta(seconds=rule.seconds)
            if moment < handed_out + interval:
                return handed_out + interval
            return handed_out + ((moment - handed_out) // interval + 1) * interval
        return self._next_run(rule, max(handed_out, _floor_minute(moment)))

    def min_gap_seconds(self) -> int:
        """The shortest time between two consecutive runs, sampled from a fixed reference."""
        rule = self._rule
        if isinstance(rule, _Rate):
            return rule.seconds
        start = _GAP_REFERENCE
        if rule.years is not None and rule.years[-1] < start.year:
            start = _before_year(rule.years[0])
        runs: list[datetime] = []
        try:
            runs.append(self._next_run(rule, start))
            while len(runs) < _GAP_SAMPLE_RUNS:
                runs.append(self._next_run(rule, runs[-1]))
        except ScheduleError:
            pass  # The year field ended: the runs found so far are all there are.
        if len(runs) < 2:
            return _NO_REPEAT_GAP_SECONDS
        return min(int((later - earlier).total_seconds()) for earlier, later in pairwise(runs))

    def _next_run(self, rule: _Cron, after: datetime) -> datetime:
        """The first run strictly after `after`, a whole UTC minute.

        Walks the calendar a month and then a day at a time, never minute by minute, and stops at
        the search horizon: the year field's last year, or a fixed number of years for classic
        cron.
        """
        local = after.astimezone(self._zone)
        year, month, day = local.year, local.month, local.day
        after_wall: tuple[int, int] | None = (local.hour, local.minute)
        if rule.years is not None:
            last_year = rule.years[-1]
        elif rule.eventbridge:
            last_year = _EVENTBRIDGE_YEARS[1]
        else:
            last_year = year + _CLASSIC_SEARCH_YEARS
        last_year = min(last_year, MAXYEAR - 1)
        while year <= last_year:
            if rule.years is not None:
                index = bisect_left(rule.years, year)
                if index == len(rule.years):
                    break
                if rule.years[index] != year:
                    year, month, day, after_wall = rule.years[index], 1, 1, None
                    continue
            if month in rule.months:
                days = rule.matching_days(year, month)
                for candidate in days[bisect_left(days, day) :]:
                    wall = after_wall if candidate == day else None
                    run = self._first_run_on(rule, year, month, candidate, wall, after)
                    if run is not None:
                        return run
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            day, after_wall = 1, None
        raise ScheduleError(
            f"schedule {self.expression!r} never runs after {after:%Y-%m-%d %H:%M} UTC"
        )

    def _first_run_on(
        self,
        rule: _Cron,
        year: int,
        month: int,
        day: int,
        after_wall: tuple[int, int] | None,
        after: datetime,
    ) -> datetime | None:
        zone = self._zone
        hours, minutes = rule.hours, rule.minutes
        first_hour = 0 if after_wall is None else bisect_left(hours, after_wall[0])
        for hour in hours[first_hour:]:
            first_minute = 0
            if after_wall is not None and hour == after_wall[0]:
                first_minute = bisect_right(minutes, after_wall[1])
            for minute in minutes[first_minute:]:
                # fold=0 (the default) picks the first occurrence of a wall time that repeats
                # when clocks fall back, so such a time runs once.
                run = datetime(year, month, day, hour, minute, tzinfo=zone).astimezone(UTC)
                back = run.astimezone(zone)
                if (back.day, back.hour, back.minute) != (day, hour, minute):
                    continue  # Clocks sprang forward over this wall time: it never happens.
                # Only false while `after` lies in the second pass of a repeated hour.
                if run > after:
                    return run
        return None


def parse_schedule(
    expression: str, timezone: str = "UTC", *, now: datetime | None = None
) -> Schedule:
    """Validates a schedule expression and its time zone.

    Raises ScheduleError, whose message is meant for API users, for bad syntax, an unknown time
    zone, or a schedule with no run after `now` (default: the current time).
    """
    if not isinstance(expression, str):
        raise ScheduleError(f"schedule must be a string; {_SYNTAX_HELP}")
    schedule = Schedule(expression.strip(), timezone)
    rule = schedule._rule
    if isinstance(rule, _Rate):
        return schedule
    moment = datetime.now(UTC) if now is None else _as_utc(now, "now")
    if rule.years is not None and rule.years[-1] < moment.astimezone(schedule._zone).year:
        raise ScheduleError(
            f"year field: its last year, {rule.years[-1]}, is in the past, so "
            f"{schedule.expression!r} never runs"
        )
    try:
        schedule.first_slot(moment)
    except ScheduleError:
        pass
    else:
        return schedule
    if rule.years is not None and _runs_at_all(schedule, rule.years[0]):
        raise ScheduleError(
            f"schedule {schedule.expression!r} never runs again: its last run, in "
            f"{rule.years[-1]}, is already past"
        )
    fields = "day-of-month, month and day-of-week"
    if rule.eventbridge:
        fields = "day-of-month, month, day-of-week and year"
    raise ScheduleError(
        f"schedule {schedule.expression!r} never runs: no date matches its {fields} fields"
    )


def _runs_at_all(schedule: Schedule, first_year: int) -> bool:
    try:
        schedule.first_slot(_before_year(first_year))
    except ScheduleError:
        return False
    return True


def _load_zone(name: str) -> ZoneInfo:
    if not name:
        raise TimeZoneError("time zone is empty; use an IANA name such as 'UTC' or 'Europe/Berlin'")
    if len(name) > _MAX_ZONE_LENGTH or not _ZONE_NAME.fullmatch(name):
        raise TimeZoneError(
            f"time zone {name[:_MAX_ZONE_LENGTH]!r} is not a valid IANA name; "
            "use one such as 'UTC' or 'Europe/Berlin'"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a region folder such as 'America' rather than a zone inside it.
        raise TimeZoneError(
            f"unknown time zone {name!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from None


def _before_year(year: int) -> datetime:
    # Two days early so that the year's first local midnight is included in any time zone.
    return datetime(year, 1, 1, tzinfo=UTC) - timedelta(days=2)


def _as_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return moment.astimezone(UTC)


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _ceil_minute(moment: datetime) -> datetime:
    floor = _floor_minute(moment)
    return floor if floor == moment else floor + timedelta(minutes=1)


# --- parsing ----------------------------------------------------------------------------------


def _compile(text: str) -> _Rate | _Cron:
    if not text:
        raise ScheduleError(f"schedule is empty; {_SYNTAX_HELP}")
    if len(text) > _MAX_EXPRESSION_LENGTH:
        raise ScheduleError(f"schedule is longer than {_MAX_EXPRESSION_LENGTH} characters")
    if text.startswith("@"):
        raise ScheduleError(
            f"shortcuts such as {text.split()[0]!r} are not supported; write the five fields, "
            "e.g. '0 0 * * *' for daily"
        )
    function = _FUNCTION_FORM.fullmatch(text)
    if function is not None:
        kind, inner = function.group(1).lower(), function.group(2)
        if kind == "rate":
            return _compile_rate(inner)
        if kind == "cron":
            return _compile_eventbridge(inner)
        raise ScheduleError(f"{function.group(1)}(...) schedules are not supported; {_SYNTAX_HELP}")
    if "(" in text or ")" in text:
        raise ScheduleError(f"unbalanced or misplaced parentheses in {text!r}; {_SYNTAX_HELP}")
    return _compile_classic(text.split())


def _compile_rate(inner: str) -> _Rate:
    parts = inner.split()
    if len(parts) != 2:
        raise ScheduleError(
            f"rate({inner.strip()}) must be 'rate(<number> <unit>)', e.g. 'rate(5 minutes)'"
        )
    value, unit = parts
    if not _is_number(value) or int(value) == 0:
        raise ScheduleError(f"rate value {value!r} must be a whole number of at least 1")
    seconds = _RATE_UNITS.get(unit.lower())
    if seconds is None:
        raise ScheduleError(
            f"rate unit {unit!r} is not supported; use minute(s), hour(s) or day(s)"
        )
    total = int(value) * seconds
    if total > _MAX_RATE_SECONDS:
        raise ScheduleError(f"rate({value} {unit}) is longer than the maximum of 3650 days")
    return _Rate(total)


def _compile_classic(fields: list[str]) -> _Cron:
    if len(fields) != 5:
        hint = ""
        if len(fields) == 6:
            hint = (
                "; six-field EventBridge expressions are written as "
                "cron(minutes hours day-of-month month day-of-week year)"
            )
        raise ScheduleError(
            "expected 5 fields (minute hour day-of-month month day-of-week) but got "
            f"{len(fields)}{hint}"
        )
    minute, hour, day_of_month, month, day_of_week = fields
    specs = (_MINUTE, _HOUR, _DAY_OF_MONTH, _MONTH, _CLASSIC_DAY_OF_WEEK)
    for spec, text in zip(specs, fields, strict=True):
        if "?" in text:
            raise ScheduleError(
                f"{spec.label}: '?' is only used in EventBridge cron(...) expressions; use '*'"
            )
    if any(char in day_of_month.upper() for char in "LW"):
        raise ScheduleError(
            f"day-of-month field: {day_of_month!r} is not supported here; L and W work only in "
            "EventBridge cron(...) expressions"
        )
    if "#" in day_of_week or any(item.upper().endswith("L") for item in day_of_week.split(",")):
        raise ScheduleError(
            f"day-of-week field: {day_of_week!r} is not supported here; # and L work only in "
            "EventBridge cron(...) expressions"
        )
    return _Cron(
        minutes=tuple(sorted(_parse_list(minute, _MINUTE))),
        hours=tuple(sorted(_parse_list(hour, _HOUR))),
        months=frozenset(_parse_list(month, _MONTH)),
        years=None,
        any_day_of_month=day_of_month == "*",
        any_day_of_week=day_of_week == "*",
        days=frozenset(_parse_list(day_of_month, _DAY_OF_MONTH)),
        # Classic cron counts from Sunday = 0; datetime.weekday() from Monday = 0.
        weekdays=frozenset((day + 6) % 7 for day in _parse_list(day_of_week, _CLASSIC_DAY_OF_WEEK)),
    )


def _compile_eventbridge(inner: str) -> _Cron:
    fields = inner.split()
    if len(fields) != 6:
        raise ScheduleError(
            f"cron(...) needs 6 fields (minutes hours day-of-month month day-of-week year) but "
            f"got {len(fields)}; for every year use '*' as the last field"
        )
    minute, hour, day_of_month, month, day_of_week, year = fields
    for spec, text in zip(
        (_MINUTE, _HOUR, _MONTH, _YEAR), (minute, hour, month, year), strict=True
    ):
        if "?" in text:
            raise ScheduleError(
                f"{spec.label}: '?' is only allowed in the day-of-month or day-of-week field"
            )
    for label, text in (("day-of-month", day_of_month), ("day-of-week", day_of_week)):
        if "?" in text and text != "?":
            raise ScheduleError(f"{label} field: '?' must stand alone, got {text!r}")
    if (day_of_month == "?") == (day_of_week == "?"):
        raise ScheduleError(
            "exactly one of the day-of-month and day-of-week fields must be '?', got "
            f"{day_of_month!r} and {day_of_week!r}; e.g. 'cron(0 9 ? * MON-FRI *)' or "
            "'cron(0 9 1 * ? *)'"
        )
    rule = _Cron(
        minutes=tuple(sorted(_parse_list(minute, _MINUTE))),
        hours=tuple(sorted(_parse_list(hour, _HOUR))),
        months=frozenset(_parse_list(month, _MONTH)),
        years=None if year == "*" else tuple(sorted(_parse_list(year, _YEAR))),
        any_day_of_month=day_of_month in ("?", "*"),
        any_day_of_week=day_of_week in ("?", "*"),
        eventbridge=True,
    )
    if day_of_month != "?":
        return _with_days_of_month(rule, day_of_month)
    return _with_days_of_week(rule, day_of_week)


def _with_days_of_month(rule: _Cron, text: str) -> _Cron:
    days: set[int] = set()
    nearest: set[int] = set()
    last_day = last_weekday = False
    for item in text.split(","):
        upper = item.upper()
        if upper == "L":
            last_day = True
        elif upper == "LW":
            last_weekday = True
        elif upper.endswith("W") and _is_number(item[:-1]):
            nearest.add(_value(item[:-1], _DAY_OF_MONTH))
        elif "L" in upper or "W" in upper:
            raise ScheduleError(
                f"day-of-month field: {item!r} is not supported; use L (last day of the month), "
                "LW (last weekday of the month) or a day followed by W, e.g. 15W (nearest weekday)"
            )
        else:
            days.update(_parse_item(item, text, _DAY_OF_MONTH))
    return replace(
        rule,
        days=frozenset(days),
        last_day=last_day,
        nearest_weekdays=frozenset(nearest),
        last_weekday_of_month=last_weekday,
    )


def _with_days_of_week(rule: _Cron, text: str) -> _Cron:
    weekdays: set[int] = set()
    nth: set[tuple[int, int]] = set()
    last: set[int] = set()
    spec = _EVENTBRIDGE_DAY_OF_WEEK
    for item in text.split(","):
        upper = item.upper()
        if upper == "L":
            # AWS: L alone in day-of-week is the last day of the week, Saturday.
            weekdays.add(_SATURDAY)
        elif "#" in item:
            day, _, nth_text = item.partition("#")
            if not _is_number(nth_text) or not 1 <= int(nth_text) <= 5:
                raise ScheduleError(
                    f"day-of-week field: in {item!r} the number after '#' must be 1-5 "
                    "(e.g. MON#2 is the second Monday of the month)"
                )
            nth.add((_eventbridge_weekday(_value(day, spec)), int(nth_text)))
        elif len(upper) > 1 and upper.endswith("L"):
            last.add(_eventbridge_weekday(_value(item[:-1], spec)))
        else:
            weekdays.update(_eventbridge_weekday(day) for day in _parse_item(item, text, spec))
    return replace(
        rule,
        weekdays=frozenset(weekdays),
        nth_weekdays=frozenset(nth),
        last_weekdays=frozenset(last),
    )


def _eventbridge_weekday(day: int) -> int:
    """EventBridge counts from Sunday = 1; datetime.weekday() from Monday = 0."""
    return (day + 5) % 7


def _parse_list(text: str, spec: _Field) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        values.update(_parse_item(item, text, spec))
    return values


def _parse_item(item: str, text: str, spec: _Field) -> list[int]:
    if not item:
        raise ScheduleError(f"{spec.label}: empty item in {text!r}")
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not _is_number(step_text) or int(step_text) == 0:
            raise ScheduleError(
                f"{spec.label}: step {step_text!r} in {item!r} must be a whole number of at least 1"
            )
        step = int(step_text)
        span = spec.wrap_high - spec.low + 1
        if step > span:
            raise ScheduleError(
                f"{spec.label}: step {step} in {item!r} is larger than the whole "
                f"{spec.low}-{spec.high} range"
            )
    if base == "*":
        start, end = spec.low, spec.high
    elif "-" in base:
        first, _, last = base.partition("-")
        if not first or not last or "-" in last:
            raise ScheduleError(
                f"{spec.label}: {item!r} is not a valid value or range; write ranges as "
                "start-end, e.g. 1-5"
            )
        start, end = _value(first, spec), _value(last, spec)
    else:
        start = _value(base, spec)
        end = spec.high if slash else start
    if spec.sunday_is_seven:
        if end == 0 and start > 0:
            end = 7  # FRI-SUN
        elif start == 7 and end < 7:
            start = 0  # 7-2 is SUN-TUE
    if start <= end:
        sequence = list(range(start, end + 1))
    elif spec.cyclic:
        sequence = list(range(start, spec.wrap_high + 1)) + list(range(spec.low, end + 1))
    else:
        raise ScheduleError(
            f"{spec.label}: range {base!r} runs backwards; put the smaller value first"
        )
    return sequence[::step]


def _value(token: str, spec: _Field) -> int:
    if _is_number(token):
        value = int(token)
        if not spec.low <= value <= spec.high:
            raise ScheduleError(f"{spec.label}: {value} is out of range {spec.low}-{spec.high}")
        return value
    if spec.names is not None:
        number = spec.names.get(token.upper())
        if number is not None:
            return number
        raise ScheduleError(f"{spec.label}: {token!r} is not a number or a name ({spec.name_hint})")
    raise ScheduleError(f"{spec.label}: {token!r} is not a number")


def _is_number(token: str) -> bool:
    # isdigit alone also accepts characters such as '²' that int() refuses.
    return token.isascii() and token.isdigit()
