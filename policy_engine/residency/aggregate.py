"""Join residency records to the portfolio and compute what policies see as ``measured``.

Only records whose window lies inside ``[as_of - window_days, as_of)`` count. Each record is
spread over the UTC calendar days it covers (pro rata for additive quantities, by overlapping
hours for ratios). When several sources describe the same deployment and day, each field is
taken from the best source for it (``PRECEDENCE``); a source that is not one of the three
adapters (hand-made or merged files) wins over all of them.

Definitions (every key is omitted when no record provides the underlying field):

- ``gpu_hours``, ``warm_replica_hours``, ``cost`` (``cost.total``), ``requests``,
  ``tokens_in``, ``tokens_out``: sums over the window.
- ``cost_monthly_run_rate``: ``cost × hours_per_month / (window_days × 24)``.
- ``gpu_util_avg``: mean utilisation weighted by GPU-hours (by hours where a record has none).
- ``traffic_share``: per day, the record's share, or else the deployment's requests over all
  requests of non-shadow deployments on the same endpoint and region; a scope's daily share is
  the mean over the endpoint/region groups it serves of its deployments' summed shares (shadow
  deployments count only at their own deployment and version); over the window, the mean of
  the daily shares.
- ``days_util_below_floor`` / ``days_low_traffic``: consecutive days, ending at the latest
  day with data, whose daily value is below the floor; a day without data ends the run. The
  floor is the model's ``exit_criteria_defaults.idle_util_floor`` /
  the version's (else the model's) ``min_traffic_share`` when declared, else the parameter.
- ``coverage``: covered hours of the scope's declared deployments over their window hours.
- portfolio only: ``unattributed_cost`` (unattributed records plus records of unknown
  deployments) and ``total_cost`` (``cost`` + ``unattributed_cost``).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, cast

from policy_engine.errors import InputError, InputErrors
from policy_engine.loading import Portfolio
from policy_engine.residency.join import DeploymentIndex, DeploymentInfo
from policy_engine.residency.native import FREEZE_ABOVE, paused_gc
from policy_engine.residency.records import ResidencyRecord, Window

DAY = 86400
KEYS = (
    "gpu_hours",
    "warm_replica_hours",
    "cost",
    "cost_monthly_run_rate",
    "gpu_util_avg",
    "requests",
    "tokens_in",
    "tokens_out",
    "traffic_share",
    "days_util_below_floor",
    "days_low_traffic",
    "coverage",
)
PORTFOLIO_KEYS = (*KEYS, "total_cost", "unattributed_cost")
ADAPTERS = ("opencost", "prometheus", "focus")
# accumulator field -> the sources that may provide it, best first
PRECEDENCE: dict[str, tuple[str, ...]] = {
    "cost": ("focus", "opencost", "prometheus"),
    "gpu_hours": ("opencost", "prometheus", "focus"),
    "warm": ("opencost", "prometheus", "focus"),
    "util": ("prometheus", "opencost"),
    "requests": ("prometheus", "opencost", "focus"),
    "tokens_in": ("prometheus", "focus", "opencost"),
    "tokens_out": ("prometheus", "focus", "opencost"),
    "share": ("prometheus", "opencost", "focus"),
}
# fields that travel together (a weighted mean is its sum and its weight)
_PAIRS = {"util": ("util", "util_w"), "share": ("share", "share_h")}
_SUMS = ("gpu_hours", "warm", "cost", "requests", "tokens_in", "tokens_out")
_DIGITS = 6

Day = dict[str, float]


@dataclass(frozen=True)
class Measured:
    """``measured`` per target id, plus what could not be joined."""

    by_target: dict[str, dict[str, Any]]
    unknown: list[ResidencyRecord] = field(default_factory=list)
    unattributed: list[ResidencyRecord] = field(default_factory=list)
    window_start: datetime | None = None
    window_end: datetime | None = None
    days: dict[str, dict[int, Day]] = field(default_factory=dict, repr=False)

    @cached_property
    def series(self) -> dict[str, list[dict[str, Any]]]:
        """Per deployment target id, its per-day values (``date`` 'YYYY-MM-DD', oldest first)."""
        dates: dict[int, str] = {}
        return {target: _series(days, dates) for target, days in self.days.items()}

    def unknown_deployments(self) -> dict[str, dict[str, Any]]:
        """Per unknown deployment id: record count, cost and where it was first read."""
        out: dict[str, dict[str, Any]] = {}
        for record in self.unknown:
            key = record.deployment_id or ""
            entry = out.setdefault(key, {"records": 0, "cost": 0.0, "first_seen": None})
            entry["records"] += 1
            if record.cost is not None:
                entry["cost"] = round(entry["cost"] + record.cost.total, _DIGITS)
            if entry["first_seen"] is None and record.origin is not None:
                entry["first_seen"] = f"{record.origin[0]}:{record.origin[1]}"
        return dict(sorted(out.items()))


def _rank(kind: str, source_field: str) -> int:
    order = PRECEDENCE[source_field]
    if kind in order:
        return order.index(kind)
    return len(order) if kind in ADAPTERS else -1


WINDOW_DAYS = 30  # measured facts cover [as_of - 30 days, as_of)


def in_window(as_of: datetime, window_days: int = WINDOW_DAYS) -> Window:
    """Whether a record falls in the window ``measure`` aggregates as of ``as_of``; the others
    need not be kept once they are read and checked."""
    return Window(as_of - timedelta(days=window_days), as_of)


def measure(
    portfolio: Portfolio,
    records: list[ResidencyRecord],
    as_of: datetime,
    window_days: int = WINDOW_DAYS,
    util_floor: float = 0.15,
    low_traffic_share: float = 0.02,
) -> Measured:
    """Aggregate ``records`` over ``[as_of - window_days, as_of)`` at every scope."""
    with paused_gc(lambda: len(records) > FREEZE_ABOVE):
        return _measure(portfolio, records, as_of, window_days, util_floor, low_traffic_share)


def _measure(
    portfolio: Portfolio,
    records: list[ResidencyRecord],
    as_of: datetime,
    window_days: int,
    util_floor: float,
    low_traffic_share: float,
) -> Measured:
    index = DeploymentIndex(portfolio)
    window_end = as_of
    window_start = as_of - timedelta(days=window_days)
    window_hours = window_days * 24.0

    by_id = index.by_id
    collected = _collect(records, index, window_start, window_end)
    merged, dep_aggs, totals = _deployments(collected.raw, by_id)

    by_target: dict[str, dict[str, Any]] = {}
    daily: dict[str, dict[int, Day]] = {}
    run_rate = index.hours_per_month / window_hours
    model_share_floor = {
        entry.model.id: entry.model.exit_criteria_defaults.min_traffic_share
        for entry in portfolio.models
        if entry.model.exit_criteria_defaults is not None
    }

    def floor_of(info: DeploymentInfo) -> float:
        return info.util_floor if info.util_floor is not None else util_floor

    def share_floor_of(info: DeploymentInfo) -> float:
        return info.min_traffic_share if info.min_traffic_share is not None else low_traffic_share

    def finish(agg: _Agg, floor: float, share_floor: float) -> dict[str, Any]:
        return agg.values(window_hours, run_rate, floor, share_floor, totals)

    # deployments, then versions, then models, in portfolio order; each scope combines the one below
    versions: dict[str, list[DeploymentInfo]] = {}
    for info in by_id.values():
        versions.setdefault(info.version_target, []).append(info)
    version_aggs: dict[str, tuple[DeploymentInfo, _Agg]] = {}
    for target, members in versions.items():
        parts = []
        for info in members:
            merged_days = merged.get(info.id)
            if merged_days:
                agg = dep_aggs[info.id]
                parts.append(agg)
                by_target[info.target] = finish(agg, floor_of(info), share_floor_of(info))
                daily[info.target] = merged_days
        if parts:
            combined = _Agg.combine(parts, len(members), shares=True)
            version_aggs[target] = (members[0], combined)
    models: dict[str, list[tuple[DeploymentInfo, _Agg]]] = {}
    for target in versions:
        if target in version_aggs:
            lead, agg = version_aggs[target]
            by_target[target] = finish(agg, floor_of(lead), share_floor_of(lead))
            models.setdefault(lead.model, []).append((lead, agg))
    declared: dict[str, int] = {}
    for info in by_id.values():
        declared[info.model] = declared.get(info.model, 0) + 1
    model_aggs = []
    for model_id, parts_of in models.items():
        own = [agg for _, agg in parts_of]
        shares = [agg for lead, agg in parts_of if lead.stage != "shadow"]
        agg = _Agg.combine(own, declared[model_id], shares=False, share_parts=shares)
        model_aggs.append(agg)
        share_floor = model_share_floor.get(model_id)
        by_target[model_id] = finish(
            agg, floor_of(parts_of[0][0]), share_floor if share_floor is not None else low_traffic_share
        )
    if collected.any_record:
        agg = _Agg.combine(model_aggs, len(by_id), shares=True)
        values = finish(agg, util_floor, low_traffic_share)
        if collected.any_cost:
            attributed = values.get("cost", 0.0)
            values["unattributed_cost"] = _round(collected.unattributed_cost)
            values["total_cost"] = _round(attributed + collected.unattributed_cost)
        by_target["portfolio"] = {k: values[k] for k in PORTFOLIO_KEYS if k in values}
    return Measured(
        by_target=by_target,
        unknown=collected.unknown,
        unattributed=collected.unattributed,
        window_start=window_start,
        window_end=window_end,
        days=daily,
    )


# A deployment's day with a single record so far (the common case), all of it in the day: the
# record, its hours, and the day's values from that record alone.
OneRecord = tuple[ResidencyRecord, float, Day]
Sources = dict[str, Day]  # otherwise, by source kind: the sums of its records (see ``_add``)
RawDays = dict[int, OneRecord | Sources]


@dataclass
class _Collected:
    """The records in the window, added up per deployment, day and source; and what cannot be joined."""

    raw: dict[str, RawDays] = field(default_factory=dict)  # by deployment
    unknown: list[ResidencyRecord] = field(default_factory=list)
    unattributed: list[ResidencyRecord] = field(default_factory=list)
    unattributed_cost: float = 0.0  # of unattributed records and unknown deployments, in record order
    any_record: bool = False
    any_cost: bool = False


def _collect(
    records: list[ResidencyRecord], index: DeploymentIndex, window_start: datetime, window_end: datetime
) -> _Collected:
    """Add up the records in ``[window_start, window_end)`` by deployment, UTC day and source."""
    out = _Collected()
    raw = out.raw
    by_id = index.by_id
    currency = index.currency
    resolved: dict[tuple[str, tuple[tuple[str, str], ...]], str | None] = {}
    spans: dict[tuple[datetime, datetime], _Span] = {}  # records share windows (and their datetimes)
    currency_errors: list[InputError] = []
    # locals, not attributes of ``out``: this loop runs once per record, by the hundred thousand
    unattributed_cost = 0.0
    any_cost = False
    any_record = False
    for record in records:
        fields = record.__dict__  # the model's field values, read without attribute lookups
        start = fields["window_start"]
        end = fields["window_end"]
        if start < window_start or end > window_end:
            continue
        any_record = True
        cost = fields["cost"]
        if cost is not None:
            any_cost = True
            if cost.currency != currency:
                currency_errors.append(_currency_error(record, cost.currency, currency))
                continue
        dep_id = fields["deployment_id"]
        if dep_id is None:
            out.unattributed.append(record)
            if cost is not None:
                unattributed_cost += cost.total
            continue
        if dep_id not in by_id:
            labels = fields["labels"]
            key = (dep_id, tuple(sorted(labels.items())))
            if key not in resolved:
                resolved[key] = index.match_labels(labels) if labels else None
            target = resolved[key]
            if target is None:
                out.unknown.append(record)
                if cost is not None:
                    unattributed_cost += cost.total
                continue
            dep_id = target
        days = raw.get(dep_id)
        if days is None:
            days = raw[dep_id] = {}
        span = spans.get((start, end))
        if span is None:
            span = spans[start, end] = _span(start, end)
        s, e, first, last, hours = span
        if first != last:
            _spread(days, record, s, e, first, last)
        elif first in days:
            _add(_accumulator(days, first, record.source_kind), fields, 1.0, hours)
        else:  # the common case: the day's first record, and all of it in the day
            days[first] = (record, hours, _one_record_day(fields, hours))
    if currency_errors:
        raise InputErrors(currency_errors)
    out.unattributed_cost = unattributed_cost
    out.any_cost = any_cost
    out.any_record = any_record
    return out


def _deployments(
    raw: dict[str, RawDays], by_id: dict[str, DeploymentInfo]
) -> tuple[dict[str, dict[int, Day]], dict[str, _Agg], Totals]:
    """Per deployment, its values per day and its aggregate; and the requests' totals."""
    merged: dict[str, dict[int, Day]] = {}
    aggs: dict[str, _Agg] = {}
    requests = _Requests()
    groups: dict[tuple[str, str], Group] = {}
    # a deployment at a time: its days are still in the CPU cache for each step
    for dep_id, days in raw.items():
        info = by_id[dep_id]
        group = groups.setdefault((info.endpoint, info.region), len(groups))
        merged[dep_id] = values = _merge_days(days)
        requests.count(info, group, values)
        aggs[dep_id] = _Agg.of(group, values)
    for dep_id in requests.fill_shares():
        aggs[dep_id].group_shares = _group_shares(merged[dep_id])
    return merged, aggs, requests.totals


