"""Audit periods: UTC calendar quarters, half-open, and whole-day ranges."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from policy_engine.audit.quarters import choose_period, last_complete_quarter, parse_quarter
from policy_engine.errors import UsageError

NOW = datetime(2025, 11, 28, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026Q3", "2026-Q3", "2026q3", " 2026Q3 "])
def test_quarter_spellings(text: str) -> None:
    period = parse_quarter(text)
    assert (period.start, period.end) == (datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
    assert period.label == "2026Q3"
    assert period.days == 92


@pytest.mark.parametrize("text", ["2026Q5", "2026Q0", "Q3 2026", "2026-07", ""])
def test_bad_quarters_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="expected YEARQn"):
        parse_quarter(text)


def test_the_as_of_instant_is_the_next_quarters_first_instant() -> None:
    q4 = parse_quarter("2025Q4")
    assert q4.end == datetime(2026, 1, 1, tzinfo=UTC)
    assert q4.end_text == "2026-01-01T00:00:00Z"


def test_previous_quarter_wraps_the_year() -> None:
    assert parse_quarter("2026Q1").previous().label == "2025Q4"
    assert parse_quarter("2026Q3").previous().label == "2026Q2"


def test_leap_year_first_quarter_has_91_days() -> None:
    assert parse_quarter("2024Q1").days == 91
    assert parse_quarter("2025Q1").days == 90


def test_month_starts_inside_a_quarter() -> None:
    period = parse_quarter("2025Q2")
    assert [f"{m:%Y-%m-%d}" for m in period.month_starts()] == ["2025-05-01", "2025-06-01"]
    assert [label for label, _, _ in period.months()] == ["2025-04", "2025-05", "2025-06"]


def test_default_period_is_the_last_complete_quarter() -> None:
    assert last_complete_quarter(NOW).label == "2025Q3"
    assert choose_period(None, None, None, NOW).label == "2025Q3"
    # at the first instant of a quarter, the quarter before it is complete
    assert last_complete_quarter(datetime(2025, 10, 1, tzinfo=UTC)).label == "2025Q3"


def test_a_quarter_that_has_not_ended_is_refused() -> None:
    with pytest.raises(UsageError, match="has not ended yet"):
        choose_period("2025Q4", None, None, NOW)


def test_ranges_are_whole_utc_days_and_half_open() -> None:
    period = choose_period(None, "2025-05-01", "2025-06-01", NOW)
    assert (period.start_text, period.end_text, period.days) == (
        "2025-05-01T00:00:00Z",
        "2025-06-01T00:00:00Z",
        31,
    )
    assert period.label == "2025-05-01..2025-05-31"
    before = period.previous()
    assert (before.start_text, before.end_text) == ("2025-03-31T00:00:00Z", "2025-05-01T00:00:00Z")
    assert choose_period(None, "2025-11-01T00:00:00Z", None, NOW).end_text == "2025-11-28T00:00:00Z"


@pytest.mark.parametrize(
    ("quarter", "since", "until", "message"),
    [
        ("2025Q2", "2025-04-01", None, "cannot be combined"),
        (None, None, "2025-06-01", "--until needs --since"),
        (None, "2025-05-01T12:00:00Z", "2025-06-01", "UTC midnight"),
        (None, "2025-06-01", "2025-06-01", "empty"),
        (None, "yesterday", None, "--since"),
    ],
)
def test_bad_ranges_are_usage_errors(
    quarter: str | None, since: str | None, until: str | None, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        choose_period(quarter, since, until, NOW)
