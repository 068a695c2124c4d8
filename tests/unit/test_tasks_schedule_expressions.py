"""Schedules of scheduled webhook tasks (kumo.tasks.schedule_expressions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from kumo.tasks.schedule_expressions import Schedule, ScheduleError, parse_schedule

# A Wednesday, mid-morning, well inside standard time everywhere tested here.
NOW = datetime(2026, 1, 14, 10, 7, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def aws() -> None:
    """Overrides conftest's moto setup: nothing here touches AWS, so no tables are built."""


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def runs(
    expression: str, now: datetime = NOW, count: int = 3, timezone: str = "UTC"
) -> list[datetime]:
    """The first `count` runs after `now`, each handed out in turn."""
    schedule = parse_schedule(expression, timezone, now=now)
    result = [schedule.first_slot(now)]
    while len(result) < count:
        result.append(schedule.slot_after(result[-1], result[-1]))
    return result


# --- parse_schedule ---------------------------------------------------------------------------


def test_parse_schedule_strips_expression_and_defaults_to_utc():
    # Given an expression with whitespace around it and no time zone
    schedule = parse_schedule("  */5 * * * *\n")

    # Then the stored expression is stripped and the zone is UTC
    assert schedule.expression == "*/5 * * * *"
    assert schedule.timezone == "UTC"


def test_parse_schedule_accepts_several_spaces_between_fields():
    assert runs("0   9 *  *\t*", count=1) == [at(2026, 1, 15, 9, 0)]


def test_schedule_compares_by_expression_and_timezone():
    assert parse_schedule("* * * * *", "Europe/Berlin") == Schedule("* * * * *", "Europe/Berlin")


def test_schedule_constructor_validates_too():
    with pytest.raises(ScheduleError, match="minute field"):
        Schedule("99 * * * *")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "schedule is empty"),
        ("   ", "schedule is empty"),
        ("* * * *", "expected 5 fields .* got 4"),
        ("0 0 12 * * ?", "got 6; six-field EventBridge expressions are written as cron"),
        ("@daily", "'@daily' are not supported"),
        ("at(2030-01-01T00:00:00)", r"at\(...\) schedules are not supported"),
        ("cron(0 12 * * ?", "parentheses"),
        ("* " * 200 + "*", "longer than 256 characters"),
    ],
)
def test_parse_schedule_rejects_malformed_expressions(expression, message):
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(expression)


def test_parse_schedule_error_is_a_value_error():
    assert issubclass(ScheduleError, ValueError)


# --- classic cron: syntax elements ------------------------------------------------------------


def test_cron_star_runs_every_minute():
    assert runs("* * * * *") == [
        at(2026, 1, 14, 10, 8),
        at(2026, 1, 14, 10, 9),
        at(2026, 1, 14, 10, 10),
    ]


def test_cron_number_fixes_the_minute_and_hour():
    assert runs("30 8 * * *", count=2) == [at(2026, 1, 15, 8, 30), at(2026, 1, 16, 8, 30)]


def test_cron_range_limits_the_hours():
    assert runs("0 9-11 * * *", count=4) == [
        at(2026, 1, 14, 11, 0),
        at(2026, 1, 15, 9, 0),
        at(2026, 1, 15, 10, 0),
        at(2026, 1, 15, 11, 0),
    ]


def test_cron_step_from_star_counts_from_zero():
    assert runs("*/20 * * * *") == [
        at(2026, 1, 14, 10, 20),
        at(2026, 1, 14, 10, 40),
        at(2026, 1, 14, 11, 0),
    ]


def test_cron_step_over_a_range_stays_in_the_range():
    assert runs("10-30/10 * * * *", count=4) == [
        at(2026, 1, 14, 10, 10),
        at(2026, 1, 14, 10, 20),
        at(2026, 1, 14, 10, 30),
        at(2026, 1, 14, 11, 10),
    ]


def test_cron_step_from_a_start_value_runs_to_the_end_of_the_field():
    assert runs("50/5 * * * *", count=3) == [
        at(2026, 1, 14, 10, 50),
        at(2026, 1, 14, 10, 55),
        at(2026, 1, 14, 11, 50),
    ]


