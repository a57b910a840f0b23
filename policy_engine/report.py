"""Assemble the serialisable report from an evaluation outcome."""

from __future__ import annotations

from policy_engine import __version__
from policy_engine.engine import Context, Outcome, enforcement_level
from policy_engine.errors import ExitCode
from policy_engine.models.report import STATUSES, Override, PolicyInfo, Report, Summary, Tool
from policy_engine.models.types import format_timestamp
from policy_engine.policies import CompiledPolicy

PACK_VERSION = __version__


def policy_info(policy: CompiledPolicy) -> PolicyInfo:
    doc = policy.policy.doc
    return PolicyInfo(
        id=doc.metadata.id,
        title=doc.metadata.title,
        severity=policy.policy.severity,
        scope=doc.spec.scope,
        source=policy.policy.source.file,
        rationale=doc.metadata.rationale.strip() if doc.metadata.rationale else None,
        remediation=[v.remediation for v in policy.validations if v.remediation],
        enforcement={c: enforcement_level(policy, c) for c in ("pre-commit", "pull-request", "audit")},
        tags=doc.metadata.tags,
    )


def build_report(
    outcome: Outcome,
    policies: list[CompiledPolicy],
    overrides: list[Override],
    *,
    as_of: str,
    context: Context,
    backend: str,
    base: str | None = None,
    head: str | None = None,
) -> Report:
    blocking = sum(1 for f in outcome.findings if f.blocking)
    exit_code = ExitCode.BLOCKING if blocking else ExitCode.OK
    return Report(
        tool=Tool(version=__version__, cel_backend=backend, pack_version=PACK_VERSION),
        as_of=as_of,
        context=context,
        base=base,
        head=head,
        summary=Summary(
            by_status={s: outcome.by_status.get(s, 0) for s in STATUSES},
            by_severity={s: outcome.by_severity.get(s, 0) for s in ("error", "warning", "info")},
            blocking=blocking,
            exit_code=int(exit_code),
        ),
        policies=sorted((policy_info(p) for p in policies), key=lambda p: p.id),
        overrides=overrides,
        findings=outcome.findings,
    )


__all__ = ["build_report", "format_timestamp", "policy_info"]
