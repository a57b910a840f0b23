"""Audit periods: calendar quarters in UTC, or any whole-day range; half-open ``[start, end)``.

The evaluation instant of a period is its ``end``: the first instant of the next quarter (or
the day after ``--until``'s last day). The period before it, for trends, is the previous
quarter, or for a range the range of the same length that ends where it starts.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from policy_engine.errors import UsageError
from policy_engine.models.types import format_timestamp, parse_timestamp

_QUARTER = re.compile(r"^(\d{4})-?[Qq]([1-4])$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime  # exclusive; the audit's as-of instant
    quarter: tuple[int, int] | None = None  # (year, quarter) for a calendar quarter

    @property
    def kind(self) -> str:
        return "quarter" if self.quarter else "range"

    @property
    def label(self) -> str:
        if self.quarter is not None:
            return f"{self.quarter[0]}Q{self.quarter[1]}"
        last = self.end - DAY
        return f"{self.start:%Y-%m-%d}..{last:%Y-%m-%d}"

    @property
    def days(self) -> int:
        return (self.end - self.start) // DAY

    @property
    def start_text(self) -> str:
        return format_timestamp(self.start)

    @property
    def end_text(self) -> str:
        return format_timestamp(self.end)

    def previous(self) -> Period:
        if self.quarter is not None:
            year, number = self.quarter
            return quarter(year - 1, 4) if number == 1 else quarter(year, number - 1)
        return Period(self.start - (self.end - self.start), self.start)

    def month_starts(self) -> list[datetime]:
        """First instants of the calendar months that begin strictly inside the period."""
        found = []
        moment = _next_month(self.start)
        while moment < self.end:
            found.append(moment)
            moment = _next_month(moment)
        return found

    def months(self) -> list[tuple[str, datetime, datetime]]:
        """The period cut at month boundaries: (``YYYY-MM``, start, end) in order."""
        edges = [self.start, *self.month_starts(), self.end]
        return [(f"{a:%Y-%m}", a, b) for a, b in itertools.pairwise(edges)]


def _next_month(moment: datetime) -> datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def quarter(year: int, number: int) -> Period:
    start = datetime(year, 3 * (number - 1) + 1, 1, tzinfo=UTC)
    end = (
        datetime(year + 1, 1, 1, tzinfo=UTC) if number == 4 else datetime(year, 3 * number + 1, 1, tzinfo=UTC)
    )
    return Period(start, end, (year, number))


def parse_quarter(text: str) -> Period:
    """``2026Q3`` (also ``2026-Q3``, ``2026q3``)."""
    match = _QUARTER.match(text.strip())
    if not match:
        raise UsageError(f"--quarter {text}: expected YEARQn, e.g. 2026Q3")
    return quarter(int(match.group(1)), int(match.group(2)))


def quarter_of(moment: datetime) -> Period:
    moment = moment.astimezone(UTC)
    return quarter(moment.year, (moment.month - 1) // 3 + 1)


def last_complete_quarter(as_of: datetime) -> Period:
    """The newest quarter that has ended at ``as_of``."""
    return quarter_of(as_of).previous()


def _day(text: str, option: str) -> datetime:
    """A UTC midnight, written as a date or an RFC 3339 timestamp."""
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value).replace(tzinfo=UTC) if _DATE.match(value) else None
        if moment is None:
            moment = parse_timestamp(value)
    except ValueError as exc:
        raise UsageError(f"{option} {text}: {exc}") from None
    if moment != moment.replace(hour=0, minute=0, second=0, microsecond=0):
        raise UsageError(f"{option} {text}: must fall on a UTC midnight (residency is aggregated by UTC day)")
    return moment


def parse_range(since: str, until: str | None, as_of: datetime) -> Period:
    """``--since`` (inclusive) and ``--until`` (exclusive); ``--until`` defaults to the UTC
    midnight at or before ``as_of``."""
    start = _day(since, "--since")
    if until is None:
        moment = as_of.astimezone(UTC)
        end = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        end = _day(until, "--until")
    if end <= start:
        raise UsageError(
            f"--since {since} / --until {until or format_timestamp(end)}: the period is empty "
            "(--until is exclusive and must be later than --since)"
        )
    return Period(start, end)


def choose_period(quarter_text: str | None, since: str | None, until: str | None, as_of: datetime) -> Period:
    """The period the options name; by default the last complete quarter at ``as_of``.

    A period that has not ended at ``as_of`` is refused: the audit reviews complete periods.
    """
    if quarter_text and (since or until):
        raise UsageError("--quarter cannot be combined with --since / --until")
    if until and not since:
        raise UsageError("--until needs --since")
    if quarter_text:
        period = parse_quarter(quarter_text)
    elif since:
        period = parse_range(since, until, as_of)
    else:
        period = last_complete_quarter(as_of)
    if period.end > as_of:
        raise UsageError(
            f"{period.label} has not ended yet (it ends {period.end_text}; as of "
            f"{format_timestamp(as_of)}); the audit reviews complete periods"
        )
    return period
