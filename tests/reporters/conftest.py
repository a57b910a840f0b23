"""A hand-built report covering every status, shared by the reporter tests."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from policy_engine.models.report import (
    Finding,
    Override,
    PolicyInfo,
    Report,
    Summary,
    Tool,
)

FindingFactory = Callable[..., Finding]
ReportFactory = Callable[..., Report]

POLICIES = [
    PolicyInfo(
        id="canary.max-duration",
        title="Canaries are decided within a bounded time",
        severity="error",
        scope="version",
        source="builtin:canary.yaml",
        rationale="Canary deployments double residency; an undecided canary is a permanent cost.",
        remediation=["Promote it, roll it back, or add a canary_extension sign-off with a new max_duration."],
        enforcement={"pull-request": "soft"},
        tags=["canary", "residency"],
    ),
    PolicyInfo(
        id="production.entry.four-signoffs",
        title="Production versions carry the four sign-offs",
        severity="error",
        scope="version",
        source="builtin:production.yaml",
        rationale="Cost authority approves every model that stays warm in production.",
        remediation=["Add the missing sign-offs (platform, ml, product, finance)."],
        tags=["signoff", "entry"],
    ),
    PolicyInfo(
        id="deployment.util-floor",
        title="Warm replicas are used",
        severity="warning",
        scope="deployment",
        source="policies/utilisation.yaml",
        rationale="Idle GPUs cost the same as busy ones.",
        remediation=["Lower min_replicas or allow scale-to-zero."],
        tags=["residency", "cost"],
    ),
    PolicyInfo(
        id="signoff.verified",
        title="Sign-offs are verified",
        severity="info",
        scope="signoff",
        source="builtin:signoffs.yaml",
        rationale=None,
        tags=["signoff"],
    ),
    PolicyInfo(
        id="portfolio.unattributed-cost",
        title="Residency cost is attributed",
        severity="warning",
        scope="portfolio",
        source="builtin:portfolio.yaml",
        rationale="Cost nobody owns is cost nobody cuts.",
        remediation=["Label the workloads with portfolio.ai/deployment."],
        tags=["cost"],
    ),
]


def fingerprint(policy_id: str, target: str, validation: str = "0") -> str:
    raw = "\0".join((policy_id, target, validation)).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _finding(
    policy_id: str,
    target: str,
    status: str,
    *,
    severity: str = "error",
    validation: str = "0",
    file: str | None = None,
    line: int | None = None,
    column: int | None = None,
    message: str = "",
    remediation: str | None = None,
    blocking: bool = False,
    enforcement: str = "soft",
    **extra: Any,
) -> Finding:
    return Finding.model_validate(
        {
            "fingerprint": fingerprint(policy_id, target, validation),
            "policy_id": policy_id,
            "validation": validation,
            "target": target,
            "status": status,
            "severity": severity,
            "enforcement": enforcement,
            "blocking": blocking,
            "message": message or f"{policy_id} on {target}",
            "remediation": remediation,
            "location": {"file": file, "line": line, "column": column},
            **extra,
        }
    )


FINDINGS = [
    # blocking failure; message with %, :, "," and a newline; location with column
    _finding(
        "canary.max-duration",
        "assistant-llm@3",
        "fail",
        file="models/assistant-llm.yaml",
        line=42,
        column=7,
        message="canary assistant-llm@3 has run 20d: 100% of traffic, over 14d\nstarted 2025-06-10",
        remediation="Promote it, roll it back, or extend it.",
        blocking=True,
        model="assistant-llm",
        version="3",
        values={"age": "480h", "max_days": 14.0, "traffic_share": 1.0},
    ),
    # advisory warning failure with a named validation and no column
    _finding(
        "deployment.util-floor",
        "assistant-llm@3/asst-v3-use1",
        "fail",
        severity="warning",
        validation="floor",
        enforcement="advisory",
        file="models/assistant-llm.yaml",
        line=58,
        message="GPU utilisation 12% is below the 30% floor",
        remediation="Lower min_replicas.",
        values={"gpu_util_avg": 0.12, "floor": 0.3},
    ),
    # fail-closed error finding, blocking
    _finding(
        "production.entry.four-signoffs",
        "doc-summarizer@1",
        "error",
        file="models/doc-summarizer.yaml",
        line=25,
        column=5,
        message="no such key: signoffs",
        blocking=True,
        values={},
    ),
    # waived by an active exception
    _finding(
        "production.entry.four-signoffs",
        "search-reranker@3",
        "waived",
        file="models/search-reranker.yaml",
        line=12,
        column=5,
        message="search-reranker@3 lacks sign-offs: finance, ml",
        remediation="Add the missing sign-offs.",
        exception_id="EXC-2025-007",
        values={"missing": ["finance", "ml"]},
    ),
    # pre-existing at base, untouched target
    _finding(
        "canary.max-duration",
        "embedding-encoder@2",
        "pre_existing",
        file="models/embedding-encoder.yaml",
        line=40,
        message="canary embedding-encoder@2 has run 30d",
        remediation="Promote it.",
    ),
    # info failure on a sign-off target (colons in the target id)
    _finding(
        "signoff.verified",
        "assistant-llm@2/signoff:finance:marta-f",
        "fail",
        severity="info",
        enforcement="advisory",
        file="models/assistant-llm.yaml",
        line=99,
        column=9,
        message="sign-off by marta-f is declared, not verified",
    ),
    # a skip with a reason
    _finding(
        "deployment.util-floor",
        "doc-summarizer@1/docsum-v1-use1",
        "skip",
        severity="warning",
        validation="floor",
        enforcement="advisory",
        file="models/doc-summarizer.yaml",
        line=55,
        skip_reason="requires measured: no residency data",
    ),
    # a pass
    _finding(
        "canary.max-duration",
        "assistant-llm-small@1",
        "pass",
        file="models/assistant-llm-small.yaml",
        line=25,
        message="within limits",
    ),
    # a failure without any location (portfolio-level computed fact)
    _finding(
        "portfolio.unattributed-cost",
        "portfolio",
        "fail",
        severity="warning",
        enforcement="advisory",
        message="12.5% of GPU cost (3,100 USD) is unattributed",
        remediation="Label the workloads.",
        values={"unattributed_cost": 3100.0, "total_cost": 24800.0},
    ),
]


def _summary(findings: list[Finding], extra: dict[str, int] | None = None) -> Summary:
    by_status: Counter[str] = Counter(f.status for f in findings)
    for status, count in (extra or {}).items():
        by_status[status] += count
    blocking = sum(1 for f in findings if f.blocking)
    return Summary(
        by_status=dict(by_status),
        by_severity=dict(Counter(f.severity for f in findings)),
        blocking=blocking,
        exit_code=1 if blocking else 0,
    )


def build_report(
    findings: list[Finding] | None = None,
    *,
    policies: list[PolicyInfo] | None = None,
    unlisted: dict[str, int] | None = None,
) -> Report:
    findings = sorted(
        FINDINGS if findings is None else findings,
        key=lambda f: (f.location.file or "", f.location.line or 0, f.policy_id, f.target),
    )
    return Report(
        tool=Tool(version="0.1.0", cel_backend="cpp", pack_version="2025.06"),
        as_of="2025-06-30T00:00:00Z",
        context="pull-request",
        base="3f2c1a0",
        head="9e8d7c6",
        summary=_summary(findings, unlisted),
        policies=list(POLICIES if policies is None else policies),
        overrides=[
            Override(
                policy_id="canary.max-duration",
                setting="params.max_days",
                default=14.0,
                value=21.0,
                source="portfolio.yaml",
            )
        ],
        findings=findings,
    )


@pytest.fixture
def report() -> Report:
    """Every status once or more, a waiver, a finding without location, awkward characters."""
    return build_report()


@pytest.fixture
def make_finding() -> FindingFactory:
    return _finding


@pytest.fixture
def make_report() -> ReportFactory:
    return build_report
