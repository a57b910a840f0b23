"""JSON report: written in pieces that join to exactly the report's own JSON."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from policy_engine.models.report import Finding, Override, Report
from policy_engine.reporters import json_

FindingFactory = Callable[..., Finding]
ReportFactory = Callable[..., Report]

PIECE = json_.FINDINGS_PER_PIECE


@pytest.mark.parametrize("count", [0, 1, 2, PIECE - 1, PIECE, PIECE + 1, 2 * PIECE + 7])
def test_pieces_join_to_the_reports_own_json(
    count: int, make_finding: FindingFactory, make_report: ReportFactory
) -> None:
    findings = [
        make_finding("p.x", f"m@{i}", "fail", message=f'line "{i}" – ünïcode', values={"n": i, "l": [i]})
        for i in range(count)
    ]
    report = make_report(findings)
    pieces = list(json_.render(report))
    assert "".join(pieces) == report.model_dump_json(indent=2) + "\n"
    assert len(pieces) == (1 if count == 0 else 2 + -(-count // PIECE))
    assert [f["target"] for f in json.loads("".join(pieces))["findings"]] == [
        f.target for f in report.findings
    ]


def test_a_findings_key_inside_a_setting_is_left_alone(
    make_finding: FindingFactory, make_report: ReportFactory
) -> None:
    report = make_report([make_finding("p.x", "m@1", "fail")])
    odd = Override(policy_id="p.x", setting="params.shape", default={"findings": []}, value={}, source="x")
    report = report.model_copy(update={"overrides": [odd, *report.overrides]})
    assert "".join(json_.render(report)) == report.model_dump_json(indent=2) + "\n"
