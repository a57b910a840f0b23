"""The review as versioned JSON (``schemas/audit.schema.json``): the same tables, stable keys."""

from __future__ import annotations

from policy_engine.audit.model import AuditReport


def render(report: AuditReport) -> str:
    return report.model_dump_json(indent=2) + "\n"
