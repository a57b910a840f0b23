"""``check``'s measured facts, remembered by everything they are made of.

A run on files that have not changed since the last one would read the records of the window
again (with 90 days of daily records for 15,000 deployments: 474,000 records, ~9 s) and
aggregate them (~4 s, a third of it validating the model files the aggregation reads) only to
find the same facts. What ``check`` takes of the aggregation (``measured`` per target, and the
deployments the records name that the portfolio does not declare) is a function of:

- the records in the window: each residency file by its content, with the ranges of its lines
  whose windows the window holds (``spread.known_files``), so that a run a few hours later
  whose window keeps the same records finds the same entry;
- what the aggregation reads of the portfolio: its currency and hours per month, and each
  model file's ``join.joined_digest``, in portfolio order;
- the code that reads, checks and aggregates them.

An entry is keyed by all of these, so it is never stale. Only a run that read every file and
found no problem stores one, and that run left every file remembered valid: a run that finds
the entry has nothing left to check. Deleting the cache only costs the time again.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from policy_engine import parsecache

if TYPE_CHECKING:
    from collections.abc import Callable

    from policy_engine.loading import Portfolio
    from policy_engine.residency.aggregate import Measured
    from policy_engine.residency.records import ResidencyRecord
    from policy_engine.residency.spread import Noted

_MODE = "check-measured:1"


@dataclass(frozen=True, slots=True)
class CheckMeasured:
    """What ``check`` takes of ``aggregate.Measured``."""

    by_target: dict[str, dict[str, Any]]
    # Each deployment the records name that the portfolio lacks: its id, records and cost.
    unknown: list[dict[str, Any]]

    @classmethod
    def of(cls, measured: Measured) -> CheckMeasured:
        unknown = [
            {"id": deployment, **{k: v for k, v in info.items() if k in ("records", "cost")}}
            for deployment, info in sorted(measured.unknown_deployments().items())
        ]
        return cls(measured.by_target, unknown)


class Remembered:
    """The residency files a run's records come from (``noted``), the facts found remembered
    for them when the run was loaded (by key), and how to read the records (``read``: for a
    portfolio whose facts were not looked up then)."""

    def __init__(self, noted: Noted, read: Callable[[], list[ResidencyRecord]]) -> None:
        self.noted = noted
        self.read = read
        self.found: dict[str, CheckMeasured] = {}

    def key(self, portfolio: Portfolio) -> str | None:
        return measured_key(portfolio, self.noted)

    def find(self, portfolios: list[Portfolio]) -> bool:
        """Look up the facts of each of ``portfolios``; whether all are remembered."""
        for portfolio in portfolios:
            key = self.key(portfolio)
            found = known_measured(key)
            if key is None or found is None:
                return False
            self.found[key] = found
        return True

    def of(self, portfolio: Portfolio) -> CheckMeasured | None:
        """The facts of ``portfolio`` found when the run was loaded."""
        key = self.key(portfolio)
        return self.found.get(key) if key is not None else None


def measured_key(portfolio: Portfolio, noted: Noted | None) -> str | None:
    """The key of the facts of ``portfolio`` with the residency files ``noted`` (see
    ``spread.known_files``); None when a file is not remembered valid, or nothing is cached."""
    if not noted or not parsecache.enabled() or not all(key for _, key, _ in noted):
        return None
    hashed = hashlib.sha256(f"{_MODE}:{_code()}\0".encode())
    settings = portfolio.portfolio.portfolio
    hashed.update(repr((settings.currency, settings.hours_per_month, noted)).encode())
    for entry in portfolio.models:
        hashed.update(entry.summary.joined.encode())  # (a fixed length: the sequence is unambiguous)
    return hashed.hexdigest()


def known_measured(key: str | None) -> CheckMeasured | None:
    """The facts a run stored under ``key``, if any."""
    found = parsecache.lookup(key) if key else None
    if not isinstance(found, tuple) or len(found) != 2:
        return None
    by_target, unknown = found
    return CheckMeasured(by_target, unknown)


def remember_measured(key: str | None, measured: CheckMeasured) -> None:
    """Called only when every file was read and checked without a problem."""
    if key:
        parsecache.store(key, (measured.by_target, measured.unknown))


@cache
def _code() -> str:
    """A fingerprint of the code that reads, checks, joins and aggregates the records."""
    import pydantic

    from policy_engine.models import types
    from policy_engine.residency import aggregate, join, native, records, rows, spread

    modules = (aggregate, join, native, records, rows, spread, types, sys.modules[__name__])
    return parsecache.code_fingerprint(modules, pydantic.VERSION)