def test_cron_list_combines_values_ranges_and_steps():
    assert runs("5,40-41,*/30 10 * * *", count=5) == [
        at(2026, 1, 14, 10, 30),
        at(2026, 1, 14, 10, 40),
        at(2026, 1, 14, 10, 41),
        at(2026, 1, 15, 10, 0),
        at(2026, 1, 15, 10, 5),
    ]


def test_cron_month_names_are_case_insensitive():
    assert runs("0 0 1 mar-Apr *", count=2) == [at(2026, 3, 1, 0, 0), at(2026, 4, 1, 0, 0)]


def test_cron_day_names_select_weekdays():
    # Given a weekday-only schedule and a Friday evening
    friday = at(2026, 1, 16, 18, 0)

    # Then the next runs skip the weekend
    assert runs("0 9 * * MON-FRI", now=friday, count=2) == [
        at(2026, 1, 19, 9, 0),
        at(2026, 1, 20, 9, 0),
    ]


@pytest.mark.parametrize("sunday", ["0", "7", "SUN", "sun"])
def test_cron_sunday_is_zero_seven_or_its_name(sunday):
    assert runs(f"0 12 * * {sunday}", count=1) == [at(2026, 1, 18, 12, 0)]


def test_cron_backwards_range_wraps_around():
    # Given FRI-MON, which crosses the end of the week
    # Then it means Friday, Saturday, Sunday and Monday
    assert runs("0 12 * * FRI-MON", count=5) == [
        at(2026, 1, 16, 12, 0),
        at(2026, 1, 17, 12, 0),
        at(2026, 1, 18, 12, 0),
        at(2026, 1, 19, 12, 0),
        at(2026, 1, 23, 12, 0),
    ]


def test_cron_backwards_hour_range_wraps_past_midnight():
    assert runs("0 23-1 * * *", count=3) == [
        at(2026, 1, 14, 23, 0),
        at(2026, 1, 15, 0, 0),
        at(2026, 1, 15, 1, 0),
    ]


def test_cron_day_of_month_and_weekday_match_either_when_both_restricted():
    # Given "the 20th, and every Monday" (Vixie's OR rule)
    # Then the Monday the 19th and the Tuesday the 20th both run
    assert runs("0 0 20 * MON", count=3) == [
        at(2026, 1, 19, 0, 0),
        at(2026, 1, 20, 0, 0),
        at(2026, 1, 26, 0, 0),
    ]


def test_cron_day_of_month_alone_when_weekday_is_star():
    assert runs("0 0 20 * *", count=2) == [at(2026, 1, 20, 0, 0), at(2026, 2, 20, 0, 0)]


def test_cron_weekday_alone_when_day_of_month_is_star():
    assert runs("0 0 * * MON", count=2) == [at(2026, 1, 19, 0, 0), at(2026, 1, 26, 0, 0)]


def test_cron_31st_skips_shorter_months():
    assert runs("0 0 31 * *", count=3) == [
        at(2026, 1, 31, 0, 0),
        at(2026, 3, 31, 0, 0),
        at(2026, 5, 31, 0, 0),
    ]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "minute field: 61 is out of range 0-59"),
        ("0 24 * * *", "hour field: 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month field: 0 is out of range 1-31"),
        ("0 0 32 * *", "day-of-month field: 32 is out of range 1-31"),
        ("0 0 * 13 *", "month field: 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week field: 8 is out of range 0-7"),
        ("0-60 * * * *", "minute field: 60 is out of range 0-59"),
    ],
)
def test_cron_out_of_range_value_names_field_and_value(expression, message):
    with pytest.raises(ScheduleError) as error:
        parse_schedule(expression)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("x * * * *", "minute field: 'x' is not a number"),
        ("-5 * * * *", "minute field: '-5' is not a valid value or range"),
        ("1-2-3 * * * *", "minute field: '1-2-3' is not a valid value or range"),
        ("1,,2 * * * *", "minute field: empty item in '1,,2'"),
        ("*/0 * * * *", "minute field: step '0' in '\\*/0' must be a whole number of at least 1"),
        ("*/x * * * *", "minute field: step 'x'"),
        ("*/61 * * * *", "minute field: step 61 in '\\*/61' is larger than the whole 0-59 range"),
        ("0 0 * FOO *", r"month field: 'FOO' is not a number or a name \(JAN-DEC\)"),
        ("0 0 * * MONDAY", r"day-of-week field: 'MONDAY' is not a number or a name \(SUN-SAT\)"),
        ("0 0 ? * *", "day-of-month field: '\\?' is only used in EventBridge"),
        ("0 0 L * *", "day-of-month field: 'L' is not supported here"),
        ("0 0 15W * *", "day-of-month field: '15W' is not supported here"),
        ("0 0 * * MON#2", "day-of-week field: 'MON#2' is not supported here"),
        ("0 0 * * 5L", "day-of-week field: '5L' is not supported here"),
        ("0 0 * * ²", "day-of-week field: '²' is not a number"),
    ],
)
def test_cron_invalid_values_are_explained(expression, message):
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(expression)


