"""The review's sections, computed from what ``collect`` gathered. Pure: no I/O, no clock.

Conventions: money is rounded to cents, ratios to four places, day counts to one; ``None``
is "no data" and never becomes zero; every list has a fixed order (by cost, then by id).
The stage of a deployment is its version's stage at the period end.
"""

from __future__ import annotations

import shlex
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from policy_engine import __version__
from policy_engine.audit.collect import Collected, Snapshot
from policy_engine.audit.model import (
    AgeStats,
    Attribution,
    AttributionGap,
    AuditReport,
    CanaryFootprint,
    Churn,
    Clock,
    DataLag,
    DataSource,
    Decision,
    EstimateRow,
    Estimates,
    Evidence,
    EvidenceFile,
    ExceptionState,
    ExecutiveSummary,
    ExitReason,
    ExpiringSignoff,
    FallbackStandby,
    FloorPoint,
    Governance,
    IdleCapacity,
    IdleRow,
    Lifecycle,
    Metric,
    MonthCost,
    PastExit,
    PeriodInfo,
    PolicyRate,
    Provenance,
    StageRow,
    TeamResidency,
    TeamRow,
    Transition,
    UnattributedReason,
    UnknownDeployment,
)
from policy_engine.audit.quarters import Period
from policy_engine.commands.check import ledger_rules
from policy_engine.engine import is_blocking
from policy_engine.models.portfolio import Deployment, ModelFile, Team, Version
from policy_engine.models.report import Finding
from policy_engine.models.types import duration_hours, format_timestamp, parse_timestamp
from policy_engine.residency.records import ResidencyRecord
from policy_engine.targets import TargetSet
from policy_engine.waivers import assess

STAGES = ("production", "canary", "shadow", "fallback", "deprecated", "proposed", "retired")
OVERHEAD_STAGES = ("canary", "shadow", "fallback", "deprecated")
ENTRY_STAGES = ("canary", "shadow", "production")
FAILING = ("fail", "error")
DEFAULT_UTIL_FLOOR = 0.15
EXPIRY_HORIZON_DAYS = 30
_SUMS = ("cost", "gpu_hours", "warm_replica_hours", "requests", "tokens_in", "tokens_out")
_DAY = timedelta(days=1)

# Exit policies (tag ``exit``): what the reason is called, which date it passed, what to do.
EXIT_REASONS = {
    "canary.max-duration": "canary over its limit",
    "shadow.max-duration": "shadow over its limit",
    "fallback.retention": "fallback review overdue or not drilled",
    "exit.deprecated-retire-by": "retire_by passed",
    "exit.low-traffic": "too little traffic",
}
EXIT_ACTIONS = {
    "exit.deprecated-retire-by": "Retire: remove its deployments and set stage: retired.",
    "canary.max-duration": "Decide the canary: promote it (four sign-offs) or roll it back (retire); "
    "an extension needs a canary_extension sign-off from platform and finance.",
    "shadow.max-duration": "Record the comparison, then promote it to canary or retire it.",
    "fallback.retention": "Re-justify it (a new review_by with platform and finance sign-offs) "
    "and drill it, reduce the standby, or retire it.",
    "exit.low-traffic": "Deprecate it with retire_by and a replacement, or justify it with an exception.",
}
_EXIT_ORDER = tuple(EXIT_ACTIONS)


# ---------------------------------------------------------------------------- rounding


def money(value: float | None) -> float | None:
    return None if value is None else round(value, 2) + 0.0


def ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 4) + 0.0


def days(value: float | None) -> float | None:
    return None if value is None else round(value, 1) + 0.0


