"""JSON report: written in pieces that join to exactly the report's own JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from policy_engine.models.report import Finding, Location, Override, Report
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
    assert b"".join(pieces).decode() == report.model_dump_json(indent=2) + "\n"
    assert len(pieces) == (1 if count == 0 else 2 + -(-count // PIECE))
    assert [f["target"] for f in json.loads(b"".join(pieces))["findings"]] == [
        f.target for f in report.findings
    ]


def test_a_findings_key_inside_a_setting_is_left_alone(
    make_finding: FindingFactory, make_report: ReportFactory
) -> None:
    report = make_report([make_finding("p.x", "m@1", "fail")])
    odd = Override(policy_id="p.x", setting="params.shape", default={"findings": []}, value={}, source="x")
    report = report.model_copy(update={"overrides": [odd, *report.overrides]})
    assert b"".join(json_.render(report)).decode() == report.model_dump_json(indent=2) + "\n"


@pytest.mark.parametrize(
    "given",
    [
        {},  # every default
        {"file": "models/a.yaml", "line": 3, "column": 5, "json_path": "$.versions[0]"},
    ],
)
def test_a_location_made_without_validation_is_the_validated_one(given: dict[str, Any]) -> None:
    made, validated = Location.made(**given), Location(**given)
    assert made == validated
    assert made.model_dump_json() == validated.model_dump_json()
    assert made.model_fields_set == validated.model_fields_set


def test_a_finding_made_without_validation_is_the_validated_one() -> None:
    given: dict[str, Any] = {
        "fingerprint": "0" * 16,
        "policy_id": "signoff.expiry",
        "validation": "0",
        "target": "a@1/signoff:ml:bob",
        "model": "a",
        "version": "1",
        "status": "fail",
        "severity": "warning",
        "enforcement": "soft",
        "blocking": False,
        "message": "ml sign-off by bob expired",
        "values": {"params.warn_days": 30, "days_left": -3.5},
        "location": Location(file="models/a.yaml", line=3),
    }
    made, validated = Finding.made(**given), Finding(**given)
    assert made == validated
    assert made.model_dump_json() == validated.model_dump_json()
    assert made.model_fields_set == validated.model_fields_set
    # Defaults made by a factory are fresh for each object, as pydantic makes them.
    bare = {k: v for k, v in given.items() if k not in ("values", "location")}
    one, two = Finding.made(**bare), Finding.made(**bare)
    assert one == Finding(**bare)
    assert one.values == {}
    assert one.values is not two.values
    # What validation would refuse by name is still refused.
    with pytest.raises(TypeError, match="unknown fields \\['colour'\\]"):
        Finding.made(**given, colour="red")
    with pytest.raises(TypeError, match="missing fields \\['message'\\]"):
        Finding.made(**{k: v for k, v in given.items() if k != "message"})