# --- EventBridge cron -------------------------------------------------------------------------


def test_eventbridge_cron_runs_weekdays_with_question_mark_day_of_month():
    assert runs("cron(0 9 ? * MON-FRI *)", now=at(2026, 1, 16, 18, 0), count=2) == [
        at(2026, 1, 19, 9, 0),
        at(2026, 1, 20, 9, 0),
    ]


def test_eventbridge_cron_runs_days_of_month_with_question_mark_weekday():
    assert runs("cron(15 6 1,15 * ? *)", count=2) == [at(2026, 1, 15, 6, 15), at(2026, 2, 1, 6, 15)]


def test_eventbridge_day_numbers_start_at_sunday():
    # Given 1 (Sunday) and 2 (Monday) in EventBridge numbering
    # Then the runs fall on Sunday the 18th and Monday the 19th
    assert runs("cron(0 12 ? * 1,2 *)", count=2) == [at(2026, 1, 18, 12, 0), at(2026, 1, 19, 12, 0)]


def test_eventbridge_start_and_step_minutes():
    assert runs("cron(0/15 * * * ? *)", count=2) == [
        at(2026, 1, 14, 10, 15),
        at(2026, 1, 14, 10, 30),
    ]


def test_eventbridge_names_are_case_insensitive():
    assert runs("cron(0 12 ? jan sun *)", count=1) == [at(2026, 1, 18, 12, 0)]


@pytest.mark.parametrize("fields", ["0 9 * * MON *", "0 9 1 * MON *", "0 9 * * * *"])
def test_eventbridge_needs_a_question_mark_in_one_day_field(fields):
    with pytest.raises(ScheduleError, match="exactly one of the day-of-month and day-of-week"):
        parse_schedule(f"cron({fields})")


def test_eventbridge_rejects_question_marks_in_both_day_fields():
    with pytest.raises(ScheduleError, match="must be '\\?', got '\\?' and '\\?'"):
        parse_schedule("cron(0 9 ? * ? *)")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cron(? 9 1 * ? *)", "minute field: '\\?' is only allowed in the day-of-month or"),
        ("cron(0 9 1,? * ? *)", "day-of-month field: '\\?' must stand alone"),
    ],
)
def test_eventbridge_question_mark_only_stands_alone_in_day_fields(expression, message):
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(expression)


def test_eventbridge_day_of_week_is_one_to_seven():
    with pytest.raises(ScheduleError, match="day-of-week field: 0 is out of range 1-7"):
        parse_schedule("cron(0 9 ? * 0 *)")


def test_eventbridge_needs_six_fields():
    with pytest.raises(ScheduleError, match=r"needs 6 fields .* got 5; for every year use"):
        parse_schedule("cron(0 9 ? * MON)")


def test_eventbridge_l_in_day_of_month_is_the_last_day():
    # Given a leap year's February
    assert runs("cron(0 18 L * ? *)", now=at(2028, 2, 1), count=3) == [
        at(2028, 2, 29, 18, 0),
        at(2028, 3, 31, 18, 0),
        at(2028, 4, 30, 18, 0),
    ]


