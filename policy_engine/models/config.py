"""``.policy-engine.yaml``: an organisation's overrides of the pack and ledger settings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from policy_engine.models.policy import Enforcement, Severity
from policy_engine.models.portfolio import Role
from policy_engine.models.types import Strict

# A lifetime in days: finite, not negative, at most a century (a timedelta has a finite range).
LifetimeDays = Annotated[float, Field(ge=0, le=36500, allow_inf_nan=False)]


class PolicyOverride(Strict):
    severity: Severity | None = None
    enforcement: Enforcement | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class PoliciesConfig(Strict):
    disable: list[str] = Field(default_factory=list, description="Policy ids not to evaluate.")
    overrides: dict[str, PolicyOverride] = Field(default_factory=dict)


def _default_lifetimes() -> dict[Severity, float]:
    return {"error": 90.0, "warning": 180.0, "info": 180.0}


class ExceptionsConfig(Strict):
    approver_roles: list[Role] | None = Field(
        None, description="Roles that must each approve an exception (default: authority setting)."
    )
    max_lifetime_days: dict[Severity, LifetimeDays] = Field(
        default_factory=_default_lifetimes,
        description="Longest created_at → expires_at span per severity of the waived policy.",
    )


class ConfigFile(Strict):
    """Optional; every setting that weakens a default shows up in the report's overrides."""

    policies: PoliciesConfig = Field(default_factory=PoliciesConfig)
    exceptions: ExceptionsConfig = Field(default_factory=ExceptionsConfig)
    cel_backend: Literal["auto", "cpp", "python"] | None = None
    signoff_verification: Literal["github-reviews", "git", "declared"] | None = None
