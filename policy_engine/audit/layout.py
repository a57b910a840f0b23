"""The review laid out as a document: sections of paragraphs, tables and charts.

Both human formats render this one layout, so Markdown and HTML always say the same thing;
only HTML draws the charts (Markdown has the same numbers in the tables). Text here is plain:
each renderer escapes it for its own format. ``Code`` marks identifiers (ids, paths, shas).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from policy_engine.audit.model import AuditReport, Metric, TeamRow

NO_DATA = "no data"


class Code(str):
    """An identifier shown as code."""

    __slots__ = ()


Cell = str


@dataclass(frozen=True, slots=True)
class Para:
    text: str
    kind: Literal["text", "note", "warning"] = "text"


@dataclass(frozen=True, slots=True)
class Items:
    items: list[str]
    kind: Literal["text", "warning"] = "text"


@dataclass(frozen=True, slots=True)
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    numeric: list[bool] = field(default_factory=list)  # right-aligned columns
    empty: str = "none"
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Bars:
    """Horizontal bars: one value per label."""

    title: str
    items: list[tuple[str, float]]
    unit: str


@dataclass(frozen=True, slots=True)
class Stacked:
    """Vertical stacked columns: categories along the axis, one series per stack layer."""

    title: str
    categories: list[str]
    series: list[tuple[str, list[float]]]
    unit: str
    notes: list[str] = field(default_factory=list)  # per category, shown under its label


@dataclass(frozen=True, slots=True)
class Line:
    """A line over labelled points; None is a gap ("no data")."""

    title: str
    points: list[tuple[str, float | None]]
    unit: str


Block = Para | Items | Table | Bars | Stacked | Line


@dataclass(frozen=True, slots=True)
class Section:
    id: str
    title: str
    blocks: list[Block]


@dataclass(frozen=True, slots=True)
class Document:
    title: str
    subtitle: str
    sections: list[Section]


# ---------------------------------------------------------------------------- formatting


class Fmt:
    def __init__(self, currency: str) -> None:
        self.currency = currency

    def money(self, value: float | None) -> str:
        if value is None:
            return NO_DATA
        sign = "−" if value < 0 else ""
        return f"{sign}{self.currency} {abs(value):,.0f}"

    def unit_cost(self, value: float | None) -> str:
        return NO_DATA if value is None else f"{self.currency} {value:,.4f}"

    def delta(self, value: float | None) -> str:
        if value is None:
            return NO_DATA
        if round(value) == 0:
            return f"±{self.currency} 0"
        return ("+" if value > 0 else "−") + f"{self.currency} {abs(value):,.0f}"

    @staticmethod
    def pct(value: float | None) -> str:
        return NO_DATA if value is None else f"{value * 100:.1f}%"

    @staticmethod
    def signed_pct(value: float | None) -> str:
        if value is None:
            return NO_DATA
        if round(value * 1000) == 0:
            return "±0.0%"
        return ("+" if value > 0 else "−") + f"{abs(value) * 100:.1f}%"

    @staticmethod
    def number(value: float | None, digits: int = 0) -> str:
        return NO_DATA if value is None else f"{value:,.{digits}f}"

    @staticmethod
    def signed(value: float | None, digits: int = 0) -> str:
        if value is None:
            return NO_DATA
        if round(value, digits) == 0:
            return "±0"
        return ("+" if value > 0 else "−") + f"{abs(value):,.{digits}f}"

    @staticmethod
    def days(value: float | None) -> str:
        return NO_DATA if value is None else f"{value:.1f} d"

    @staticmethod
    def date(value: str | None) -> str:
        return "—" if not value else value[:10]


def _metric_cells(fmt: Fmt, metric: Metric) -> list[Cell]:
    if metric.unit == "money":
        value, previous = fmt.money(metric.value), fmt.money(metric.previous)
        change = fmt.delta(metric.change)
        if metric.change_pct is not None:
            change += f" ({fmt.signed_pct(metric.change_pct)})"
    elif metric.unit == "ratio":
        value, previous = fmt.pct(metric.value), fmt.pct(metric.previous)
        change = NO_DATA if metric.change is None else f"{fmt.signed(metric.change * 100, 1)} pp"
    else:
        value, previous = fmt.number(metric.value), fmt.number(metric.previous)
        change = fmt.signed(metric.change)
    return [metric.name, value, previous, change, metric.note or ""]


# ---------------------------------------------------------------------------- the document


def layout(report: AuditReport) -> Document:
    fmt = Fmt(report.provenance.currency)
    period = report.period
    return Document(
        title=f"Quarterly portfolio review: {report.provenance.portfolio_name}, {period.label}",
        subtitle=(
            f"{period.start[:10]} to {period.end[:10]} (UTC, end exclusive; {period.days} days), "
            f"evaluated as of {report.as_of} in the audit context"
        ),
        sections=[
            _provenance(report),
            _summary(report, fmt),
            _teams(report, fmt),
            _lifecycle(report, fmt),
            _past_exit(report, fmt),
            _estimates(report, fmt),
            _idle(report, fmt),
            _attribution(report, fmt),
            _governance(report, fmt),
            _churn(report, fmt),
            _decisions(report, fmt),
            _evidence(report),
        ],
    )


def _provenance(report: AuditReport) -> Section:
    p = report.provenance
    period, before = report.period, report.previous_period
    manifest = p.manifest
    if manifest.pinned and manifest.commit:
        where = (
            f"commit {manifest.commit[:12]} (committed {manifest.committed_at}), "
            f"portfolio root {manifest.root}"
        )
    else:
        where = f"{manifest.note or 'not pinned to a commit'}; portfolio root {manifest.root}"
    if p.previous_manifest is not None and p.previous_manifest.commit:
        earlier = p.previous_manifest
        previous = f"{before.label}: commit {(earlier.commit or '')[:12]} (committed {earlier.committed_at})"
    else:
        previous = f"{before.label}: {p.previous_note or NO_DATA}"
    rates = f"{p.currency}; cost basis {p.cost_basis}"
    if p.rates_source:
        rates += f"; rates: {p.rates_source}"
    if p.rates_as_of:
        rates += f" (as of {p.rates_as_of})"
    rates += f"; {p.hours_per_month:g} hours per month"
    tool = report.tool
    rows: list[list[Cell]] = [
        ["Period", f"{period.label}: [{period.start}, {period.end}), {period.days} days"],
        ["Evaluated as of", f"{report.as_of} (context audit)"],
        ["Manifest and rules", where],
        ["Previous period", previous],
        [
            "Engine",
            f"policy-engine {tool.version}, policy pack {tool.pack_version}, CEL {tool.cel_backend}, "
            f"{p.policies} policies",
        ],
        ["Overrides of pack defaults", str(len(p.overrides)) if p.overrides else "none"],
        ["Currency and rates", rates],
        [
            "Measured residency",
            f"{p.residency_files} file(s); {p.days_with_data} of {period.days} days with data "
            f"({Fmt.pct(p.coverage)})",
        ],
        [
            "Data lag",
            f"median {p.data_lag.median_hours:g} h, max {p.data_lag.max_hours:g} h from the end of a window "
            f"to its fetch ({p.data_lag.records} records)"
            if p.data_lag
            else NO_DATA,
        ],
    ]
    blocks: list[Block] = [Table(["", ""], rows)]
    if p.data_sources:
        blocks.append(
            Table(
                ["Source", "Records", "Days with data", "Coverage", "First day", "Last day", "Cost basis"],
                [
                    [
                        Code(s.source),
                        str(s.records),
                        str(s.days_with_data),
                        Fmt.pct(s.coverage),
                        Fmt.date(s.first_day),
                        Fmt.date(s.last_day),
                        ", ".join(s.cost_basis) or "—",
                    ]
                    for s in p.data_sources
                ],
                [False, True, True, True, False, False, False],
                title="Data sources",
            )
        )
    if p.overrides:
        blocks.append(
            Table(
                ["Policy", "Setting", "Default", "Value", "Where"],
                [
                    [Code(o.policy_id), Code(o.setting), str(o.default), str(o.value), Code(o.source)]
                    for o in p.overrides
                ],
                title="Overrides",
            )
        )
    if report.missing:
        blocks.append(Items(list(report.missing), "warning"))
    return Section("provenance", "Provenance", blocks)


def _summary(report: AuditReport, fmt: Fmt) -> Section:
    s = report.summary
    metrics = [
        s.residency_cost,
        s.warm_gpu_floor,
        s.attributed_share,
        s.lifecycle_overhead_share,
        s.open_blocking_findings,
    ]
    return Section(
        "summary",
        "Executive summary",
        [
            Table(
                ["Measure", report.period.label, report.previous_period.label, "Change", "Basis"],
                [_metric_cells(fmt, m) for m in metrics],
                [False, True, True, True, False],
            )
        ],
    )


def _team_table(rows: list[TeamRow], fmt: Fmt, previous: str, *, estimates: bool) -> Table:
    headers = [
        "Team",
        "Cost centre",
        "Models",
        "Deployments",
        "GPU-hours",
        "Cost",
        f"Cost {previous}",
        "Change",
    ]
    if estimates:
        headers += ["vs estimate", "Ladder"]
    headers += ["Per 1k requests", "Per 1M output tokens", "GPU util."]
    body = []
    for row in rows:
        change = fmt.delta(row.change)
        if row.change_pct is not None:
            change += f" ({fmt.signed_pct(row.change_pct)})"
        cells: list[Cell] = [
            Code(row.team),
            Code(row.cost_center) if row.cost_center else "—",
            str(row.models),
            str(row.deployments),
            fmt.number(row.gpu_hours),
            fmt.money(row.cost),
            fmt.money(row.previous_cost),
            change,
        ]
        if estimates:
            cells += [fmt.signed_pct(row.variance_pct), row.variance_action or "—"]
        cells += [fmt.unit_cost(row.cost_per_1k_requests), fmt.unit_cost(row.cost_per_1m_tokens_out)]
        cells.append(fmt.pct(row.gpu_util_avg))
        body.append(cells)
    numeric = [False, False, *([True] * (len(headers) - 2))]
    if estimates:
        numeric[headers.index("Ladder")] = False
    return Table(headers, body, numeric)


def _teams(report: AuditReport, fmt: Fmt) -> Section:
    teams = report.teams
    previous = report.previous_period.label
    blocks: list[Block] = [
        Para(
            "Owner teams are accountable for their models (the model's owner_team); consumer teams see "
            "the residency of the deployments they run (the deployment's owner_team and cost centre). "
            "Unit costs divide the period's cost by its requests and output tokens."
        ),
        Para("By owner team (accountability)", "note"),
        _team_table(teams.owners, fmt, previous, estimates=True),
    ]
    owners = [(r.team, r.cost) for r in teams.owners if r.cost]
    if owners:
        blocks.append(
            Bars(
                "Residency cost by owner team", [(t, c or 0.0) for t, c in owners], report.provenance.currency
            )
        )
    blocks += [
        Para("By consumer team and cost centre (showback)", "note"),
        _team_table(teams.consumers, fmt, previous, estimates=False),
    ]
    consumers = [(f"{r.team} / {r.cost_center or '—'}", r.cost) for r in teams.consumers if r.cost]
    if consumers:
        blocks.append(
            Bars(
                "Residency cost by consumer team",
                [(t, c or 0.0) for t, c in consumers],
                report.provenance.currency,
            )
        )
    blocks.append(
        Para(
            "vs estimate: measured cost against the signed monthly_expected of the same versions, pro rata "
            "for the days with data. Ladder: within 5% note; 5–10% investigate; 10–20% corrective plan; "
            "above 20% escalate.",
            "note",
        )
    )
    return Section("teams", "Residency per team", blocks)


def _lifecycle(report: AuditReport, fmt: Fmt) -> Section:
    life = report.lifecycle
    previous = report.previous_period.label
    blocks: list[Block] = [
        Table(
            [
                "Stage",
                "Versions",
                "Deployments",
                "Warm GPUs",
                "Warm floor / month",
                "Cost",
                "Share",
                f"Cost {previous}",
            ],
            [
                [
                    r.stage,
                    str(r.versions),
                    str(r.deployments),
                    str(r.warm_gpus),
                    fmt.money(r.floor_monthly),
                    fmt.money(r.cost),
                    fmt.pct(r.cost_share),
                    fmt.money(r.previous_cost),
                ]
                for r in life.by_stage
            ],
            [False, True, True, True, True, True, True, True],
            title="Residency by stage (stage at the period end)",
        )
    ]
    if life.by_month:
        stages = list(life.by_month[0].by_stage)
        blocks.append(
            Stacked(
                "Residency cost by stage, per month",
                [m.month for m in life.by_month],
                [(stage, [m.by_stage.get(stage, 0.0) for m in life.by_month]) for stage in stages],
                report.provenance.currency,
                [f"{m.days_with_data} d of data" for m in life.by_month],
            )
        )
        blocks.append(
            Table(
                ["Month", "Days with data", *stages],
                [
                    [m.month, str(m.days_with_data), *(fmt.money(m.by_stage[s]) for s in stages)]
                    for m in life.by_month
                ],
                [False, *([True] * (len(stages) + 1))],
                title="Cost by stage per month",
            )
        )
    share = "no canaries" if life.canary_footprint_share is None else fmt.pct(life.canary_footprint_share)
    blocks.append(Para(f"Canary footprint share (canary ÷ canary + incumbent), portfolio-wide: {share}."))
    if life.canary_footprint:
        blocks.append(
            Table(
                ["Model", "Canary", "Incumbent", "Canary cost", "Incumbent cost", "Share", "Basis"],
                [
                    [
                        Code(r.model),
                        Code(r.canary),
                        Code(r.incumbent) if r.incumbent else "—",
                        fmt.money(r.canary_cost),
                        fmt.money(r.incumbent_cost),
                        fmt.pct(r.share),
                        "measured cost" if r.basis == "measured" else "warm floor / month",
                    ]
                    for r in life.canary_footprint
                ],
                [False, False, False, True, True, True, False],
            )
        )
    ages = []
    for name, stats in (("Canaries", life.canary_ages), ("Shadows", life.shadow_ages)):
        if stats.count:
            ages.append(
                f"{name}: {stats.count}, median age {fmt.days(stats.median_days)}, oldest "
                f"{fmt.days(stats.max_days)}, {stats.past_limit} past their limit"
            )
        else:
            ages.append(f"{name}: none")
    blocks.append(Items(ages))
    if life.clocks:
        blocks.append(
            Table(
                ["Version", "Stage", "Started", "Age", "Limit", "Past the limit by"],
                [
                    [
                        Code(c.target),
                        c.stage,
                        Fmt.date(c.started_at),
                        fmt.days(c.age_days),
                        fmt.days(c.limit_days),
                        fmt.days(c.past_limit_days) if c.past_limit_days is not None else "—",
                    ]
                    for c in life.clocks
                ],
                [False, False, False, True, True, True],
                title="Canary and shadow clocks",
            )
        )
    if life.fallbacks:
        blocks.append(
            Table(
                [
                    "Fallback",
                    "For",
                    "Standby floor / month",
                    "Cost",
                    "Requests served",
                    "Review by",
                    "Last drill",
                    "Last used",
                ],
                [
                    [
                        Code(f.target),
                        Code(f.for_version),
                        fmt.money(f.floor_monthly),
                        fmt.money(f.cost),
                        fmt.number(f.requests),
                        Fmt.date(f.review_by),
                        Fmt.date(f.last_drill_at),
                        Fmt.date(f.last_activated_at),
                    ]
                    for f in life.fallbacks
                ],
                [False, False, True, True, True, False, False, False],
                title="Fallback standby",
            )
        )
    return Section("lifecycle", "Lifecycle footprint", blocks)


def _past_exit(report: AuditReport, fmt: Fmt) -> Section:
    rows = []
    for row in report.past_exit:
        reasons = "; ".join(dict.fromkeys(r.reason for r in row.reasons))
        past = max((r.days_past for r in row.reasons if r.days_past is not None), default=None)
        cost = fmt.money(row.monthly_cost)
        if row.cost_basis == "floor":
            cost += " (floor)"
        exception = "—"
        if row.exception_id:
            exception = f"{row.exception_id} until {Fmt.date(row.exception_expires_at)}"
        rows.append(
            [
                Code(row.target),
                row.stage,
                Code(row.owner_team),
                reasons,
                fmt.days(past) if past is not None else "—",
                cost,
                row.recommended_action,
                exception,
            ]
        )
    return Section(
        "exit",
        "Versions past their exit criteria",
        [
            Para(
                "Every version that fails (or has waived) a policy tagged exit. Monthly cost is the measured "
                "run rate over the days with data, else the declared warm floor."
            ),
            Table(
                [
                    "Version",
                    "Stage",
                    "Owner",
                    "Reason",
                    "Past the limit by",
                    "Monthly cost",
                    "Recommended action",
                    "Exception",
                ],
                rows,
                [False, False, False, False, True, True, False, False],
                empty="No version is past its exit criteria.",
            ),
        ],
    )


def _estimates(report: AuditReport, fmt: Fmt) -> Section:
    e = report.estimates
    rows = [
        [
            Code(r.target),
            r.stage,
            fmt.money(r.estimate_monthly),
            fmt.money(r.floor_monthly),
            fmt.money(r.actual_monthly),
            fmt.signed_pct(r.error_pct),
            fmt.money(r.ceiling) + (" (breached)" if r.ceiling_breached else "")
            if r.ceiling is not None
            else "—",
            str(r.days_with_data),
        ]
        for r in e.rows
    ]
    blocks: list[Block] = [
        Para(
            "Signed estimate (entry_evidence.residency_estimate.monthly_expected) against the measured run "
            "rate over the days with data; the ceiling is the lowest monthly_cost_ceiling of a sign-off that "
            "is valid on the current content."
        ),
        Table(
            [
                "Version",
                "Stage",
                "Estimate / month",
                "Warm floor / month",
                "Actual / month",
                "Error",
                "Ceiling",
                "Days",
            ],
            rows,
            [False, False, True, True, True, True, True, True],
            empty="No version has an estimate or measured residency.",
        ),
    ]
    if e.total_estimate is not None:
        blocks.append(
            Para(
                "Portfolio forecast versus actual (versions with both): "
                f"{fmt.money(e.total_estimate)} estimated, {fmt.money(e.total_actual)} measured per month "
                f"({fmt.signed_pct(e.error_pct)})."
            )
        )
    return Section("estimates", "Estimate versus actual", blocks)


def _idle(report: AuditReport, fmt: Fmt) -> Section:
    idle = report.idle
    rows = [
        [
            Code(r.target),
            r.stage,
            f"{r.replicas_min} replica(s) × {r.gpus_per_replica} {r.accelerator}",
            fmt.pct(r.gpu_util_avg),
            fmt.pct(r.util_floor),
            f"{r.idle_days} of {r.days_with_data}",
            fmt.number(r.idle_gpu_hours),
            fmt.money(r.saving_lower_by_one),
            fmt.money(r.saving_scale_to_zero),
        ]
        for r in idle.rows
    ]
    blocks: list[Block] = [
        Para(
            "Warm deployments whose GPU utilisation averaged below the idle floor (the model's "
            "exit_criteria_defaults.idle_util_floor, else 15%) over the days with data. Savings are monthly, "
            "from the rates: lowering replicas.min by one, or scaling to zero."
        ),
        Table(
            [
                "Deployment",
                "Stage",
                "Warm floor",
                "GPU util.",
                "Floor",
                "Idle days",
                "Idle GPU-hours",
                "Saving: min − 1",
                "Saving: scale to zero",
            ],
            rows,
            [False, False, False, True, True, True, True, True, True],
            empty="No warm deployment averaged below its idle floor."
            if report.idle.idle_gpu_hours is not None
            else "No data: there is no measured residency for the period.",
        ),
    ]
    if idle.idle_gpu_hours is not None and idle.rows:
        blocks.append(
            Para(
                f"Idle GPU-hours: {fmt.number(idle.idle_gpu_hours)}. Lowering each floor by one replica "
                f"would save {fmt.money(idle.saving_lower_by_one)} per month; scaling them to zero "
                f"{fmt.money(idle.saving_scale_to_zero)}."
            )
        )
    return Section("idle", "Idle warm capacity", blocks)


def _attribution(report: AuditReport, fmt: Fmt) -> Section:
    a = report.attribution
    blocks: list[Block] = []
    if a.total_cost is None:
        blocks.append(Para("Spend attribution: no data (no measured residency for the period)."))
    else:
        blocks.append(
            Para(
                f"{fmt.pct(a.attributed_share)} of measured spend is attributed to declared deployments "
                f"({fmt.money(a.attributed_cost)} of {fmt.money(a.total_cost)}; unattributed "
                f"{fmt.money(a.unattributed_cost)}). Spend-weighted, not counted by resource."
            )
        )
        blocks.append(
            Table(
                ["Unattributed source", "Records", "Cost"],
                [[Code(r.reason), str(r.records), fmt.money(r.cost)] for r in a.by_reason],
                [False, True, True],
                empty="No unattributed records.",
            )
        )
        blocks.append(
            Table(
                ["Unknown deployment id", "Records", "Cost", "Declared at the previous period end by"],
                [
                    [
                        Code(u.deployment),
                        str(u.records),
                        fmt.money(u.cost),
                        Code(u.known_in_previous) if u.known_in_previous else "—",
                    ]
                    for u in a.unknown_deployments
                ],
                [False, True, True, False],
                empty="Every record names a declared deployment.",
            )
        )
    blocks.append(
        Table(
            ["Deployment", "Missing"],
            [[Code(g.target), ", ".join(g.missing)] for g in a.gaps],
            empty="Every deployment has an owner team, a cost centre and selectors.",
            title="Deployments with incomplete attribution",
        )
    )
    if a.not_measured:
        blocks.append(
            Items([f"{t}: warm, but no measured residency in the period" for t in a.not_measured], "warning")
        )
    return Section("attribution", "Attribution health", blocks)


def _governance(report: AuditReport, fmt: Fmt) -> Section:
    g = report.governance
    s = g.findings
    counts = ", ".join(f"{n} {status.replace('_', '-')}" for status, n in s.by_status.items() if n)
    trend = ""
    if g.opened is not None and g.closed is not None:
        trend = f" Since the previous period end: {g.opened} opened, {g.closed} closed."
    blocks: list[Block] = [
        Para(
            f"Findings at the period end: {counts or 'none'}. "
            f"Open blocking findings: {g.open_blocking}.{trend}"
        ),
        Table(
            [
                "Policy",
                "Severity",
                "Audit enforcement",
                "Pass",
                "Fail",
                "Error",
                "Waived",
                "Skip",
                "Pass rate",
            ],
            [
                [
                    Code(p.policy_id),
                    p.severity,
                    p.enforcement,
                    str(p.passed),
                    str(p.failed),
                    str(p.errors),
                    str(p.waived),
                    str(p.skipped),
                    fmt.pct(p.pass_rate) if p.pass_rate is not None else "—",
                ]
                for p in g.policies
            ],
            [False, False, False, True, True, True, True, True, True],
            title="Pass rate per policy (pass ÷ judged; skips are not judged)",
        ),
        Table(
            ["Exception", "Policy", "Target", "State", "Expires", "In", "Waived", "Problems"],
            [
                [
                    Code(e.id),
                    Code(e.policy),
                    Code(e.target) if e.target else "(match)",
                    e.state,
                    Fmt.date(e.expires_at),
                    fmt.days(e.expires_in_days),
                    str(e.waived),
                    "; ".join(e.problems) or "—",
                ]
                for e in g.exceptions
            ],
            [False, False, False, False, False, True, True, False],
            empty="No exceptions.",
            title="Exceptions (expiring: active and lapsing within 30 days)",
        ),
        Table(
            ["Version", "Role", "By", "Expires", "Days left"],
            [
                [Code(x.target), x.role, Code(x.by), x.expires_at, fmt.number(x.days_left, 1)]
                for x in g.signoffs_expiring
            ],
            [False, False, False, False, True],
            empty="No sign-off expires in the next 30 days.",
            title="Sign-offs expiring in the next 30 days (the re-affirmation agenda)",
        ),
        Para(f"Expired sign-offs still on versions that are not retired: {g.signoffs_expired}."),
    ]
    return Section("governance", "Governance health", blocks)


def _churn(report: AuditReport, fmt: Fmt) -> Section:
    c = report.churn
    previous = report.previous_period.label
    blocks: list[Block] = []
    if c.available:
        ratio = f"{c.entered}:{c.exited}"
        blocks.append(
            Para(
                f"Versions entered (into canary, shadow or production) versus exited (retired or removed) "
                f"since {previous}: {ratio}. Warm GPU floor {c.warm_gpus_previous} → {c.warm_gpus} GPUs "
                f"({fmt.signed(c.warm_gpus_change)}); warm floor per month "
                f"{fmt.money(c.floor_monthly_previous)} → {fmt.money(c.floor_monthly)} "
                f"({fmt.delta(c.floor_monthly_change)}). Models {c.models_previous} → {c.models}; versions "
                f"{c.versions_previous} → {c.versions}."
            )
        )
        blocks.append(
            Table(
                ["Version", "From", "To", "Kind", "Since"],
                [
                    [
                        Code(t.target),
                        t.from_stage or "(absent)",
                        t.to_stage or "(removed)",
                        t.kind,
                        Fmt.date(t.since),
                    ]
                    for t in c.transitions
                ],
                empty="No stage changed.",
                title=f"Stage changes since {previous}",
            )
        )
    else:
        blocks.append(
            Para(
                f"Entered versus exited: no data (no manifest for {previous}). Warm GPU floor now "
                f"{c.warm_gpus} GPUs ({fmt.money(c.floor_monthly)} per month); {c.models} models, "
                f"{c.versions} versions."
            )
        )
    if any(p.warm_gpus is not None for p in c.floor_trend):
        blocks.append(
            Line(
                "Warm GPU floor (replicas.min × GPUs)",
                [(p.at[:10], None if p.warm_gpus is None else float(p.warm_gpus)) for p in c.floor_trend],
                "GPUs",
            )
        )
    blocks.append(
        Table(
            ["At", "Commit", "Warm GPUs", "Warm floor / month"],
            [
                [
                    p.at,
                    Code(p.commit[:12]) if p.commit else "—",
                    fmt.number(p.warm_gpus) if p.warm_gpus is not None else NO_DATA,
                    fmt.money(p.floor_monthly),
                ]
                for p in c.floor_trend
            ],
            [False, False, True, True],
            title="Warm floor trend",
        )
    )
    return Section("churn", "Churn and trend", blocks)


def _decisions(report: AuditReport, fmt: Fmt) -> Section:
    rows = []
    for number, d in enumerate(report.decisions, start=1):
        impact = "—" if d.monthly_impact is None else fmt.delta(d.monthly_impact) + " / month"
        rows.append([str(number), d.kind, Code(d.target), d.action, impact, d.because])
    return Section(
        "decisions",
        "Decisions requested",
        [
            Table(
                ["#", "Kind", "Target", "Decision", "Monthly impact", "Because"],
                rows,
                [True, False, False, False, True, False],
                empty="Nothing to decide.",
            )
        ],
    )


def _evidence(report: AuditReport) -> Section:
    e = report.evidence
    return Section(
        "evidence",
        "Evidence manifest",
        [
            Para(
                "Every input, by sha256, so the report can be reproduced byte for byte: the same files "
                "(and commits), engine version and CEL backend give the same report."
            ),
            Items(
                [
                    f"Command: {e.command}",
                    f"Engine: policy-engine {e.engine_version}, policy pack {e.pack_version}, "
                    f"CEL {e.cel_backend}",
                    f"Manifest commit: {e.manifest_commit or 'not pinned (files on disk)'}",
                    f"Previous manifest commit: {e.previous_commit or NO_DATA}",
                ]
            ),
            Table(
                ["Role", "Path", "Commit", "sha256"],
                [
                    [f.role, Code(f.path), Code(f.commit[:12]) if f.commit else "disk", Code(f.sha256)]
                    for f in e.files
                ],
            ),
        ],
    )