def test_eventbridge_nth_weekday_is_the_kth_of_the_month():
    # Given "the second Tuesday"
    assert runs("cron(0 9 ? * TUE#2 *)", count=3) == [
        at(2026, 2, 10, 9, 0),
        at(2026, 3, 10, 9, 0),
        at(2026, 4, 14, 9, 0),
    ]


def test_eventbridge_fifth_weekday_skips_months_without_one():
    # Given "the fifth Friday": January 2026 has one, February to April do not
    assert runs("cron(0 9 ? * 6#5 *)", count=2) == [at(2026, 1, 30, 9, 0), at(2026, 5, 29, 9, 0)]


def test_eventbridge_l_alone_in_day_of_week_is_saturday():
    assert runs("cron(0 9 ? * L *)", count=2) == [at(2026, 1, 17, 9, 0), at(2026, 1, 24, 9, 0)]


def test_eventbridge_day_then_l_is_the_last_such_weekday_of_the_month():
    # Given "the last Friday" (6L)
    assert runs("cron(0 9 ? * 6L *)", count=2) == [at(2026, 1, 30, 9, 0), at(2026, 2, 27, 9, 0)]


def test_eventbridge_w_moves_to_the_nearest_weekday():
    # Given the 14th: Saturday in February 2026 (so Friday 13th), Saturday in March (so Friday
    # 13th), Tuesday in April
    assert runs("cron(0 9 14W * ? *)", now=at(2026, 2, 1), count=3) == [
        at(2026, 2, 13, 9, 0),
        at(2026, 3, 13, 9, 0),
        at(2026, 4, 14, 9, 0),
    ]


def test_eventbridge_w_does_not_leave_the_month():
    # Given 1W in August 2026, whose 1st is a Saturday: Friday would be in July
    assert runs("cron(0 9 1W 8 ? 2026)", count=1) == [at(2026, 8, 3, 9, 0)]


def test_eventbridge_lw_is_the_last_weekday_of_the_month():
    # Given January 2026 ends on a Saturday and May 2026 on a Sunday
    assert runs("cron(0 9 LW 1,5 ? *)", count=2) == [at(2026, 1, 30, 9, 0), at(2026, 5, 29, 9, 0)]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cron(0 9 L-3 * ? *)", "day-of-month field: 'L-3' is not supported; use L"),
        ("cron(0 9 L/2 * ? *)", "day-of-month field: 'L/2' is not supported"),
        ("cron(0 9 ? * MON#6 *)", "the number after '#' must be 1-5"),
        ("cron(0 9 ? * MON#x *)", "the number after '#' must be 1-5"),
        ("cron(0 9 ? * XYZ#1 *)", "day-of-week field: 'XYZ' is not a number or a name"),
        ("cron(0 9 ? * 8L *)", "day-of-week field: 8 is out of range 1-7"),
        ("cron(0 9 32W * ? *)", "day-of-month field: 32 is out of range 1-31"),
    ],
)
def test_eventbridge_unsupported_or_bad_special_forms_are_explained(expression, message):
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(expression)


def test_eventbridge_year_field_limits_the_years():
    assert runs("cron(0 0 1 1 ? 2028,2030-2031)", count=3) == [
        at(2028, 1, 1, 0, 0),
        at(2030, 1, 1, 0, 0),
        at(2031, 1, 1, 0, 0),
    ]


def test_eventbridge_year_step_skips_years():
    assert runs("cron(0 0 1 1 ? 2027/2)", count=2) == [at(2027, 1, 1, 0, 0), at(2029, 1, 1, 0, 0)]


@pytest.mark.parametrize(
    ("year", "message"),
    [
        ("1969", "year field: 1969 is out of range 1970-2199"),
        ("2200", "year field: 2200 is out of range 1970-2199"),
        ("2030-2027", "year field: range '2030-2027' runs backwards"),
    ],
)
def test_eventbridge_bad_year_is_explained(year, message):
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(f"cron(0 0 1 1 ? {year})")


