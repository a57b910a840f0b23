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

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

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

    # deployment -> day -> source kind -> accumulator
    raw: dict[str, dict[int, dict[str, Day]]] = {}
    unknown: list[ResidencyRecord] = []
    unattributed: list[ResidencyRecord] = []
    currency_errors: list[InputError] = []
    unattributed_cost = 0.0
    any_cost = False
    any_record = False
    by_id = index.by_id
    resolved: dict[tuple[str, tuple[tuple[str, str], ...]], str | None] = {}

    for record in records:
        if record.window_start < window_start or record.window_end > window_end:
            continue
        s = record.window_start.timestamp()
        e = record.window_end.timestamp()
        any_record = True
        cost = record.cost
        if cost is not None:
            any_cost = True
            if cost.currency != index.currency:
                file, line = record.origin or ("<records>", 0)
                currency_errors.append(
                    InputError(
                        file,
                        line,
                        1,
                        f"cost in {cost.currency}, but the portfolio's currency is {index.currency}",
                        "$.cost.currency",
                        f"{index.currency}; convert before import",
                    )
                )
                continue
        dep_id = record.deployment_id
        if dep_id is None:
            unattributed.append(record)
            if cost is not None:
                unattributed_cost += cost.total
            continue
        if dep_id not in by_id:
            key = (dep_id, tuple(sorted(record.labels.items())))
            if key not in resolved:
                resolved[key] = index.match_labels(record.labels) if record.labels else None
            target = resolved[key]
            if target is None:
                unknown.append(record)
                if cost is not None:
                    unattributed_cost += cost.total
                continue
            dep_id = target
        days = raw.setdefault(dep_id, {})
        kind = record.source_kind
        duration = e - s
        first = int(s // DAY)
        last = int((e - 1) // DAY)
        for day in range(first, last + 1):
            if first == last:
                fraction, hours = 1.0, duration / 3600.0
            else:
                overlap = min(e, (day + 1) * DAY) - max(s, day * DAY)
                fraction, hours = overlap / duration, overlap / 3600.0
            acc = days.setdefault(day, {}).setdefault(kind, {})
            _add(acc, record, fraction, hours)

    if currency_errors:
        raise InputErrors(currency_errors)

    merged = {dep: {day: _merge(kinds) for day, kinds in days.items()} for dep, days in raw.items()}
    totals = _fill_shares(merged, index)

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
                agg = _Agg.of(info, merged_days)
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
    if any_record:
        agg = _Agg.combine(model_aggs, len(by_id), shares=True)
        values = finish(agg, util_floor, low_traffic_share)
        if any_cost:
            attributed = values.get("cost", 0.0)
            values["unattributed_cost"] = _round(unattributed_cost)
            values["total_cost"] = _round(attributed + unattributed_cost)
        by_target["portfolio"] = {k: values[k] for k in PORTFOLIO_KEYS if k in values}
    return Measured(
        by_target=by_target,
        unknown=unknown,
        unattributed=unattributed,
        window_start=window_start,
        window_end=window_end,
        days=daily,
    )


def _add(acc: Day, record: ResidencyRecord, fraction: float, hours: float) -> None:
    if record.gpu_hours is not None:
        acc["gpu_hours"] = acc.get("gpu_hours", 0.0) + record.gpu_hours * fraction
    if record.warm_replica_hours is not None:
        acc["warm"] = acc.get("warm", 0.0) + record.warm_replica_hours * fraction
    if record.cost is not None:
        acc["cost"] = acc.get("cost", 0.0) + record.cost.total * fraction
    if record.requests is not None:
        acc["requests"] = acc.get("requests", 0.0) + record.requests * fraction
    if record.tokens_in is not None:
        acc["tokens_in"] = acc.get("tokens_in", 0.0) + record.tokens_in * fraction
    if record.tokens_out is not None:
        acc["tokens_out"] = acc.get("tokens_out", 0.0) + record.tokens_out * fraction
    if record.gpu_util_avg is not None:
        weight = record.gpu_hours * fraction if record.gpu_hours else hours
        acc["util"] = acc.get("util", 0.0) + record.gpu_util_avg * weight
        acc["util_w"] = acc.get("util_w", 0.0) + weight
    if record.traffic_share is not None:
        acc["share"] = acc.get("share", 0.0) + record.traffic_share * hours
        acc["share_h"] = acc.get("share_h", 0.0) + hours
    if record.coverage is not None:
        acc["cov_h"] = acc.get("cov_h", 0.0) + record.coverage * hours


def _merge(kinds: dict[str, Day]) -> Day:
    """One day of one deployment: each field from its best source; ratios become values."""
    if len(kinds) == 1:
        (only,) = kinds.values()
        chosen = dict(only)
    else:
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
    if "util" in chosen:
        chosen["util"] = chosen["util"] / chosen["util_w"] if chosen["util_w"] > 0 else 0.0
    if "share" in chosen:
        chosen["share"] = chosen.pop("share") / chosen.pop("share_h")
    if "cov_h" in chosen:
        chosen["cov_h"] = min(chosen["cov_h"], 24.0)
    return chosen


def _fill_shares(
    merged: dict[str, dict[int, Day]], index: DeploymentIndex
) -> dict[tuple[str, str, int], float]:
    """Derive a missing daily share from requests against the endpoint/region's total.

    Returns the totals: requests per (endpoint, region, day) over non-shadow deployments.
    """
    totals: dict[tuple[str, str, int], float] = {}
    for dep_id, days in merged.items():
        info = index.by_id[dep_id]
        if info.stage == "shadow":
            continue
        for day, values in days.items():
            if "requests" in values:
                key = (info.endpoint, info.region, day)
                totals[key] = totals.get(key, 0.0) + values["requests"]
    for dep_id, days in merged.items():
        info = index.by_id[dep_id]
        for day, values in days.items():
            if "share" in values or "requests" not in values:
                continue
            total = totals.get((info.endpoint, info.region, day), 0.0)
            if total > 0:
                values["share"] = min(values["requests"] / total, 1.0)
    return totals


def _streak(daily: dict[int, float], floor: float) -> int:
    if not daily:
        return 0
    day = max(daily)
    count = 0
    while day in daily and daily[day] < floor:
        count += 1
        day -= 1
    return count


def _round(value: float) -> float:
    return round(value, _DIGITS) + 0.0


class _Agg:
    """What one scope's records add up to, before it is turned into ``measured`` values."""

    __slots__ = (
        "covered",
        "declared",
        "has_coverage",
        "share_days",
        "sums",
        "util_days",
        "util_sum",
        "util_weight",
    )

    def __init__(self, declared: int) -> None:
        self.sums: dict[str, float] = {}
        self.util_sum = 0.0
        self.util_weight = 0.0
        self.util_days: dict[int, list[float]] = {}
        self.share_days: dict[int, dict[tuple[str, str], float]] = {}
        self.covered = 0.0
        self.has_coverage = False
        self.declared = declared

    @classmethod
    def of(cls, info: DeploymentInfo, days: dict[int, Day]) -> _Agg:
        agg = cls(1)
        sums = agg.sums
        group = (info.endpoint, info.region)
        for day, values in days.items():
            for name in _SUMS:
                value = values.get(name)
                if value is not None:
                    sums[name] = sums.get(name, 0.0) + value
            util = values.get("util")
            if util is not None:
                weight = values["util_w"]
                agg.util_sum += util * weight
                agg.util_weight += weight
                agg.util_days[day] = [util * weight, weight]
            share = values.get("share")
            if share is not None:
                agg.share_days[day] = {group: share}
            covered = values.get("cov_h")
            if covered is not None:
                agg.has_coverage = True
                agg.covered += covered
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
            for day, (weighted, weight) in part.util_days.items():
                pair = agg.util_days.get(day)
                if pair is None:
                    agg.util_days[day] = [weighted, weight]
                else:
                    pair[0] += weighted
                    pair[1] += weight
            agg.covered += part.covered
            agg.has_coverage = agg.has_coverage or part.has_coverage
        for part in share_parts if share_parts is not None else (parts if shares else []):
            for day, groups in part.share_days.items():
                mine = agg.share_days.get(day)
                if mine is None:
                    agg.share_days[day] = dict(groups)
                    continue
                for group, share in groups.items():
                    mine[group] = mine.get(group, 0.0) + share
        return agg

    def values(
        self,
        window_hours: float,
        run_rate: float,
        util_floor: float,
        share_floor: float,
        totals: dict[tuple[str, str, int], float],
    ) -> dict[str, Any]:
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
        daily_share = {
            day: _day_share(day, groups, totals) for day, groups in self.share_days.items() if groups
        }
        if daily_share:
            out["traffic_share"] = _round(min(sum(daily_share.values()) / len(daily_share), 1.0))
        if self.util_days:
            daily_util = {day: (s / w if w > 0 else 0.0) for day, (s, w) in self.util_days.items()}
            out["days_util_below_floor"] = _streak(daily_util, util_floor)
        if daily_share:
            out["days_low_traffic"] = _streak(daily_share, share_floor)
        if self.has_coverage:
            out["coverage"] = _round(min(self.covered / (window_hours * self.declared), 1.0))
        return {key: out[key] for key in KEYS if key in out}


def _day_share(
    day: int, groups: dict[tuple[str, str], float], totals: dict[tuple[str, str, int], float]
) -> float:
    """Shares of several endpoint/region groups, weighted by their requests when all are known."""
    if len(groups) == 1:
        return next(iter(groups.values()))
    weights = [totals.get((endpoint, region, day)) for endpoint, region in groups]
    known = [w for w in weights if w is not None]
    if len(known) == len(weights) and sum(known) > 0:
        return sum(share * w for share, w in zip(groups.values(), known, strict=True)) / sum(known)
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
