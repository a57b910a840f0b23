"""The quarterly review as one serialisable document (``schemas/audit.schema.json``).

Every renderer (Markdown, HTML, JSON) is a pure function of an ``AuditReport``. Money is in
the portfolio's currency, rounded to cents; ratios are 0–1, rounded to four places; ``null``
means "no data", never zero.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from policy_engine.models.report import Override, Summary, Tool

SCHEMA_VERSION = 1
Stage = Literal["proposed", "canary", "shadow", "production", "fallback", "deprecated", "retired"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------- header


class PeriodInfo(_Out):
    label: str = Field(description="'2025Q2' for a quarter, 'YYYY-MM-DD..YYYY-MM-DD' for a range.")
    kind: Literal["quarter", "range"]
    start: str = Field(description="First instant of the period (inclusive), UTC.")
    end: str = Field(description="End of the period (exclusive), UTC; the evaluation instant.")
    days: int


class ManifestRef(_Out):
    """Where the manifest and rules of one period end were read."""

    pinned: bool = Field(description="True when read from a commit; false for files on disk.")
    commit: str | None = None
    committed_at: str | None = None
    root: str = Field(description="The portfolio root, relative to the repository ('.' for its root).")
    note: str | None = None


class DataSource(_Out):
    source: str = Field(description="The adapter or file source of the records (provenance.source).")
    records: int
    days_with_data: int
    coverage: float = Field(description="Days with data / days in the period.")
    first_day: str | None = None
    last_day: str | None = None
    cost_basis: list[str] = Field(default_factory=list)


class DataLag(_Out):
    """Hours between the end of a record's window and when its data was fetched."""

    records: int
    median_hours: float
    max_hours: float


class Provenance(_Out):
    portfolio_id: str
    portfolio_name: str
    currency: str
    hours_per_month: float
    cost_basis: str = Field(description="rates.basis of the manifest (effective, list or billed).")
    rates_source: str | None = None
    rates_as_of: str | None = None
    manifest: ManifestRef
    previous_manifest: ManifestRef | None = None
    previous_note: str | None = Field(None, description="Why there is no previous period to compare with.")
    policies: int
    overrides: list[Override] = Field(default_factory=list)
    residency_files: int
    days_with_data: int = Field(description="Days of the period with any measured residency.")
    coverage: float
    data_sources: list[DataSource] = Field(default_factory=list)
    data_lag: DataLag | None = None


# ---------------------------------------------------------------------------- summary


class Metric(_Out):
    name: str
    unit: Literal["money", "gpus", "ratio", "count"]
    value: float | None = None
    previous: float | None = None
    change: float | None = None
    change_pct: float | None = None
    note: str | None = None


class ExecutiveSummary(_Out):
    residency_cost: Metric
    warm_gpu_floor: Metric
    attributed_share: Metric
    lifecycle_overhead_share: Metric
    open_blocking_findings: Metric


# ---------------------------------------------------------------------------- residency by team


class TeamRow(_Out):
    team: str
    cost_center: str | None = None
    models: int
    deployments: int
    gpu_hours: float | None = None
    warm_replica_hours: float | None = None
    cost: float | None = None
    previous_cost: float | None = None
    change: float | None = None
    change_pct: float | None = None
    estimate: float | None = Field(
        None, description="Signed monthly_expected of the team's versions, pro rata for the days with data."
    )
    variance_pct: float | None = None
    variance_action: str | None = Field(
        None, description="within 5%: note; 5-10%: investigate; 10-20%: corrective plan; above: escalate."
    )
    requests: float | None = None
    tokens_out: float | None = None
    cost_per_1k_requests: float | None = None
    cost_per_1m_tokens_out: float | None = None
    gpu_util_avg: float | None = None


class TeamResidency(_Out):
    owners: list[TeamRow] = Field(
        default_factory=list, description="By the model's owner_team (accountability)."
    )
    consumers: list[TeamRow] = Field(
        default_factory=list,
        description="By the deployment's owner_team, else the model's first consumer team (showback).",
    )


# ---------------------------------------------------------------------------- lifecycle


class StageRow(_Out):
    stage: str
    versions: int
    deployments: int
    warm_gpus: int
    floor_monthly: float
    cost: float | None = None
    cost_share: float | None = None
    previous_cost: float | None = None