def test_eventbridge_slot_after_the_last_year_raises():
    # Given a schedule whose last run is on 2027-01-01
    schedule = parse_schedule("cron(0 0 1 1 ? 2027)", now=NOW)

    # When asking for the run after it
    # Then there is none
    with pytest.raises(ScheduleError, match="never runs after 2027-01-01 00:00 UTC"):
        schedule.slot_after(at(2027, 1, 1), at(2027, 1, 1))


# --- rate -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(1 minutes)", 60),
        ("rate(5 minutes)", 300),
        ("rate(5 minute)", 300),
        ("rate(2 hours)", 7200),
        ("rate(1 hour)", 3600),
        ("rate(1 day)", 86_400),
        ("rate(3 days)", 259_200),
        ("RATE( 10  Minutes )", 600),
    ],
)
def test_rate_accepts_singular_or_plural_units(expression, seconds):
    assert parse_schedule(expression).min_gap_seconds() == seconds


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("rate(0 minutes)", "rate value '0' must be a whole number of at least 1"),
        ("rate(-5 minutes)", "rate value '-5' must be a whole number of at least 1"),
        ("rate(1.5 hours)", "rate value '1.5' must be a whole number of at least 1"),
        ("rate(5 weeks)", "rate unit 'weeks' is not supported; use minute\\(s\\), hour"),
        ("rate(30 seconds)", "rate unit 'seconds' is not supported"),
        ("rate(5)", "must be 'rate\\(<number> <unit>\\)'"),
        ("rate()", "must be 'rate\\(<number> <unit>\\)'"),
        ("rate(100000 days)", "longer than the maximum of 3650 days"),
    ],
)
def test_rate_invalid_value_or_unit_is_explained(expression, message):
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(expression)


def test_rate_first_slot_rounds_up_to_a_whole_minute():
    # Given 10:07:30 and a 5-minute rate: 10:12:30 is rounded up
    assert parse_schedule("rate(5 minutes)").first_slot(NOW) == at(2026, 1, 14, 10, 13)


def test_rate_first_slot_on_a_whole_minute_is_exactly_one_interval_later():
    assert parse_schedule("rate(1 hour)").first_slot(at(2026, 1, 14, 10, 0)) == at(
        2026, 1, 14, 11, 0
    )


def test_rate_slot_after_on_time_is_one_interval_later():
    schedule = parse_schedule("rate(7 minutes)")
    assert schedule.slot_after(at(2026, 1, 14, 10, 0), at(2026, 1, 14, 10, 0, 5)) == at(
        2026, 1, 14, 10, 7
    )


def test_rate_slot_after_a_delay_skips_missed_runs_and_keeps_phase():
    # Given a 7-minute rate handed out at 10:00 and a scheduler that resumes at 10:30
    schedule = parse_schedule("rate(7 minutes)")

    # When asking for the next run
    nxt = schedule.slot_after(at(2026, 1, 14, 10, 0), at(2026, 1, 14, 10, 30))

    # Then it is the next one on the 10:00 + 7k grid: 10:35
    assert nxt == at(2026, 1, 14, 10, 35)


def test_rate_slot_after_is_strictly_after_now_on_a_grid_point():
    schedule = parse_schedule("rate(5 minutes)")
    assert schedule.slot_after(at(2026, 1, 14, 10, 0), at(2026, 1, 14, 10, 5)) == at(
        2026, 1, 14, 10, 10
    )


# --- time zones and daylight saving -----------------------------------------------------------


def test_time_zone_winter_run_is_one_hour_before_utc_in_berlin():
    assert runs("0 9 * * *", now=at(2026, 1, 14), count=1, timezone="Europe/Berlin") == [
        at(2026, 1, 14, 8, 0)
    ]


def test_time_zone_summer_run_is_two_hours_before_utc_in_berlin():
    assert runs("0 9 * * *", now=at(2026, 7, 14), count=1, timezone="Europe/Berlin") == [
        at(2026, 7, 14, 7, 0)
    ]