# A window in timestamps: start, end, its first and last UTC day, and its hours (when one day).
_Span = tuple[float, float, int, int, float]


def _span(start: datetime, end: datetime) -> _Span:
    s = start.timestamp()
    e = end.timestamp()
    return s, e, int(s // DAY), int((e - 1) // DAY), (e - s) / 3600.0


def _currency_error(record: ResidencyRecord, currency: str, expected: str) -> InputError:
    file, line = record.origin or ("<records>", 0)
    return InputError(
        file,
        line,
        1,
        f"cost in {currency}, but the portfolio's currency is {expected}",
        "$.cost.currency",
        f"{expected}; convert before import",
    )


def _spread(days: RawDays, record: ResidencyRecord, s: float, e: float, first: int, last: int) -> None:
    """Add a record that covers several UTC days (``first`` to ``last``, timestamps ``s`` to ``e``)
    to each of them: pro rata to its overlap."""
    kind = record.source_kind
    fields = record.__dict__
    duration = e - s
    for day in range(first, last + 1):
        overlap = min(e, (day + 1) * DAY) - max(s, day * DAY)
        _add(_accumulator(days, day, kind), fields, overlap / duration, overlap / 3600.0)


def _accumulator(days: RawDays, day: int, kind: str) -> Day:
    """The day's accumulator of source ``kind``, made when missing."""
    entry = days.get(day)
    if entry is None:
        sources = days[day] = {}
    elif isinstance(entry, tuple):  # a second record: the first one goes to its accumulator
        only, hours, _ = entry
        sources = days[day] = {only.source_kind: _add({}, only.__dict__, 1.0, hours)}
    else:
        sources = entry
    acc = sources.get(kind)
    if acc is None:
        acc = sources[kind] = {}
    return acc


def _merge_days(days: RawDays) -> dict[int, Day]:
    """The values of each day of one deployment."""
    return {day: entry[2] if isinstance(entry, tuple) else _merge(entry) for day, entry in days.items()}


# Accumulator key and record field of the quantities a record adds pro rata to its days.
_PRO_RATA = (
    ("gpu_hours", "gpu_hours"),
    ("warm", "warm_replica_hours"),
    ("cost", "cost"),  # its total
    ("requests", "requests"),
    ("tokens_in", "tokens_in"),
    ("tokens_out", "tokens_out"),
)


def _add(acc: Day, fields: dict[str, Any], fraction: float, hours: float) -> Day:
    """Add a record's part (``fields``: its field values) to ``acc``; returns ``acc``."""
    get = acc.get
    for key, name in _PRO_RATA:
        value = fields[name]
        if value is not None:
            acc[key] = get(key, 0.0) + (value.total if key == "cost" else value) * fraction
    gpu_hours = fields["gpu_hours"]
    value = fields["gpu_util_avg"]
    if value is not None:
        weight = gpu_hours * fraction if gpu_hours else hours
        acc["util"] = get("util", 0.0) + value * weight
        acc["util_w"] = get("util_w", 0.0) + weight
    value = fields["traffic_share"]
    if value is not None:
        acc["share"] = get("share", 0.0) + value * hours
        acc["share_h"] = get("share_h", 0.0) + hours
    value = fields["coverage"]
    if value is not None:
        acc["cov_h"] = get("cov_h", 0.0) + value * hours
    return acc


def _one_record_day(fields: dict[str, Any], hours: float) -> Day:
    """``_as_values(_add({}, fields, 1.0, hours))`` in fewer steps: the values of a day that has a
    single record (``fields``: its field values), all of it in the day.

    The same operations on the same numbers, in the same order, less those that change nothing:
    ``value * 1.0`` is ``value``. Adding to 0.0 is kept: it makes an integer a float and -0.0 0.0."""
    values: Day = {}
    for key, name in _PRO_RATA:
        value = fields[name]
        if value is not None:
            values[key] = 0.0 + (value.total if key == "cost" else value)
    gpu_hours = fields["gpu_hours"]
    value = fields["gpu_util_avg"]
    if value is not None:
        weight = gpu_hours if gpu_hours else hours
        weighted = 0.0 + value * weight
        weight = 0.0 + weight
        values["util"] = weighted / weight if weight > 0 else 0.0
        values["util_w"] = weight
    value = fields["coverage"]
    if value is not None:
        values["cov_h"] = min(0.0 + value * hours, 24.0)
    value = fields["traffic_share"]
    if value is not None:  # last, where ``_as_values`` puts it
        values["share"] = (0.0 + value * hours) / (0.0 + hours)
    return values


def _merge(kinds: dict[str, Day]) -> Day:
    """One day of one deployment: each field from its best source; ratios become values."""
    if len(kinds) == 1:
        (chosen,) = kinds.values()  # (the accumulators are made for this merge: no need to copy)
        return _as_values(chosen)
    chosen = {}
    ordered = sorted(kinds)
    for name in (*_SUMS, "util", "share"):
        keys = _PAIRS.get(name, (name,))
        best = None
        for kind in ordered:
            if keys[0] in kinds[kind] and (best is None or _rank(kind, name) < _rank(best, name)):
                best = kind
        if best is not None:
            for key in keys:
                chosen[key] = kinds[best][key]
    coverages = [acc["cov_h"] for acc in kinds.values() if "cov_h" in acc]
    if coverages:
        chosen["cov_h"] = max(coverages)
    return _as_values(chosen)


def _as_values(chosen: Day) -> Day:
    """Turn a day's accumulated ratios into values, in place; returns ``chosen``."""
    if "util" in chosen:
        chosen["util"] = chosen["util"] / chosen["util_w"] if chosen["util_w"] > 0 else 0.0
    if "share" in chosen:
        chosen["share"] = chosen.pop("share") / chosen.pop("share_h")
    if "cov_h" in chosen:
        chosen["cov_h"] = min(chosen["cov_h"], 24.0)
    return chosen


Group = int  # an endpoint and region, numbered (cheaper keys than the pair)
Totals = dict[int, dict[Group, float]]  # day -> endpoint/region -> requests


class _Requests:
    """Requests per day and endpoint/region over non-shadow deployments (``totals``), counted a
    deployment at a time; then the daily shares they give where no source gave one."""

    def __init__(self) -> None:
        self.totals: Totals = {}
        self._missing: list[tuple[str, Day, int, Group]] = []  # days without a share

    def count(self, info: DeploymentInfo, group: Group, days: dict[int, Day]) -> None:
        """Count the days of deployment ``info`` (``group``: its endpoint/region)."""
        totals = self.totals
        counted = info.stage != "shadow"
        for day, values in days.items():
            requests = values.get("requests")
            if requests is None:
                continue
            if counted:
                of_day = totals.get(day)
                if of_day is None:
                    of_day = totals[day] = {}
                of_day[group] = of_day.get(group, 0.0) + requests
            if "share" not in values:
                self._missing.append((info.id, values, day, group))

    def fill_shares(self) -> dict[str, None]:
        """Derive each missing daily share from requests against the endpoint/region's total
        (once all are counted); returns the deployments that got any."""
        filled: dict[str, None] = {}
        for dep_id, values, day, group in self._missing:
            total = self.totals.get(day, {}).get(group, 0.0)
            if total > 0:
                values["share"] = min(values["requests"] / total, 1.0)
                filled[dep_id] = None
        return filled


def _streak(daily: dict[int, float], floor: float) -> int:
    if not daily:
        return 0
    day = max(daily)
    count = 0
    while day in daily and daily[day] < floor:
        count += 1
        day -= 1
    return count


def _util_streak(util_days: dict[int, tuple[float, float]], floor: float) -> int:
    """``_streak`` of the daily utilisations, each worked out only if the run gets to its day."""
    if not util_days:
        return 0
    day = max(util_days)
    count = 0
    while day in util_days:
        weighted, weight = util_days[day]
        if not (weighted / weight if weight > 0 else 0.0) < floor:
            break
        count += 1
        day -= 1
    return count


def _round(value: float) -> float:
    return round(value, _DIGITS) + 0.0


UtilDays = dict[int, tuple[float, float]]  # day -> (utilisation × weight, weight)
GroupShares = dict[int, float]  # day -> share, of one endpoint/region
ShareDays = dict[int, dict[Group, float]]  # day -> endpoint/region -> summed shares


class _Agg:
    """What one scope's records add up to, before it is turned into ``measured`` values.

    Once combined, an aggregate is not changed: a scope with a single part shares its days.
    Daily shares all of one endpoint/region (``share_group``), as those of a deployment, are
    kept by day in ``group_shares``; otherwise by day and endpoint/region in ``share_days``."""

    __slots__ = (
        "covered",
        "declared",
        "group_shares",
        "has_coverage",
        "share_days",
        "share_group",
        "sums",
        "util_days",
        "util_sum",
        "util_weight",
    )

    def __init__(self, declared: int) -> None:
        self.sums: dict[str, float] = {}
        self.util_sum = 0.0
        self.util_weight = 0.0
        self.util_days: UtilDays = {}
        self.share_group: Group | None = None
        self.group_shares: GroupShares = {}
        self.share_days: ShareDays = {}
        self.covered = 0.0
        self.has_coverage = False
        self.declared = declared

    @classmethod
    def of(cls, group: Group, days: dict[int, Day]) -> _Agg:
        """A deployment's aggregate (``group``: its endpoint/region)."""
        agg = cls(1)
        agg.sums = _sums(days.values())
        agg.share_group = group
        util_days = agg.util_days
        group_shares = agg.group_shares
        util_sum = util_weight = covered = 0.0
        for day, values in days.items():
            util = values.get("util")
            if util is not None:
                weight = values["util_w"]
                weighted = util * weight
                util_sum += weighted
                util_weight += weight
                util_days[day] = (weighted, weight)
            share = values.get("share")  # (as ``_group_shares``, in the same pass)
            if share is not None:
                group_shares[day] = share
            covered_hours = values.get("cov_h")
            if covered_hours is not None:
                agg.has_coverage = True
                covered += covered_hours
        agg.util_sum = util_sum
        agg.util_weight = util_weight
        agg.covered = covered
        return agg

    @classmethod
    def combine(
        cls, parts: list[_Agg], declared: int, *, shares: bool, share_parts: list[_Agg] | None = None
    ) -> _Agg:
        """Sum of ``parts``; traffic shares from ``share_parts`` (default: all parts if ``shares``)."""
        agg = cls(declared)
        sums = agg.sums
        for part in parts:
            for name, value in part.sums.items():
                sums[name] = sums.get(name, 0.0) + value
            agg.util_sum += part.util_sum
            agg.util_weight += part.util_weight
            agg.covered += part.covered
            agg.has_coverage = agg.has_coverage or part.has_coverage
        agg.util_days = _summed_util_days([part.util_days for part in parts])
        chosen = share_parts if share_parts is not None else (parts if shares else [])
        groups = {part.share_group for part in chosen}
        if len(groups) == 1 and None not in groups:
            agg.share_group = chosen[0].share_group
            agg.group_shares = _summed_group_shares([part.group_shares for part in chosen])
        else:
            agg.share_days = _summed_share_days(chosen)
        return agg

    def values(
        self,
        window_hours: float,
        run_rate: float,
        util_floor: float,
        share_floor: float,
        totals: Totals,
    ) -> dict[str, Any]:
        """The scope's ``measured`` values, in ``KEYS`` order."""
        sums = self.sums
        out: dict[str, Any] = {}
        if "gpu_hours" in sums:
            out["gpu_hours"] = _round(sums["gpu_hours"])
        if "warm" in sums:
            out["warm_replica_hours"] = _round(sums["warm"])
        if "cost" in sums:
            out["cost"] = _round(sums["cost"])
            out["cost_monthly_run_rate"] = _round(sums["cost"] * run_rate)
        if self.util_days:
            out["gpu_util_avg"] = _round(self.util_sum / self.util_weight if self.util_weight > 0 else 0.0)
        for name in ("requests", "tokens_in", "tokens_out"):
            if name in sums:
                out[name] = _round(sums[name])
        daily_share = self.group_shares if self.share_group is not None else self._daily_shares(totals)
        if daily_share:
            out["traffic_share"] = _round(min(sum(daily_share.values()) / len(daily_share), 1.0))
        if self.util_days:
            out["days_util_below_floor"] = _util_streak(self.util_days, util_floor)
        if daily_share:
            out["days_low_traffic"] = _streak(daily_share, share_floor)
        if self.has_coverage:
            out["coverage"] = _round(min(self.covered / (window_hours * self.declared), 1.0))
        return out

    def _daily_shares(self, totals: Totals) -> dict[int, float]:
        """The scope's share per day, from those of its endpoints/regions (``share_days``)."""
        daily: dict[int, float] = {}
        for day, groups in self.share_days.items():
            if len(groups) == 1:  # one endpoint/region: its share
                (share,) = groups.values()
                daily[day] = share
            elif groups:
                daily[day] = _day_share(day, groups, totals)
        return daily


def _sums(days: Iterable[Day]) -> dict[str, float]:
    """Each field of ``_SUMS`` summed over ``days`` in order, from 0.0; absent where no day has it."""
    sums: dict[str, float] = {}
    for values in days:
        for name in _SUMS:
            value = values.get(name)
            if value is not None:
                sums[name] = sums.get(name, 0.0) + value
    return sums


def _group_shares(days: dict[int, Day]) -> GroupShares:
    """A deployment's daily shares."""
    return {day: values["share"] for day, values in days.items() if "share" in values}


def _summed_util_days(parts: list[UtilDays]) -> UtilDays:
    """Per day, the parts' weighted utilisations and weights, each summed in part order."""
    if len(parts) == 1:
        return parts[0]
    summed: UtilDays = {}
    for days in parts:
        for day, pair in days.items():
            mine = summed.get(day)
            summed[day] = pair if mine is None else (mine[0] + pair[0], mine[1] + pair[1])
    return summed


def _summed_group_shares(parts: list[GroupShares]) -> GroupShares:
    """Per day, the shares of parts of the same endpoint/region, summed in part order."""
    if len(parts) == 1:
        return parts[0]
    summed: GroupShares = {}
    for shares in parts:
        for day, share in shares.items():
            mine = summed.get(day)
            summed[day] = share if mine is None else mine + share
    return summed


def _summed_share_days(parts: list[_Agg]) -> ShareDays:
    """Per day and endpoint/region, the parts' shares summed in part order."""
    if len(parts) == 1 and parts[0].share_group is None:
        return parts[0].share_days
    summed: ShareDays = {}
    for part in parts:
        group = part.share_group
        if group is not None:
            for day, share in part.group_shares.items():
                mine = summed.get(day)
                if mine is None:
                    summed[day] = {group: share}
                else:
                    mine[group] = mine.get(group, 0.0) + share
            continue
        for day, groups in part.share_days.items():
            mine = summed.get(day)
            if mine is None:
                summed[day] = dict(groups)  # a copy: the parts that follow add to it
                continue
            for group, share in groups.items():
                mine[group] = mine.get(group, 0.0) + share
    return summed


def _day_share(day: int, groups: dict[Group, float], totals: Totals) -> float:
    """Shares of several endpoint/region groups, weighted by their requests when all are known."""
    weights = list(map(totals.get(day, {}).get, groups))
    if None not in weights:
        known = cast("list[float]", weights)
        total = sum(known)
        if total > 0:
            products: map[float] = map(operator.mul, groups.values(), known)
            return sum(products) / total
    return sum(groups.values()) / len(groups)


_SERIES_NAMES = {
    "gpu_hours": "gpu_hours",
    "warm": "warm_replica_hours",
    "cost": "cost",
    "util": "gpu_util_avg",
    "requests": "requests",
    "tokens_in": "tokens_in",
    "tokens_out": "tokens_out",
    "share": "traffic_share",
}


def _series(days: dict[int, Day], dates: dict[int, str]) -> list[dict[str, Any]]:
    """Per-day values of one deployment, oldest first (``dates`` caches day → 'YYYY-MM-DD')."""
    rows = []
    for day in sorted(days):
        values = days[day]
        date = dates.get(day)
        if date is None:
            date = dates[day] = datetime.fromtimestamp(day * DAY, UTC).strftime("%Y-%m-%d")
        row: dict[str, Any] = {"date": date}
        for key, name in _SERIES_NAMES.items():
            value = values.get(key)
            if value is not None:
                row[name] = _round(value)
        covered = values.get("cov_h")
        if covered is not None:
            row["coverage"] = _round(covered / 24.0)
        rows.append(row)
    return rows