class MonthCost(_Out):
    month: str = Field(description="YYYY-MM (the part of the month inside the period).")
    days_with_data: int
    by_stage: dict[str, float]


class CanaryFootprint(_Out):
    model: str
    canary: str
    incumbent: str | None = None
    canary_cost: float | None = None
    incumbent_cost: float | None = None
    share: float | None = Field(None, description="canary ÷ (canary + incumbent).")
    basis: Literal["measured", "floor"]


class Clock(_Out):
    target: str
    stage: Literal["canary", "shadow"]
    started_at: str
    age_days: float
    limit_days: float
    past_limit_days: float | None = None


class AgeStats(_Out):
    count: int
    median_days: float | None = None
    max_days: float | None = None
    past_limit: int


class FallbackStandby(_Out):
    target: str
    for_version: str
    floor_monthly: float | None = None
    cost: float | None = None
    requests: float | None = None
    review_by: str
    last_drill_at: str | None = None
    last_activated_at: str | None = None


class Lifecycle(_Out):
    by_stage: list[StageRow]
    by_month: list[MonthCost] = Field(default_factory=list)
    canary_footprint: list[CanaryFootprint] = Field(default_factory=list)
    canary_footprint_share: float | None = None
    clocks: list[Clock] = Field(default_factory=list)
    canary_ages: AgeStats
    shadow_ages: AgeStats
    fallbacks: list[FallbackStandby] = Field(default_factory=list)


# ---------------------------------------------------------------------------- exit criteria


class ExitReason(_Out):
    policy_id: str
    reason: str
    limit: str | None = Field(None, description="The date the version passed, when there is one.")
    days_past: float | None = None
    message: str


class PastExit(_Out):
    target: str
    model: str
    version: str
    stage: str
    owner_team: str
    reasons: list[ExitReason]
    monthly_cost: float | None = None
    cost_basis: Literal["measured", "floor"] | None = None
    recommended_action: str
    status: Literal["open", "waived"]
    exception_id: str | None = None
    exception_expires_at: str | None = None


# ---------------------------------------------------------------------------- estimates


class EstimateRow(_Out):
    target: str
    stage: str
    estimate_monthly: float | None = None
    floor_monthly: float | None = None
    actual_monthly: float | None = Field(None, description="Measured run rate over the days with data.")
    error_pct: float | None = None
    ceiling: float | None = Field(None, description="Lowest monthly_cost_ceiling of a valid sign-off.")
    ceiling_breached: bool = False
    days_with_data: int = 0


class Estimates(_Out):
    rows: list[EstimateRow] = Field(default_factory=list)
    total_estimate: float | None = None
    total_actual: float | None = None
    error_pct: float | None = None


# ---------------------------------------------------------------------------- idle capacity


class IdleRow(_Out):
    target: str
    deployment: str
    stage: str
    replicas_min: int
    accelerator: str
    gpus_per_replica: int
    gpu_util_avg: float
    util_floor: float
    idle_days: int
    days_with_data: int
    idle_gpu_hours: float
    floor_monthly: float | None = None
    saving_lower_by_one: float | None = Field(None, description="Monthly saving of replicas.min − 1.")
    saving_scale_to_zero: float | None = None


class IdleCapacity(_Out):
    rows: list[IdleRow] = Field(default_factory=list)
    idle_gpu_hours: float | None = None
    saving_lower_by_one: float | None = None
    saving_scale_to_zero: float | None = None


# ---------------------------------------------------------------------------- attribution


class UnattributedReason(_Out):
    reason: str
    records: int
    cost: float


class UnknownDeployment(_Out):
    deployment: str
    records: int
    cost: float
    known_in_previous: str | None = Field(
        None, description="The version that declared it at the previous period's end, if any."
    )


class AttributionGap(_Out):
    target: str
    missing: list[str]


class Attribution(_Out):
    total_cost: float | None = None
    attributed_cost: float | None = None
    unattributed_cost: float | None = None
    attributed_share: float | None = None
    by_reason: list[UnattributedReason] = Field(default_factory=list)
    unknown_deployments: list[UnknownDeployment] = Field(default_factory=list)
    gaps: list[AttributionGap] = Field(default_factory=list)
    not_measured: list[str] = Field(
        default_factory=list, description="Warm deployments with no measured residency in the period."
    )