def test_time_zone_applies_to_day_fields_too():
    # Given 23:30 UTC on Friday 16 January, which is already Saturday in Tokyo
    friday_night = at(2026, 1, 16, 23, 30)

    # Then a Saturday-morning Tokyo job runs at 09:00 JST = 00:00 UTC
    assert runs("0 9 * * SAT", now=friday_night, count=1, timezone="Asia/Tokyo") == [
        at(2026, 1, 17, 0, 0)
    ]


def test_dst_gap_wall_time_is_skipped():
    # Given 02:30 New York time, which does not exist on 2026-03-08 (02:00 jumps to 03:00)
    before = at(2026, 3, 8, 5, 0)  # 00:00 EST

    # Then that day is skipped and the next run is 02:30 EDT on 9 March
    assert runs("30 2 * * *", now=before, count=1, timezone="America/New_York") == [
        at(2026, 3, 9, 6, 30)
    ]


def test_dst_gap_every_minute_jumps_over_the_missing_hour():
    # Given 01:59 EST on 2026-03-08
    # Then the next minute is 03:00 EDT
    assert runs("* * * * *", now=at(2026, 3, 8, 6, 59), count=1, timezone="America/New_York") == [
        at(2026, 3, 8, 7, 0)
    ]


def test_dst_overlap_wall_time_runs_once_at_its_first_occurrence():
    # Given 01:30 New York time, which happens twice on 2026-11-01 (EDT, then EST)
    before = at(2026, 11, 1, 4, 0)  # 00:00 EDT

    # Then it runs at 01:30 EDT = 05:30 UTC, not again at 01:30 EST, and next on 2 November
    assert runs("30 1 * * *", now=before, count=2, timezone="America/New_York") == [
        at(2026, 11, 1, 5, 30),
        at(2026, 11, 2, 6, 30),
    ]


def test_dst_overlap_second_pass_of_the_hour_does_not_run_again():
    # Given 01:30 EST, the second pass through 01:xx on 2026-11-01
    second_pass = at(2026, 11, 1, 6, 30)

    # Then an every-minute job waits for 02:00 EST: each 01:xx wall time already ran
    assert runs("* * * * *", now=second_pass, count=1, timezone="America/New_York") == [
        at(2026, 11, 1, 7, 0)
    ]


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        ("Mars/Olympus_Mons", "unknown time zone 'Mars/Olympus_Mons'"),
        ("America", "unknown time zone 'America'"),
        ("", "time zone is empty"),
        ("../../etc/passwd", "is not a valid IANA name"),
        ("/etc/localtime", "is not a valid IANA name"),
        ("Europe/" + "x" * 100, "is not a valid IANA name"),
        ("UTC+2", "unknown time zone 'UTC\\+2'"),
    ],
)
def test_time_zone_invalid_name_is_rejected(zone, message):
    with pytest.raises(ScheduleError, match=message):
        parse_schedule("* * * * *", zone)


def test_time_zone_surrounding_whitespace_is_ignored():
    assert parse_schedule("* * * * *", " Europe/Berlin ").timezone == "Europe/Berlin"


# --- first_slot and slot_after ----------------------------------------------------------------


def test_first_slot_is_strictly_after_now_on_a_matching_minute():
    assert parse_schedule("0 10 * * *").first_slot(at(2026, 1, 14, 10, 0)) == at(2026, 1, 15, 10, 0)


def test_first_slot_drops_seconds_and_microseconds():
    slot = parse_schedule("* * * * *").first_slot(NOW.replace(microsecond=123))
    assert slot == at(2026, 1, 14, 10, 8)
    assert (slot.second, slot.microsecond) == (0, 0)


def test_first_slot_returns_utc_for_aware_non_utc_input():
    # Given 11:07 at UTC+1
    now = datetime(2026, 1, 14, 11, 7, tzinfo=timezone(timedelta(hours=1)))

    # Then the answer is the next minute, in UTC
    slot = parse_schedule("* * * * *").first_slot(now)
    assert slot == at(2026, 1, 14, 10, 8)
    assert slot.tzinfo is UTC