def _div(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _change(value: float | None, previous: float | None) -> tuple[float | None, float | None]:
    if value is None or previous is None:
        return None, None
    return value - previous, _div(value - previous, previous)


# ---------------------------------------------------------------------------- measured usage


@dataclass(slots=True)
class Tally:
    """Measured usage of a deployment (or a group of them) over the period, from daily values."""

    sums: dict[str, float] = field(default_factory=dict)
    util_sum: float = 0.0
    util_weight: float = 0.0
    dates: set[str] = field(default_factory=set)
    idle_days: int = 0
    idle_gpu_hours: float = 0.0
    months: dict[str, float] = field(default_factory=dict)
    run_rate: float | None = None  # monthly: Σ over deployments of cost per covered day

    @classmethod
    def of(cls, rows: list[dict[str, Any]], floor: float, hours_per_month: float) -> Tally:
        tally = cls()
        for row in rows:
            for name in _SUMS:
                if name in row:
                    tally.sums[name] = tally.sums.get(name, 0.0) + float(row[name])
            util = row.get("gpu_util_avg")
            if util is not None:
                weight = float(row.get("gpu_hours") or 0.0) or 24.0
                tally.util_sum += float(util) * weight
                tally.util_weight += weight
                if util < floor:
                    tally.idle_days += 1
                    tally.idle_gpu_hours += float(row.get("gpu_hours") or 0.0)
            tally.dates.add(str(row["date"]))
            if "cost" in row:
                month = str(row["date"])[:7]
                tally.months[month] = tally.months.get(month, 0.0) + float(row["cost"])
        if "cost" in tally.sums and tally.dates:
            tally.run_rate = tally.sums["cost"] / (len(tally.dates) * 24.0) * hours_per_month
        return tally

    @classmethod
    def total(cls, parts: Iterable[Tally]) -> Tally:
        out = cls()
        for part in parts:
            for name, value in part.sums.items():
                out.sums[name] = out.sums.get(name, 0.0) + value
            out.util_sum += part.util_sum
            out.util_weight += part.util_weight
            out.dates |= part.dates
            out.idle_days += part.idle_days
            out.idle_gpu_hours += part.idle_gpu_hours
            for month, value in part.months.items():
                out.months[month] = out.months.get(month, 0.0) + value
            if part.run_rate is not None:
                out.run_rate = (out.run_rate or 0.0) + part.run_rate
        return out

    def get(self, name: str) -> float | None:
        return self.sums.get(name)

    @property
    def util_avg(self) -> float | None:
        return self.util_sum / self.util_weight if self.util_weight > 0 else None


# ---------------------------------------------------------------------------- the manifest


@dataclass(frozen=True, slots=True)
class Dep:
    target: str
    model: ModelFile
    version: Version
    deployment: Deployment
    floor_monthly: float | None
    usage: Tally | None

    @property
    def warm(self) -> bool:
        return self.deployment.warm


@dataclass(frozen=True, slots=True)
class Ver:
    target: str
    model: ModelFile
    version: Version
    floor_monthly: float | None
    warm_gpus: int
    digest: str
    deployments: list[Dep]

    @property
    def stage(self) -> str:
        return str(self.version.stage)

    @property
    def usage(self) -> Tally | None:
        measured = [d.usage for d in self.deployments if d.usage is not None]
        return Tally.total(measured) if measured else None

    @property
    def estimate(self) -> float | None:
        evidence = self.version.entry_evidence
        if evidence is None or evidence.residency_estimate is None:
            return None
        return evidence.residency_estimate.monthly_expected


class View:
    """One snapshot's versions and deployments with derived fields and measured usage."""

    def __init__(self, snapshot: Snapshot) -> None:
        portfolio = snapshot.loaded.portfolio
        self.snapshot = snapshot
        self.head = portfolio.portfolio
        self.hours_per_month = self.head.portfolio.hours_per_month
        self.currency = self.head.portfolio.currency
        self.teams: dict[str, Team] = {t.id: t for t in self.head.teams}
        self.as_of = snapshot.period.end
        vdata = _version_data(snapshot.targets)
        ddata = {t.id: t.data["deployment"] for t in snapshot.targets.by_scope.get("deployment", [])}
        series = snapshot.measured.series if snapshot.measured is not None else {}
        self.measured = snapshot.measured is not None and bool(
            series or snapshot.measured.unattributed or snapshot.measured.unknown
        )
        self.versions: list[Ver] = []
        for entry in portfolio.models:
            model = entry.model
            floor = self.util_floor(model)
            for version in model.versions:
                vid = f"{model.id}@{version.version}"
                data = vdata.get(vid, {})
                deps = []
                for deployment in version.deployments:
                    did = f"{vid}/{deployment.id}"
                    rows = series.get(did)
                    usage = Tally.of(rows, floor, self.hours_per_month) if rows else None
                    dfloor = ddata.get(did, {}).get("floor_monthly")
                    deps.append(Dep(did, model, version, deployment, dfloor, usage))
                self.versions.append(
                    Ver(
                        vid,
                        model,
                        version,
                        data.get("floor_monthly"),
                        int(data.get("warm_gpus", 0)),
                        str(data.get("digest", "")),
                        deps,
                    )
                )
        self.deployments = [d for v in self.versions for d in v.deployments]

    def util_floor(self, model: ModelFile) -> float:
        defaults = model.exit_criteria_defaults
        if defaults is not None and defaults.idle_util_floor is not None:
            return defaults.idle_util_floor
        return DEFAULT_UTIL_FLOOR

    @property
    def attributed(self) -> float | None:
        costs = [d.usage.get("cost") for d in self.deployments if d.usage is not None]
        known = [c for c in costs if c is not None]
        return sum(known) if known else None

    @property
    def unattributed(self) -> float:
        measured = self.snapshot.measured
        if measured is None:
            return 0.0
        records = [*measured.unattributed, *measured.unknown]
        return sum(r.cost.total for r in records if r.cost is not None)

    @property
    def total(self) -> float | None:
        attributed = self.attributed
        if attributed is None and not self.unattributed:
            return None
        return (attributed or 0.0) + self.unattributed

    @property
    def days_with_data(self) -> int:
        return len({day for d in self.deployments if d.usage is not None for day in d.usage.dates})

    @property
    def warm_gpus(self) -> int:
        return sum(v.warm_gpus for v in self.versions)

    @property
    def floor_monthly(self) -> float:
        return sum(v.floor_monthly or 0.0 for v in self.versions)

    def by_stage(self) -> dict[str, float]:
        costs: dict[str, float] = {}
        for dep in self.deployments:
            cost = dep.usage.get("cost") if dep.usage is not None else None
            if cost is not None:
                costs[str(dep.version.stage)] = costs.get(str(dep.version.stage), 0.0) + cost
        return costs

    def open_blocking(self) -> int:
        return sum(1 for f in self.snapshot.report.findings if _blocks(f))


def _version_data(targets: TargetSet) -> dict[str, dict[str, Any]]:
    return {t.id: t.data["version"] for t in targets.by_scope.get("version", [])}


def _blocks(finding: Finding) -> bool:
    """Blocking in the audit context under the default threshold, whatever --fail-on says."""
    return is_blocking(finding.status, finding.severity, finding.enforcement, "error")


def _floor_of(targets: TargetSet) -> tuple[int, float]:
    data = _version_data(targets).values()
    return sum(int(v.get("warm_gpus", 0)) for v in data), sum(
        float(v.get("floor_monthly", 0.0)) for v in data
    )


# ---------------------------------------------------------------------------- the report


def build(collected: Collected) -> AuditReport:
    current = View(collected.current)
    previous = View(collected.previous) if collected.previous is not None else None
    period = collected.period
    report = collected.current.report
    records = _in_period(collected.records, period)
    past_exit = past_exit_criteria(current)
    idle = idle_capacity(current)
    governance = governance_health(current, previous)
    return AuditReport(
        tool=report.tool,
        period=period_info(period),
        previous_period=period_info(period.previous()),
        as_of=period.end_text,
        exit_code=report.summary.exit_code,
        provenance=provenance(collected, current, records),
        missing=missing_data(collected, current, previous, records),
        summary=executive_summary(current, previous),
        teams=team_residency(current, previous),
        lifecycle=lifecycle(current, previous, period),
        past_exit=past_exit,
        estimates=estimates(current),
        idle=idle,
        attribution=attribution(current, previous),
        governance=governance,
        churn=churn(collected, current, previous),
        decisions=decisions(current, past_exit, idle, governance),
        evidence=evidence(collected),
    )


def period_info(period: Period) -> PeriodInfo:
    return PeriodInfo(
        label=period.label,
        kind="quarter" if period.quarter else "range",
        start=period.start_text,
        end=period.end_text,
        days=period.days,
    )


def _in_period(records: list[ResidencyRecord] | None, period: Period) -> list[ResidencyRecord]:
    if not records:
        return []
    return [r for r in records if r.window_start >= period.start and r.window_end <= period.end]


def _record_days(record: ResidencyRecord) -> list[str]:
    day = record.window_start.replace(hour=0, minute=0, second=0, microsecond=0)
    found = []
    while day < record.window_end:
        found.append(f"{day:%Y-%m-%d}")
        day += _DAY
    return found


# ---------------------------------------------------------------------------- 1. provenance


def provenance(collected: Collected, view: View, records: list[ResidencyRecord]) -> Provenance:
    head = view.head
    period = collected.period
    by_source: dict[str, list[ResidencyRecord]] = {}
    every_day: set[str] = set()
    lags: list[float] = []
    for record in records:
        by_source.setdefault(record.source_kind, []).append(record)
        every_day.update(_record_days(record))
        fetched = record.provenance.get("fetched_at")
        if fetched:
            try:
                lag = (parse_timestamp(fetched) - record.window_end).total_seconds() / 3600.0
            except ValueError:
                continue
            lags.append(lag)
    sources = []
    for name in sorted(by_source):
        group = by_source[name]
        group_days = sorted({d for r in group for d in _record_days(r)})
        sources.append(
            DataSource(
                source=name,
                records=len(group),
                days_with_data=len(group_days),
                coverage=ratio(len(group_days) / period.days) or 0.0,
                first_day=group_days[0] if group_days else None,
                last_day=group_days[-1] if group_days else None,
                cost_basis=sorted({r.cost.basis for r in group if r.cost is not None}),
            )
        )
    previous = collected.previous
    return Provenance(
        portfolio_id=head.portfolio.id,
        portfolio_name=head.portfolio.name,
        currency=head.portfolio.currency,
        hours_per_month=head.portfolio.hours_per_month,
        cost_basis=head.rates.basis,
        rates_source=head.rates.source,
        rates_as_of=head.rates.as_of,
        manifest=collected.current.manifest,
        previous_manifest=previous.manifest if previous is not None else None,
        previous_note=collected.previous_note,
        policies=len(collected.current.loaded.policies),
        overrides=collected.current.report.overrides,
        residency_files=len(collected.residency_files),
        days_with_data=len(every_day),
        coverage=ratio(len(every_day) / period.days) or 0.0,
        data_sources=sources,
        data_lag=DataLag(
            records=len(lags),
            median_hours=round(statistics.median(lags), 1) + 0.0,
            max_hours=round(max(lags), 1) + 0.0,
        )
        if lags
        else None,
    )


def missing_data(
    collected: Collected, current: View, previous: View | None, records: list[ResidencyRecord]
) -> list[str]:
    period = collected.period
    notes = []
    residency = f"{collected.root}/residency/" if collected.root != "." else "residency/"
    if not collected.records:
        notes.append(
            f"No measured residency: there are no residency records under {residency}. Residency per "
            "team, cost by stage, estimate versus actual, idle warm capacity and the attributed share of "
            "spend need them; import them with `policy-engine residency import`. Governance, exit "
            "criteria, lifecycle floors and churn come from the manifest and are complete."
        )
    elif not records:
        notes.append(
            f"No measured residency for {period.label}: the files under {residency} hold no records "
            f"inside [{period.start_text}, {period.end_text}). Costs, unit costs, idle capacity and "
            "attribution of spend are not available."
        )
    else:
        covered = {d for r in records for d in _record_days(r)}
        if len(covered) < period.days:
            first, last = min(covered), max(covered)
            notes.append(
                f"Measured residency covers {len(covered)} of the {period.days} days of {period.label} "
                f"({first} to {last}); costs are for those days only, and monthly figures are run rates "
                "over the days with data."
            )
    if collected.previous_note:
        notes.append(f"Trends against {period.previous().label}: {collected.previous_note}.")
    elif previous is not None and collected.records and not previous.measured:
        notes.append(
            f"No measured residency for {period.previous().label}: cost changes against it are not available."
        )
    return notes


# ---------------------------------------------------------------------------- 2. summary


def _metric(
    name: str, unit: Any, value: float | None, previous: float | None, note: str | None = None
) -> Metric:
    change, pct = _change(value, previous)
    rounder = ratio if unit == "ratio" else money
    return Metric(
        name=name,
        unit=unit,
        value=rounder(value),
        previous=rounder(previous),
        change=rounder(change),
        change_pct=ratio(pct),
        note=note,
    )


def _overhead(view: View, measured: bool) -> float | None:
    if measured:
        costs = view.by_stage()
        total = sum(costs.values())
        return _div(sum(costs.get(s, 0.0) for s in OVERHEAD_STAGES), total)
    floors: dict[str, float] = {}
    for version in view.versions:
        floors[version.stage] = floors.get(version.stage, 0.0) + (version.floor_monthly or 0.0)
    return _div(sum(floors.get(s, 0.0) for s in OVERHEAD_STAGES), sum(floors.values()))


def _coverage_note(current: View, previous: View | None) -> str | None:
    """Days with data behind each period's cost, and the monthly run rates when they differ."""
    if not current.measured:
        return "no measured residency in the period"
    now = current.days_with_data
    text = f"data on {now} of {current.snapshot.period.days} days"
    if previous is None or not previous.measured:
        return text
    before = previous.days_with_data
    text += f" ({previous.snapshot.period.label}: {before} of {previous.snapshot.period.days})"
    if now != before and now and before:
        rate_now = (current.total or 0.0) / now * current.hours_per_month / 24.0
        rate_before = (previous.total or 0.0) / before * previous.hours_per_month / 24.0
        text += (
            f"; run rate {current.currency} {rate_now:,.0f} against {previous.currency} "
            f"{rate_before:,.0f} per month"
        )
    return text


def executive_summary(current: View, previous: View | None) -> ExecutiveSummary:
    cost_note = _coverage_note(current, previous)
    floor_note = (
        f"Σ replicas.min × GPUs; warm floor {current.currency} {current.floor_monthly:,.0f} per month"
    )
    measured = current.measured and (previous is None or previous.measured)
    overhead_note = (
        "share of measured residency cost"
        if current.measured
        else "share of the declared warm floor (no measured residency)"
    )
    prev_overhead = _overhead(previous, measured) if previous is not None else None
    return ExecutiveSummary(
        residency_cost=_metric(
            "Residency cost",
            "money",
            current.total if current.measured else None,
            previous.total if previous is not None and previous.measured else None,
            cost_note,
        ),
        warm_gpu_floor=_metric(
            "Warm GPU floor",
            "gpus",
            float(current.warm_gpus),
            float(previous.warm_gpus) if previous is not None else None,
            floor_note,
        ),
        attributed_share=_metric(
            "Attributed share of spend",
            "ratio",
            _div(current.attributed or 0.0, current.total) if current.measured else None,
            _div(previous.attributed or 0.0, previous.total)
            if previous is not None and previous.measured
            else None,
            None if current.measured else "no measured residency in the period",
        ),
        lifecycle_overhead_share=_metric(
            "Lifecycle overhead (canary, shadow, fallback, deprecated)",
            "ratio",
            _overhead(current, current.measured),
            prev_overhead if previous is not None and (measured or not current.measured) else None,
            overhead_note,
        ),
        open_blocking_findings=_metric(
            "Open blocking findings",
            "count",
            float(current.open_blocking()),
            float(previous.open_blocking()) if previous is not None else None,
            "error-severity findings that block in the audit context (waived ones excluded)",
        ),
    )


# ---------------------------------------------------------------------------- 3. teams


def _variance_action(pct: float | None) -> str | None:
    if pct is None:
        return None
    size = abs(pct)
    if size <= 0.05:
        return "note"
    if size <= 0.10:
        return "investigate"
    if size <= 0.20:
        return "corrective plan"
    return "escalate"


@dataclass(slots=True)
class _Group:
    models: set[str] = field(default_factory=set)
    deployments: int = 0
    usages: list[Tally] = field(default_factory=list)
    estimate: float = 0.0
    estimated_cost: float = 0.0
    has_estimate: bool = False


def _owner_groups(view: View) -> dict[tuple[str, str | None], _Group]:
    groups: dict[tuple[str, str | None], _Group] = {}
    for version in view.versions:
        team = version.model.owner_team
        known = view.teams.get(team)
        group = groups.setdefault((team, known.cost_center if known else None), _Group())
        group.models.add(version.model.id)
        group.deployments += len(version.deployments)
        usage = version.usage
        if usage is not None:
            group.usages.append(usage)
            estimate = version.estimate
            cost = usage.get("cost")
            if estimate is not None and cost is not None and version.stage != "retired":
                covered = max(len(d.usage.dates) for d in version.deployments if d.usage is not None)
                group.estimate += estimate * covered * 24.0 / view.hours_per_month
                group.estimated_cost += cost
                group.has_estimate = True
    return groups


def _consumer_team(view: View, dep: Dep) -> tuple[str, str | None]:
    team = dep.deployment.owner_team or (dep.model.consumer_teams[0] if dep.model.consumer_teams else None)
    if team is None:
        return "(unassigned)", dep.deployment.cost_center
    known = view.teams.get(team)
    return team, dep.deployment.cost_center or (known.cost_center if known else None)


def _consumer_groups(view: View) -> dict[tuple[str, str | None], _Group]:
    groups: dict[tuple[str, str | None], _Group] = {}
    for dep in view.deployments:
        group = groups.setdefault(_consumer_team(view, dep), _Group())
        group.models.add(dep.model.id)
        group.deployments += 1
        if dep.usage is not None:
            group.usages.append(dep.usage)
    return groups


def _team_rows(
    groups: dict[tuple[str, str | None], _Group], previous: dict[tuple[str, str | None], _Group] | None
) -> list[TeamRow]:
    rows = []
    for key, group in groups.items():
        usage = Tally.total(group.usages) if group.usages else None
        cost = usage.get("cost") if usage else None
        before = None
        if previous is not None and key in previous and previous[key].usages:
            before = Tally.total(previous[key].usages).get("cost")
        change, pct = _change(cost, before)
        variance = _div(group.estimated_cost - group.estimate, group.estimate) if group.has_estimate else None
        requests = usage.get("requests") if usage else None
        tokens = usage.get("tokens_out") if usage else None
        rows.append(
            TeamRow(
                team=key[0],
                cost_center=key[1],
                models=len(group.models),
                deployments=group.deployments,
                gpu_hours=money(usage.get("gpu_hours")) if usage else None,
                warm_replica_hours=money(usage.get("warm_replica_hours")) if usage else None,
                cost=money(cost),
                previous_cost=money(before),
                change=money(change),
                change_pct=ratio(pct),
                estimate=money(group.estimate) if group.has_estimate else None,
                variance_pct=ratio(variance),
                variance_action=_variance_action(variance),
                requests=round(requests) + 0.0 if requests is not None else None,
                tokens_out=round(tokens) + 0.0 if tokens is not None else None,
                cost_per_1k_requests=_unit(cost, requests, 1000.0),
                cost_per_1m_tokens_out=_unit(cost, tokens, 1_000_000.0),
                gpu_util_avg=ratio(usage.util_avg) if usage else None,
            )
        )
    rows.sort(key=lambda r: (-(r.cost or 0.0), r.team, r.cost_center or ""))
    return rows


def _unit(cost: float | None, count: float | None, per: float) -> float | None:
    if cost is None or not count:
        return None
    return round(cost / count * per, 4) + 0.0


def team_residency(current: View, previous: View | None) -> TeamResidency:
    return TeamResidency(
        owners=_team_rows(_owner_groups(current), _owner_groups(previous) if previous else None),
        consumers=_team_rows(_consumer_groups(current), _consumer_groups(previous) if previous else None),
    )


# ---------------------------------------------------------------------------- 4. lifecycle


def _age_stats(clocks: list[Clock]) -> AgeStats:
    ages = [c.age_days for c in clocks]
    return AgeStats(
        count=len(clocks),
        median_days=days(statistics.median(ages)) if ages else None,
        max_days=days(max(ages)) if ages else None,
        past_limit=sum(1 for c in clocks if c.past_limit_days is not None),
    )


def lifecycle(current: View, previous: View | None, period: Period) -> Lifecycle:
    costs = current.by_stage()
    before = previous.by_stage() if previous is not None and previous.measured else None
    attributed = sum(costs.values())
    rows = []
    for stage in STAGES:
        versions = [v for v in current.versions if v.stage == stage]
        if not versions and stage not in costs and not (before and stage in before):
            continue
        rows.append(
            StageRow(
                stage=stage,
                versions=len(versions),
                deployments=sum(len(v.deployments) for v in versions),
                warm_gpus=sum(v.warm_gpus for v in versions),
                floor_monthly=money(sum(v.floor_monthly or 0.0 for v in versions)) or 0.0,
                cost=money(costs.get(stage, 0.0)) if current.measured else None,
                cost_share=ratio(_div(costs.get(stage, 0.0), attributed)) if current.measured else None,
                previous_cost=money(before.get(stage, 0.0)) if before is not None else None,
            )
        )
    months = []
    if current.measured:
        stages_with_cost = [s for s in STAGES if s in costs]
        for month, _, _ in period.months():
            by_stage = dict.fromkeys(stages_with_cost, 0.0)
            for dep in current.deployments:
                if dep.usage is not None and month in dep.usage.months:
                    stage = str(dep.version.stage)
                    by_stage[stage] = by_stage.get(stage, 0.0) + dep.usage.months[month]
            covered = {day for dep in current.deployments if dep.usage for day in dep.usage.dates}
            months.append(
                MonthCost(
                    month=month,
                    days_with_data=sum(1 for day in covered if day.startswith(month)),
                    by_stage={s: money(v) or 0.0 for s, v in by_stage.items()},
                )
            )
    footprint = _canary_footprint(current)
    clocks = _clocks(current)
    return Lifecycle(
        by_stage=rows,
        by_month=months,
        canary_footprint=footprint,
        canary_footprint_share=_footprint_share(current),
        clocks=clocks,
        canary_ages=_age_stats([c for c in clocks if c.stage == "canary"]),
        shadow_ages=_age_stats([c for c in clocks if c.stage == "shadow"]),
        fallbacks=_fallbacks(current),
    )


def _pair(view: View) -> list[tuple[Ver, Ver | None]]:
    by_id = {v.target: v for v in view.versions}
    pairs = []
    for version in view.versions:
        if version.stage == "canary" and version.version.canary is not None:
            incumbent = by_id.get(f"{version.model.id}@{version.version.canary.of_version}")
            pairs.append((version, incumbent))
    return pairs


def _cost(version: Ver | None) -> float | None:
    usage = version.usage if version is not None else None
    return usage.get("cost") if usage is not None else None


def _canary_footprint(view: View) -> list[CanaryFootprint]:
    rows = []
    for canary, incumbent in _pair(view):
        canary_cost, incumbent_cost = _cost(canary), _cost(incumbent)
        measured = canary_cost is not None and incumbent_cost is not None
        if not measured:
            canary_cost = canary.floor_monthly
            incumbent_cost = incumbent.floor_monthly if incumbent is not None else None
        share = _div(canary_cost, canary_cost + (incumbent_cost or 0.0)) if canary_cost is not None else None
        rows.append(
            CanaryFootprint(
                model=canary.model.id,
                canary=canary.target,
                incumbent=incumbent.target if incumbent is not None else None,
                canary_cost=money(canary_cost),
                incumbent_cost=money(incumbent_cost),
                share=ratio(share),
                basis="measured" if measured else "floor",
            )
        )
    return rows


def _footprint_share(view: View) -> float | None:
    pairs = _pair(view)
    if not pairs:
        return None
    measured = all(_cost(c) is not None and _cost(i) is not None for c, i in pairs)
    canary_total = incumbent_total = 0.0
    for canary, incumbent in pairs:
        if measured:
            canary_total += _cost(canary) or 0.0
            incumbent_total += _cost(incumbent) or 0.0
        else:
            canary_total += canary.floor_monthly or 0.0
            incumbent_total += incumbent.floor_monthly or 0.0 if incumbent is not None else 0.0
    return ratio(_div(canary_total, canary_total + incumbent_total))


def _clocks(view: View) -> list[Clock]:
    clocks = []
    for version in view.versions:
        block: Any = None
        if version.stage == "canary":
            block = version.version.canary
        elif version.stage == "shadow":
            block = version.version.shadow
        if block is None:
            continue
        started = parse_timestamp(block.started_at)
        age = (view.as_of - started) / _DAY
        limit = duration_hours(block.max_duration) / 24.0
        clocks.append(
            Clock(
                target=version.target,
                stage=version.stage,
                started_at=block.started_at,
                age_days=days(age) or 0.0,
                limit_days=days(limit) or 0.0,
                past_limit_days=days(age - limit) if age > limit else None,
            )
        )
    return clocks


def _fallbacks(view: View) -> list[FallbackStandby]:
    rows = []
    for version in view.versions:
        fallback = version.version.fallback
        if version.stage != "fallback" or fallback is None:
            continue
        usage = version.usage
        rows.append(
            FallbackStandby(
                target=version.target,
                for_version=f"{fallback.for_version.model}@{fallback.for_version.version}",
                floor_monthly=money(version.floor_monthly),
                cost=money(usage.get("cost")) if usage else None,
                requests=usage.get("requests") if usage else None,
                review_by=fallback.review_by,
                last_drill_at=fallback.last_drill_at,
                last_activated_at=fallback.last_activated_at,
            )
        )
    return rows


# ---------------------------------------------------------------------------- 5. exit criteria


def _exit_limit(policy_id: str, version: Version) -> str | None:
    if policy_id == "canary.max-duration" and version.canary is not None:
        return _plus(version.canary.started_at, version.canary.max_duration)
    if policy_id == "shadow.max-duration" and version.shadow is not None:
        return _plus(version.shadow.started_at, version.shadow.max_duration)
    if policy_id == "fallback.retention" and version.fallback is not None:
        return version.fallback.review_by
    if policy_id == "exit.deprecated-retire-by" and version.exit_criteria is not None:
        return version.exit_criteria.retire_by
    return None


def _plus(start: str, duration: str) -> str:
    return format_timestamp(parse_timestamp(start) + timedelta(hours=duration_hours(duration)))


def _exit_policies(snapshot: Snapshot) -> dict[str, str]:
    """Policy id → title for every policy tagged ``exit``."""
    return {p.id: p.title or p.id for p in snapshot.report.policies if "exit" in p.tags}


def _monthly(version: Ver) -> tuple[float | None, Any]:
    usage = version.usage
    if usage is not None and usage.run_rate is not None:
        return usage.run_rate, "measured"
    if version.floor_monthly is not None:
        return version.floor_monthly, "floor"
    return None, None


def past_exit_criteria(view: View) -> list[PastExit]:
    snapshot = view.snapshot
    titles = _exit_policies(snapshot)
    versions = {v.target: v for v in view.versions}
    grouped: dict[str, list[Finding]] = {}
    for finding in snapshot.report.findings:
        if finding.policy_id not in titles or finding.status not in (*FAILING, "waived"):
            continue
        if finding.model is None or finding.version is None:
            continue
        grouped.setdefault(f"{finding.model}@{finding.version}", []).append(finding)
    exceptions = {e.id: e for e in snapshot.loaded.portfolio.exceptions.exceptions}
    rows = []
    for target in sorted(grouped):
        version = versions.get(target)
        if version is None:
            continue
        findings = sorted(
            grouped[target],
            key=lambda f: (
                _EXIT_ORDER.index(f.policy_id) if f.policy_id in _EXIT_ORDER else len(_EXIT_ORDER),
                f.policy_id,
                f.validation,
            ),
        )
        reasons = []
        for finding in findings:
            limit = _exit_limit(finding.policy_id, version.version)
            past = None
            if limit is not None:
                delta = (view.as_of - parse_timestamp(limit)) / _DAY
                past = days(delta) if delta > 0 else None
            reasons.append(
                ExitReason(
                    policy_id=finding.policy_id,
                    reason=EXIT_REASONS.get(finding.policy_id, titles[finding.policy_id]),
                    limit=limit,
                    days_past=past,
                    message=finding.message,
                )
            )
        first = findings[0]
        action = EXIT_ACTIONS.get(first.policy_id) or (
            first.remediation or "Review it against its exit criteria."
        )
        waived = [f for f in findings if f.status == "waived"]
        status = "waived" if len(waived) == len(findings) else "open"
        exception = exceptions.get(waived[0].exception_id or "") if waived else None
        monthly, basis = _monthly(version)
        rows.append(
            PastExit(
                target=target,
                model=version.model.id,
                version=version.version.version,
                stage=version.stage,
                owner_team=version.model.owner_team,
                reasons=reasons,
                monthly_cost=money(monthly),
                cost_basis=basis,
                recommended_action=" ".join(action.split()),
                status=status,
                exception_id=exception.id if exception is not None else None,
                exception_expires_at=exception.expires_at if exception is not None else None,
            )
        )
    rows.sort(key=lambda r: (r.status != "open", -(r.monthly_cost or 0.0), r.target))
    return rows


# ---------------------------------------------------------------------------- 6. estimates


def _ceiling(view: View, version: Ver) -> float | None:
    ceilings = [
        s.scope.monthly_cost_ceiling
        for s in version.version.signoffs
        if s.scope.monthly_cost_ceiling is not None
        and s.scope.subject_digest == version.digest
        and parse_timestamp(s.expires_at) > view.as_of
    ]
    return min(ceilings) if ceilings else None


def estimates(view: View) -> Estimates:
    rows = []
    total_estimate = total_actual = 0.0
    both = False
    for version in view.versions:
        if version.stage == "retired":
            continue
        estimate = version.estimate
        usage = version.usage
        actual = usage.run_rate if usage is not None else None
        if estimate is None and actual is None:
            continue
        ceiling = _ceiling(view, version)
        if estimate is not None and actual is not None:
            total_estimate += estimate
            total_actual += actual
            both = True
        rows.append(
            EstimateRow(
                target=version.target,
                stage=version.stage,
                estimate_monthly=money(estimate),
                floor_monthly=money(version.floor_monthly),
                actual_monthly=money(actual),
                error_pct=ratio(_div(actual - estimate, estimate))
                if actual is not None and estimate is not None
                else None,
                ceiling=money(ceiling),
                ceiling_breached=ceiling is not None and actual is not None and actual > ceiling,
                days_with_data=max((len(d.usage.dates) for d in version.deployments if d.usage), default=0),
            )
        )
    rows.sort(key=lambda r: (-abs(r.error_pct or 0.0), r.target))
    return Estimates(
        rows=rows,
        total_estimate=money(total_estimate) if both else None,
        total_actual=money(total_actual) if both else None,
        error_pct=ratio(_div(total_actual - total_estimate, total_estimate)) if both else None,
    )


# ---------------------------------------------------------------------------- 7. idle capacity


def _per_replica_monthly(view: View, deployment: Deployment) -> float | None:
    rate = view.head.rates.gpu_hour.get(deployment.accelerator.type)
    if rate is None:
        return None
    hourly = deployment.accelerator.count * rate + view.head.rates.overhead_per_replica_hour
    return hourly * view.hours_per_month


def idle_capacity(view: View) -> IdleCapacity:
    rows = []
    for dep in view.deployments:
        usage = dep.usage
        if not dep.warm or usage is None or usage.util_avg is None:
            continue
        floor = view.util_floor(dep.model)
        if usage.util_avg >= floor:
            continue
        per_replica = _per_replica_monthly(view, dep.deployment)
        rows.append(
            IdleRow(
                target=dep.target,
                deployment=dep.deployment.id,
                stage=str(dep.version.stage),
                replicas_min=dep.deployment.replicas.min,
                accelerator=dep.deployment.accelerator.type,
                gpus_per_replica=dep.deployment.accelerator.count,
                gpu_util_avg=ratio(usage.util_avg) or 0.0,
                util_floor=floor,
                idle_days=usage.idle_days,
                days_with_data=len(usage.dates),
                idle_gpu_hours=money(usage.idle_gpu_hours) or 0.0,
                floor_monthly=money(dep.floor_monthly),
                saving_lower_by_one=money(per_replica),
                saving_scale_to_zero=money(dep.floor_monthly),
            )
        )
    rows.sort(key=lambda r: (-(r.saving_scale_to_zero or 0.0), r.target))
    if not view.measured:
        return IdleCapacity()
    return IdleCapacity(
        rows=rows,
        idle_gpu_hours=money(sum(r.idle_gpu_hours for r in rows)),
        saving_lower_by_one=money(sum(r.saving_lower_by_one or 0.0 for r in rows)),
        saving_scale_to_zero=money(sum(r.saving_scale_to_zero or 0.0 for r in rows)),
    )


# ---------------------------------------------------------------------------- 8. attribution


def _has_selectors(deployment: Deployment) -> bool:
    s = deployment.selectors
    return bool(s.k8s_labels or s.focus_tags or s.focus_resource_ids or s.prometheus)


def attribution(current: View, previous: View | None) -> Attribution:
    gaps = []
    for dep in current.deployments:
        if dep.version.stage == "retired":
            continue
        missing = []
        team = dep.deployment.owner_team
        if team is None:
            missing.append("owner_team")
        elif team not in current.teams:
            missing.append(f"owner_team ({team} is not a team)")
        if dep.deployment.cost_center is None:
            missing.append("cost_center")
        if not _has_selectors(dep.deployment):
            missing.append("selectors")
        if missing:
            gaps.append(AttributionGap(target=dep.target, missing=missing))
    measured = current.snapshot.measured
    if measured is None or not current.measured:
        return Attribution(gaps=gaps)
    reasons: dict[str, list[ResidencyRecord]] = {}
    for record in measured.unattributed:
        reasons.setdefault(record.unattributed_reason or "unknown", []).append(record)
    earlier = {d.deployment.id: d.target.rpartition("/")[0] for d in previous.deployments} if previous else {}
    unknown = [
        UnknownDeployment(
            deployment=name,
            records=int(info["records"]),
            cost=money(float(info["cost"] or 0.0)) or 0.0,
            known_in_previous=earlier.get(name),
        )
        for name, info in measured.unknown_deployments().items()
    ]
    unknown.sort(key=lambda u: (-u.cost, u.deployment))
    attributed = current.attributed or 0.0
    total = current.total
    return Attribution(
        total_cost=money(total),
        attributed_cost=money(attributed),
        unattributed_cost=money(current.unattributed),
        attributed_share=ratio(_div(attributed, total)),
        by_reason=sorted(
            (
                UnattributedReason(
                    reason=reason,
                    records=len(group),
                    cost=money(sum(r.cost.total for r in group if r.cost is not None)) or 0.0,
                )
                for reason, group in reasons.items()
            ),
            key=lambda r: (-r.cost, r.reason),
        ),
        unknown_deployments=unknown,
        gaps=gaps,
        not_measured=sorted(d.target for d in current.deployments if d.warm and d.usage is None),
    )


# ---------------------------------------------------------------------------- 9. governance


def _policy_rates(snapshot: Snapshot) -> list[PolicyRate]:
    counts: dict[str, dict[str, int]] = {}
    for finding in snapshot.report.findings:
        per = counts.setdefault(finding.policy_id, {})
        per[finding.status] = per.get(finding.status, 0) + 1
    rows = []
    for policy in snapshot.report.policies:
        per = counts.get(policy.id, {})
        judged = sum(per.get(s, 0) for s in ("pass", "fail", "error", "waived"))
        rows.append(
            PolicyRate(
                policy_id=policy.id,
                severity=policy.severity,
                enforcement=policy.enforcement.get("audit", ""),
                passed=per.get("pass", 0),
                failed=per.get("fail", 0),
                errors=per.get("error", 0),
                waived=per.get("waived", 0),
                skipped=per.get("skip", 0),
                pass_rate=ratio(_div(per.get("pass", 0), judged)),
            )
        )
    return rows


def _exceptions(view: View) -> list[ExceptionState]:
    snapshot = view.snapshot
    rules = ledger_rules(snapshot.loaded, "audit")
    waived: dict[str, int] = {}
    for finding in snapshot.report.findings:
        if finding.exception_id:
            waived[finding.exception_id] = waived.get(finding.exception_id, 0) + 1
    rows = []
    for exception in snapshot.loaded.portfolio.exceptions.exceptions:
        found = assess(exception, view.as_of, rules)
        if found.expired:
            state = "expired"
        elif found.active:
            state = "expiring" if found.expires_in_days <= EXPIRY_HORIZON_DAYS else "active"
        elif not found.in_window:
            state = "not yet active"
        else:
            state = "inactive"
        rows.append(
            ExceptionState(
                id=exception.id,
                policy=exception.policy,
                target=exception.target,
                expires_at=exception.expires_at,
                state=state,
                expires_in_days=days(found.expires_in_days) or 0.0,
                waived=waived.get(exception.id, 0),
                problems=list(found.problems),
            )
        )
    rows.sort(key=lambda r: (r.expires_at, r.id))
    return rows


def _failing(snapshot: Snapshot) -> set[str]:
    return {f.fingerprint for f in snapshot.report.findings if f.status in FAILING}


def governance_health(current: View, previous: View | None) -> Governance:
    horizon = current.as_of + timedelta(days=EXPIRY_HORIZON_DAYS)
    expiring = []
    expired = 0
    for version in current.versions:
        if version.stage == "retired":
            continue
        for signoff in version.version.signoffs:
            expires = parse_timestamp(signoff.expires_at)
            if expires <= current.as_of:
                expired += 1
            elif expires < horizon:
                expiring.append(
                    ExpiringSignoff(
                        target=version.target,
                        role=signoff.role,
                        by=signoff.by,
                        expires_at=signoff.expires_at,
                        days_left=days((expires - current.as_of) / _DAY) or 0.0,
                    )
                )
    expiring.sort(key=lambda s: (s.expires_at, s.target, s.role, s.by))
    now, before = _failing(current.snapshot), _failing(previous.snapshot) if previous else None
    return Governance(
        findings=current.snapshot.report.summary,
        open_blocking=current.open_blocking(),
        opened=len(now - before) if before is not None else None,
        closed=len(before - now) if before is not None else None,
        policies=_policy_rates(current.snapshot),
        exceptions=_exceptions(current),
        signoffs_expiring=expiring,
        signoffs_expired=expired,
    )


# ---------------------------------------------------------------------------- 10. churn


def churn(collected: Collected, current: View, previous: View | None) -> Churn:
    trend = []
    for sample in collected.floor_samples:
        if sample.targets is None:
            trend.append(FloorPoint(at=format_timestamp(sample.at), commit=sample.commit))
            continue
        gpus, floor = _floor_of(sample.targets)
        trend.append(
            FloorPoint(
                at=format_timestamp(sample.at),
                commit=sample.commit,
                warm_gpus=gpus,
                floor_monthly=money(floor),
            )
        )
    models = len({v.model.id for v in current.versions})
    if previous is None:
        return Churn(
            available=False,
            warm_gpus=current.warm_gpus,
            floor_monthly=money(current.floor_monthly) or 0.0,
            models=models,
            versions=len(current.versions),
            floor_trend=trend,
        )
    after = {v.target: v.stage for v in current.versions}
    before = {v.target: v.stage for v in previous.versions}
    history = current.snapshot.history
    transitions = []
    for target in sorted(after.keys() | before.keys()):
        old, new = before.get(target), after.get(target)
        if old == new:
            continue
        if new in ENTRY_STAGES:
            kind = "entered"
        elif (new is None or new == "retired") and old not in (None, "retired"):
            kind = "exited"
        elif old is None:
            kind = "added"
        else:
            kind = "changed"
        since = None
        if new is not None:
            model, _, version = target.partition("@")
            known = history.get((model, version))
            if known is not None and known.stage == new:
                since = known.stage_since
        transitions.append(Transition(target=target, from_stage=old, to_stage=new, kind=kind, since=since))
    floor_change = current.floor_monthly - previous.floor_monthly
    return Churn(
        available=True,
        transitions=transitions,
        entered=sum(1 for t in transitions if t.kind == "entered"),
        exited=sum(1 for t in transitions if t.kind == "exited"),
        warm_gpus_previous=previous.warm_gpus,
        warm_gpus=current.warm_gpus,
        warm_gpus_change=current.warm_gpus - previous.warm_gpus,
        floor_monthly_previous=money(previous.floor_monthly),
        floor_monthly=money(current.floor_monthly) or 0.0,
        floor_monthly_change=money(floor_change),
        models_previous=len({v.model.id for v in previous.versions}),
        models=models,
        versions_previous=len(previous.versions),
        versions=len(current.versions),
        floor_trend=trend,
    )


# ---------------------------------------------------------------------------- 11. decisions


def decisions(
    view: View, past_exit: list[PastExit], idle: IdleCapacity, governance: Governance
) -> list[Decision]:
    found: list[Decision] = []
    exiting = {row.target for row in past_exit}
    for row in past_exit:
        if row.status != "open":
            continue
        found.append(
            Decision(
                kind="exit",
                target=row.target,
                action=row.recommended_action,
                monthly_impact=-row.monthly_cost if row.monthly_cost else None,
                because="; ".join(dict.fromkeys(r.message for r in row.reasons)),
                refs=sorted({r.policy_id for r in row.reasons}),
            )
        )
    findings = view.snapshot.report.findings
    for version in view.versions:
        requested = version.version.requested_stage
        if requested is None or requested == version.version.stage:
            continue
        failing = sorted(
            {f.policy_id for f in findings if f.target == version.target and f.status in FAILING}
        )
        estimate = version.estimate
        found.append(
            Decision(
                kind="entry",
                target=version.target,
                action=f"Approve or reject {version.stage} → {requested}"
                + (f" (expected {view.currency} {estimate:,.0f} per month)" if estimate is not None else ""),
                monthly_impact=estimate,
                because="requested_stage differs from stage"
                + (f"; still failing: {', '.join(failing)}" if failing else "; its entry checks pass"),
                refs=failing,
            )
        )
    for finding in findings:
        if finding.policy_id != "production.entry.four-signoffs" or finding.status not in FAILING:
            continue
        subject = next((v for v in view.versions if v.target == finding.target), None)
        if subject is None or subject.stage != "production":
            continue
        found.append(
            Decision(
                kind="re-affirm",
                target=finding.target,
                action="Re-affirm it: the four functions sign the current digest, or retire it.",
                monthly_impact=None,
                because=finding.message,
                refs=[finding.policy_id],
            )
        )
    soon: dict[str, list[str]] = {}
    for signoff in governance.signoffs_expiring:
        soon.setdefault(signoff.target, []).append(f"{signoff.role} {signoff.by} {signoff.expires_at[:10]}")
    reaffirmed = {d.target for d in found if d.kind == "re-affirm"}
    for target in sorted(soon):
        if target in reaffirmed:
            continue
        found.append(
            Decision(
                kind="re-affirm",
                target=target,
                action=f"Renew {len(soon[target])} sign-off(s) before they expire.",
                because="expiring within 30 days: " + ", ".join(soon[target]),
                refs=["signoff.expiry"],
            )
        )
    for idle_row in idle.rows:
        version_target = idle_row.target.rpartition("/")[0]
        if version_target in exiting or idle_row.stage == "fallback" or idle_row.saving_lower_by_one is None:
            continue
        action = (
            f"Lower replicas.min of {idle_row.deployment} from {idle_row.replicas_min} "
            f"to {idle_row.replicas_min - 1}"
            if idle_row.replicas_min > 1
            else f"Enable scale_to_zero on {idle_row.deployment} (or consolidate it)"
        )
        found.append(
            Decision(
                kind="right-size",
                target=idle_row.target,
                action=action,
                monthly_impact=-idle_row.saving_lower_by_one,
                because=f"average GPU utilisation {idle_row.gpu_util_avg:.1%} below the "
                f"{idle_row.util_floor:.0%} floor; idle {idle_row.idle_days} of "
                f"{idle_row.days_with_data} days",
                refs=["idle.warm-capacity"],
            )
        )
    for exception in governance.exceptions:
        if exception.state not in ("expiring", "expired", "inactive"):
            continue
        verb = {
            "expiring": "Renew with a fix date, or let it lapse",
            "expired": "Remove it from exceptions.yaml (it waives nothing)",
            "inactive": "Fix or remove it (it waives nothing)",
        }[exception.state]
        because = f"{exception.state}: expires {exception.expires_at}"
        if exception.problems:
            because += "; " + "; ".join(exception.problems)
        found.append(
            Decision(
                kind="exception",
                target=f"exception:{exception.id}",
                action=f"{verb}: {exception.policy} on {exception.target or 'its match'}.",
                because=because,
                refs=[exception.policy],
            )
        )
    order = ("exit", "entry", "re-affirm", "right-size", "exception")
    found.sort(key=lambda d: (order.index(d.kind), d.monthly_impact or 0.0, d.target))
    return [d.model_copy(update={"monthly_impact": money(d.monthly_impact)}) for d in found]


# ---------------------------------------------------------------------------- evidence


_ROLE_ORDER = ("manifest", "previous-manifest", "policy", "residency")


def evidence(collected: Collected) -> Evidence:
    current, previous = collected.current, collected.previous
    files: dict[tuple[str, str, str, str], EvidenceFile] = {}
    groups = [current.files, current.policy_files, collected.residency_files]
    if previous is not None:
        groups += [previous.files, previous.policy_files]
    for group in groups:
        for item in group:
            files[(item.role, item.path, item.commit or "", item.sha256)] = item
    ordered = sorted(files.values(), key=lambda f: (_ROLE_ORDER.index(f.role), f.path, f.commit or ""))
    tool = current.report.tool
    return Evidence(
        engine_version=__version__,
        cel_backend=tool.cel_backend,
        pack_version=tool.pack_version,
        manifest_commit=current.manifest.commit,
        previous_commit=previous.manifest.commit if previous is not None else None,
        command=_command(collected, tool.cel_backend),
        files=ordered,
    )


def _command(collected: Collected, backend: str) -> str:
    options = collected.options
    period = collected.period
    parts = ["policy-engine", "audit", collected.root]
    if period.quarter is not None:
        parts += ["--quarter", period.label]
    else:
        parts += ["--since", f"{period.start:%Y-%m-%d}", "--until", f"{period.end:%Y-%m-%d}"]
    if not collected.current.manifest.pinned and options.working_tree:
        parts.append("--working-tree")
    for directory in collected.policy_dirs:
        parts += ["--policies", directory]
    if not options.load.builtin:
        parts.append("--no-builtin")
    if options.load.disallow_overrides:
        parts.append("--disallow-overrides")
    parts += ["--cel-backend", backend]
    if options.fail_on != "never":
        parts += ["--fail-on", options.fail_on]
    return " ".join(shlex.quote(part) for part in parts)
