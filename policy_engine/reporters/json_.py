"""The versioned JSON report (``schemas/report.schema.json``)."""

from __future__ import annotations

from policy_engine.models.report import Report


def render(report: Report) -> str:
    return report.model_dump_json(indent=2) + "\n"