def test_first_slot_rejects_naive_datetimes():
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_schedule("* * * * *").first_slot(datetime(2026, 1, 14))


def test_slot_after_skips_runs_missed_while_the_scheduler_was_down():
    # Given an every-minute job last handed out at 10:00 and a scheduler back at 11:00:20
    schedule = parse_schedule("* * * * *")

    # Then it runs once, at the next minute, not sixty times
    assert schedule.slot_after(at(2026, 1, 14, 10, 0), at(2026, 1, 14, 11, 0, 20)) == at(
        2026, 1, 14, 11, 1
    )


def test_slot_after_is_strictly_after_the_slot_when_now_is_earlier():
    schedule = parse_schedule("*/15 * * * *")
    assert schedule.slot_after(at(2026, 1, 14, 10, 15), at(2026, 1, 14, 10, 14)) == at(
        2026, 1, 14, 10, 30
    )


def test_slot_after_crosses_months_of_idle_time():
    schedule = parse_schedule("0 0 1 * *")
    assert schedule.slot_after(at(2026, 1, 1), at(2026, 6, 15, 12, 0)) == at(2026, 7, 1)


def test_slot_after_finds_a_leap_day_across_the_skipped_2100_leap_year():
    # Given a 29 February job after 2096: 2100 is not a leap year, the next one is 2104
    schedule = parse_schedule("0 0 29 2 *", now=NOW)
    assert schedule.slot_after(at(2096, 2, 29), at(2096, 2, 29)) == at(2104, 2, 29)


def test_slot_after_handles_a_thousand_calls_for_an_every_five_minutes_job():
    # Given an every-five-minutes job handed out 1,000 times in a row
    schedule = parse_schedule("*/5 * * * *")
    slot = at(2026, 1, 14, 10, 0)

    # When each run is handed out right on time
    for _ in range(1000):
        slot = schedule.slot_after(slot, slot)

    # Then the runs advance 5 minutes at a time
    assert slot == at(2026, 1, 14, 10, 0) + timedelta(minutes=5 * 1000)


# --- min_gap_seconds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "gap"),
    [
        ("* * * * *", 60),
        ("0 * * * *", 3600),
        ("rate(5 minutes)", 300),
        ("0 9,10 * * *", 3600),
        ("*/45 * * * *", 900),
        ("0 0 * * *", 86_400),
        ("cron(0/30 * * * ? *)", 1800),
    ],
)
def test_min_gap_seconds_is_the_shortest_gap_between_runs(expression, gap):
    assert parse_schedule(expression).min_gap_seconds() == gap


def test_min_gap_seconds_works_for_years_before_the_reference():
    assert parse_schedule("cron(0 12 * * ? 2026-2028)", now=NOW).min_gap_seconds() == 86_400


def test_min_gap_seconds_of_a_single_run_is_larger_than_any_real_gap():
    schedule = parse_schedule("cron(0 12 1 1 ? 2031)", now=NOW)
    assert schedule.min_gap_seconds() > 100 * 365 * 86_400


# --- schedules that never run -----------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "cron(0 0 30 2 ? *)", "cron(0 0 31 APR ? 2030-2040)"],
)
def test_parse_schedule_rejects_expressions_that_never_run(expression):
    with pytest.raises(ScheduleError, match="never runs: no date matches"):
        parse_schedule(expression, now=NOW)


def test_parse_schedule_rejects_a_year_field_in_the_past():
    with pytest.raises(ScheduleError, match="year field: its last year, 2025, is in the past"):
        parse_schedule("cron(0 0 1 1 ? 2020-2025)", now=NOW)


def test_parse_schedule_rejects_a_year_whose_last_run_has_passed():
    # Given 1 January 2026 00:00, already past on 14 January 2026
    with pytest.raises(ScheduleError, match="never runs again: its last run, in 2026, is already"):
        parse_schedule("cron(0 0 1 1 ? 2026)", now=NOW)


def test_parse_schedule_accepts_a_rare_but_real_date():
    assert parse_schedule("0 0 29 2 *", now=NOW).first_slot(NOW) == at(2028, 2, 29)