# ---------------------------------------------------------------------------- governance


class PolicyRate(_Out):
    policy_id: str
    severity: str
    enforcement: str = Field(description="The policy's enforcement in the audit context.")
    passed: int
    failed: int
    errors: int
    waived: int
    skipped: int
    pass_rate: float | None = Field(None, description="pass ÷ (pass + fail + error + waived).")


class ExceptionState(_Out):
    id: str
    policy: str
    target: str | None = None
    expires_at: str
    state: Literal["active", "expiring", "expired", "not yet active", "inactive"]
    expires_in_days: float
    waived: int = Field(description="Findings it waived at the period end.")
    problems: list[str] = Field(default_factory=list)


class ExpiringSignoff(_Out):
    target: str
    role: str
    by: str
    expires_at: str
    days_left: float


class Governance(_Out):
    findings: Summary
    open_blocking: int
    opened: int | None = Field(None, description="Failing findings new since the previous period end.")
    closed: int | None = Field(None, description="Failing findings of the previous period end now gone.")
    policies: list[PolicyRate] = Field(default_factory=list)
    exceptions: list[ExceptionState] = Field(default_factory=list)
    signoffs_expiring: list[ExpiringSignoff] = Field(default_factory=list)
    signoffs_expired: int = Field(0, description="Expired sign-offs still on versions that are not retired.")


# ---------------------------------------------------------------------------- churn


class Transition(_Out):
    target: str
    from_stage: str | None = Field(None, description="null: absent at the previous period end.")
    to_stage: str | None = Field(None, description="null: removed from the manifest.")
    kind: Literal["entered", "exited", "added", "changed"] = Field(
        description="entered: into canary, shadow or production; exited: retired or removed; "
        "added: new in another stage; changed: any other stage change."
    )
    since: str | None = Field(None, description="When it entered its stage (git history), if known.")


class FloorPoint(_Out):
    at: str
    commit: str | None = None
    warm_gpus: int | None = None
    floor_monthly: float | None = None


class Churn(_Out):
    available: bool = Field(description="False when there is no previous period end to compare with.")
    transitions: list[Transition] = Field(default_factory=list)
    entered: int | None = None
    exited: int | None = None
    warm_gpus_previous: int | None = None
    warm_gpus: int
    warm_gpus_change: int | None = None
    floor_monthly_previous: float | None = None
    floor_monthly: float
    floor_monthly_change: float | None = None
    models_previous: int | None = None
    models: int
    versions_previous: int | None = None
    versions: int
    floor_trend: list[FloorPoint] = Field(default_factory=list)


# ---------------------------------------------------------------------------- decisions


class Decision(_Out):
    kind: Literal["exit", "entry", "re-affirm", "right-size", "exception"]
    target: str
    action: str
    monthly_impact: float | None = Field(
        None, description="Monthly cost the decision saves (negative) or adds (positive)."
    )
    because: str
    refs: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------------------- evidence


class EvidenceFile(_Out):
    role: Literal["manifest", "previous-manifest", "policy", "residency"]
    path: str
    sha256: str
    commit: str | None = Field(None, description="The commit it was read from; null for a file on disk.")


class Evidence(_Out):
    engine_version: str
    cel_backend: str
    pack_version: str
    manifest_commit: str | None = None
    previous_commit: str | None = None
    command: str = Field(description="The command that reproduces this report from the same inputs.")
    files: list[EvidenceFile]


# ---------------------------------------------------------------------------- the report


class AuditReport(_Out):
    schema_version: int = SCHEMA_VERSION
    kind: Literal["audit"] = "audit"
    tool: Tool
    period: PeriodInfo
    previous_period: PeriodInfo
    as_of: str
    context: Literal["audit"] = "audit"
    exit_code: int = Field(description="The command's exit code under its --fail-on.")
    provenance: Provenance
    missing: list[str] = Field(default_factory=list, description="Data the report could not use, and why.")
    summary: ExecutiveSummary
    teams: TeamResidency
    lifecycle: Lifecycle
    past_exit: list[PastExit]
    estimates: Estimates
    idle: IdleCapacity
    attribution: Attribution
    governance: Governance
    churn: Churn
    decisions: list[Decision]
    evidence: Evidence
