"""Policy files: ``apiVersion: policy-engine/v1``, ``kind: Policy``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from policy_engine.models.types import Name, Strict

Severity = Literal["error", "warning", "info"]
Scope = Literal["portfolio", "model", "version", "deployment", "signoff", "exception", "endpoint"]
Level = Literal["advisory", "soft", "hard"]
Requirement = Literal["measured", "history", "change"]
CONTEXTS = ("pre-commit", "pull-request", "audit")
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}


class Metadata(Strict):
    id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)+$",
        description="Namespaced and stable, e.g. canary.max-duration.",
    )
    title: str | None = None
    severity: Severity
    tags: list[str] = Field(default_factory=list)
    rationale: str | None = None


class Param(Strict):
    default: Any
    description: str | None = None


class Variable(Strict):
    name: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    expression: Name


class Validation(Strict):
    name: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    expression: Name
    message: Name
    messageExpression: str | None = None
    remediation: str | None = None


class Enforcement(Strict):
    pre_commit: Level | None = Field(None, alias="pre-commit")
    pull_request: Level | None = Field(None, alias="pull-request")
    audit: Level | None = None


class Spec(Strict):
    scope: Scope
    match: str | None = Field(None, description="CEL; false means not applicable (skip).")
    requires: list[Requirement] = Field(default_factory=list)
    params: dict[str, Param] = Field(default_factory=dict)
    variables: list[Variable] = Field(default_factory=list)
    validations: list[Validation] = Field(min_length=1)
    enforcement: Enforcement | None = None

    @field_validator("params", mode="before")
    @classmethod
    def _plain_defaults(cls, value: Any) -> Any:
        """``params: {max_days: 14}`` is shorthand for ``{max_days: {default: 14}}``."""
        if not isinstance(value, dict):
            return value
        return {
            name: spec if isinstance(spec, dict) and "default" in spec else {"default": spec}
            for name, spec in value.items()
        }


class PolicyFile(Strict):
    apiVersion: Literal["policy-engine/v1"]
    kind: Literal["Policy"]
    metadata: Metadata
    spec: Spec
