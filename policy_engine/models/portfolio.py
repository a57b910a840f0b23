"""The portfolio repository: ``portfolio.yaml``, ``models/*.yaml`` and ``exceptions.yaml``."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from policy_engine.models.types import (
    Count,
    Duration,
    Name,
    Quantity,
    Strict,
    Timestamp,
    VersionId,
)

Role = Literal["platform", "ml", "app", "finance"]
Stage = Literal["proposed", "canary", "shadow", "production", "fallback", "deprecated", "retired"]
ALL_ROLES: list[Role] = ["platform", "ml", "app", "finance"]
_COST_ROLES: list[Role] = ["platform", "finance"]

# ---------------------------------------------------------------------------- portfolio.yaml


class PortfolioMeta(Strict):
    id: Name
    name: str
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    hours_per_month: Quantity = 730.0
    timezone: Literal["UTC"] = "UTC"
    review_cadence: Literal["quarterly", "monthly"] = "quarterly"
    cost_authority_team: str | None = None


class Team(Strict):
    id: Name
    function: Role
    cost_center: Name
    github_team: str | None = None
    slack: str | None = None


class PersonLimits(Strict):
    approve_monthly_delta: Quantity = Field(
        0.0, description="Largest projected monthly residency increase this person may approve."
    )


class Person(Strict):
    login: Name = Field(description="GitHub login; sign-offs name people by it.")
    name: str
    email: str | None = None
    team: Name
    roles: list[Role] = Field(min_length=1)
    limits: PersonLimits = Field(default_factory=PersonLimits)
    active_until: Timestamp | None = None


class CostTier(Strict):
    max_monthly_delta: Quantity | None = Field(description="Upper bound of the tier; null = no bound.")
    required_roles: list[Role]
    min_finance_limit_covers_delta: bool = False


class Authority(Strict):
    signoff_roles_for_production: list[Role] = Field(default_factory=lambda: list(ALL_ROLES))
    cost_tiers: list[CostTier] = Field(default_factory=list)
    signoff_max_validity: Duration = "2160h"
    exception_approver_roles: list[Role] = Field(default_factory=lambda: list(_COST_ROLES))
    rules_change_roles: list[Role] = Field(default_factory=lambda: list(_COST_ROLES))


class Rates(Strict):
    basis: Literal["effective", "list", "billed"] = "effective"
    source: str | None = None
    as_of: Timestamp | None = None
    gpu_hour: dict[str, Quantity] = Field(description="Price per GPU-hour by accelerator type.")
    overhead_per_replica_hour: Quantity = 0.0


class PortfolioFile(Strict):
    """``portfolio.yaml``: who may approve what, what GPUs cost, and policy parameters."""

    schema_version: Literal[1]
    kind: Literal["InferencePortfolio"]
    portfolio: PortfolioMeta
    teams: list[Team] = Field(default_factory=list)
    roster: list[Person] = Field(default_factory=list)
    authority: Authority = Field(default_factory=Authority)
    rates: Rates
    policy_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="{policy id: {parameter: value}}; overrides pack defaults.",
    )


# ---------------------------------------------------------------------------- models/*.yaml


class Registry(Strict):
    kind: Literal["mlflow", "sagemaker", "vertex", "hf", "other"]
    ref: str


class Slo(Strict):
    p95_latency_ms: Quantity
    ttft_p95_ms: Quantity | None = None
    availability: Quantity | None = None
    expected_peak_rps: Quantity


class EvalCriterion(Strict):
    type: Name
    slice: str | None = None
    min: Quantity | None = None
    max: Quantity | None = None
    non_regression_tolerance: Quantity | None = None


class LoadTestCriterion(Strict):
    min_peak_multiple: Quantity = 1.0
    max_age: Duration = "720h"


class ResidencyCriterion(Strict):
    max_monthly_expected: Quantity | None = None


class EntryCriteria(Strict):
    eval: list[EvalCriterion] = Field(default_factory=list)
    load_test: LoadTestCriterion | None = None
    residency: ResidencyCriterion | None = None


class ExitCriteriaDefaults(Strict):
    min_traffic_share: Quantity | None = None
    traffic_window: Duration | None = None
    idle_util_floor: Quantity | None = None


class EvalMetric(Strict):
    type: Name
    value: Quantity
    slice: str | None = None


class EvalBaseline(Strict):
    version: VersionId
    metrics: list[EvalMetric] = Field(default_factory=list)


class EvalEvidence(Strict):
    dataset: str | None = None
    evaluated_at: Timestamp | None = None
    run_ref: str | None = None
    metrics: list[EvalMetric] = Field(default_factory=list)
    baseline: EvalBaseline | None = None


class LoadTestEvidence(Strict):
    tool: str | None = None
    at: Timestamp
    target_rps: Quantity | None = None
    achieved_rps: Quantity
    p95_latency_ms: Quantity
    ttft_p95_ms: Quantity | None = None
    error_rate: Quantity | None = None
    replicas_under_test: Count = Field(ge=1)
    report_uri: str | None = None


class UnitCostTargets(Strict):
    per_1k_requests: Quantity | None = None
    per_1m_tokens: Quantity | None = None


class ResidencyEstimate(Strict):
    method: Literal["floor", "expected"] | None = None
    monthly_floor: Quantity | None = None
    monthly_expected: Quantity | None = None
    unit_cost_targets: UnitCostTargets | None = None
    assumptions: str | None = None


class EntryEvidence(Strict):
    eval: EvalEvidence | None = None
    load_test: LoadTestEvidence | None = None
    residency_estimate: ResidencyEstimate | None = None


class Controller(Strict):
    kind: str
    ref: str


class Canary(Strict):
    of_version: VersionId
    started_at: Timestamp
    max_duration: Duration
    traffic_percent: Quantity = Field(ge=0, le=100)
    controller: Controller | None = None
    decision: Literal["pending", "promote", "rollback"] | None = None


class Shadow(Strict):
    of_version: VersionId
    started_at: Timestamp
    max_duration: Duration
    sampling_percent: Quantity = Field(ge=0, le=100)
    controller: Controller | None = None


class VersionRef(Strict):
    model: Name
    version: VersionId


class Fallback(Strict):
    for_version: VersionRef = Field(description="The production version this one stands in for.")
    trigger: str | None = None
    review_by: Timestamp
    last_drill_at: Timestamp | None = None
    last_activated_at: Timestamp | None = None
    max_warm_replicas: Count | None = None


class ExitCriteria(Strict):
    retire_by: Timestamp | None = None
    replacement: VersionRef | None = None
    min_traffic_share: Quantity | None = None
    traffic_window: Duration | None = None


class Replicas(Strict):
    min: Count
    max: Count


class Accelerator(Strict):
    type: Name
    count: Count = Field(ge=1, description="GPUs per replica.")
    mig_profile: str | None = None


class Selectors(Strict):
    k8s_labels: dict[str, str] = Field(default_factory=dict)
    focus_tags: dict[str, str] = Field(default_factory=dict)
    focus_resource_ids: list[str] = Field(default_factory=list)
    prometheus: dict[str, str] = Field(default_factory=dict)

    @field_validator("prometheus")
    @classmethod
    def _regexes(cls, value: dict[str, str]) -> dict[str, str]:
        """Prometheus label matchers are regular expressions: a broken one is an input error."""
        for label, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{label}: {pattern!r} is not a regular expression ({exc})") from None
        return value


class Deployment(Strict):
    id: Name = Field(description="Globally unique; the join key for measured residency.")
    endpoint: Name
    platform: str | None = None
    cluster: str | None = None
    namespace: str | None = None
    region: Name
    traffic_percent: Quantity = Field(0.0, ge=0, le=100)
    replicas: Replicas
    scale_to_zero: bool = False
    accelerator: Accelerator
    owner_team: str | None = None
    cost_center: str | None = None
    selectors: Selectors = Field(default_factory=Selectors)

    @property
    def warm(self) -> bool:
        """Keeps replicas warm: not scale-to-zero, and at least one replica."""
        return not self.scale_to_zero and self.replicas.min > 0


SignoffKind = Literal[
    "promotion", "cost_ceiling", "canary_extension", "retention_exception", "fallback_standby"
]


class SignoffScope(Strict):
    kind: SignoffKind
    subject_digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    monthly_cost_ceiling: Quantity | None = None


class SignoffEvidence(Strict):
    pr: str | None = None
    review_id: int | None = None


class Signoff(Strict):
    role: Role
    by: Name = Field(description="Roster login of the person signing.")
    at: Timestamp
    expires_at: Timestamp
    scope: SignoffScope
    evidence: SignoffEvidence | None = None


class Version(Strict):
    version: VersionId
    stage: Stage
    requested_stage: Stage | None = None
    registry_version: VersionId | None = None
    registry_alias: str | None = None
    artifact_uri: str | None = None
    created_at: Timestamp | None = None
    entry_evidence: EntryEvidence | None = None
    canary: Canary | None = None
    shadow: Shadow | None = None
    fallback: Fallback | None = None
    exit_criteria: ExitCriteria | None = None
    deployments: list[Deployment] = Field(default_factory=list)
    signoffs: list[Signoff] = Field(default_factory=list)


class ModelFile(Strict):
    """``models/<model>.yaml``: one model, its versions, deployments, evidence and sign-offs."""

    id: Name
    description: str | None = None
    owner_team: Name
    consumer_teams: list[str] = Field(default_factory=list)
    platform_team: str | None = None
    cost_center: str | None = None
    task: str | None = None
    modality: str | None = None
    base_model: str | None = None
    registry: Registry | None = None
    slo: Slo | None = None
    entry_criteria: EntryCriteria | None = None
    exit_criteria_defaults: ExitCriteriaDefaults | None = None
    versions: list[Version] = Field(default_factory=list)


# ---------------------------------------------------------------------------- exceptions.yaml


class ExceptionSignoff(Strict):
    role: Role
    by: Name
    at: Timestamp
    expires_at: Timestamp | None = None
    scope: SignoffScope | None = None
    evidence: SignoffEvidence | None = None


class PolicyException(Strict):
    id: Name
    policy: Name = Field(description="Id of the policy this exception waives.")
    target: str | None = Field(None, description="Exact target id, e.g. 'search-reranker@3'.")
    match: str | None = Field(None, description="CEL over the target, instead of an exact target.")
    reason: Name
    ticket: str | None = None
    created_at: Timestamp | None = None
    expires_at: Timestamp
    signoffs: list[ExceptionSignoff] = Field(default_factory=list)


class ExceptionsFile(Strict):
    """``exceptions.yaml``: time-boxed waivers approved by roster members."""

    exceptions: list[PolicyException] = Field(default_factory=list)
