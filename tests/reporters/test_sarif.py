"""SARIF 2.1.0: schema-valid, rules from policy metadata, suppressed waivers, fingerprints."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from policy_engine.models.report import Finding, Report
from policy_engine.reporters import sarif

FindingFactory = Callable[..., Finding]
ReportFactory = Callable[..., Report]

# The official OASIS SARIF 2.1.0 schema, vendored so the test runs on any checkout.
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"


@pytest.fixture(scope="module")
def sarif_schema() -> dict[str, Any]:
    if not SCHEMA_PATH.is_file():
        pytest.skip(f"SARIF 2.1.0 SCHEMA NOT FOUND at {SCHEMA_PATH}: SARIF output is NOT being validated")
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def _validate(log: dict[str, Any], schema: dict[str, Any]) -> None:
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(log), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def _run(report: Report) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(sarif.render(report))
    (run,) = log["runs"]
    return dict(run)


def _results_by_target(report: Report) -> dict[str, dict[str, Any]]:
    return {r["properties"]["target"]: r for r in _run(report)["results"]}


def test_valid_against_the_official_schema(report: Report, sarif_schema: dict[str, Any]) -> None:
    log = json.loads(sarif.render(report))
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-schema-2.1.0.json")
    _validate(log, sarif_schema)


def test_output_is_indented_json_ending_in_newline_and_deterministic(report: Report) -> None:
    text = sarif.render(report)
    assert text.endswith("}\n")
    assert text.startswith('{\n  "$schema": ')
    assert text == sarif.render(report.model_copy(deep=True))


def test_one_rule_per_policy_from_its_metadata(report: Report) -> None:
    driver = _run(report)["tool"]["driver"]
    assert driver["name"] == "policy-engine"
    assert driver["version"] == "0.1.0"
    assert "informationUri" not in driver
    rules = driver["rules"]
    assert [r["id"] for r in rules] == [p.id for p in report.policies]

    canary = rules[0]
    assert canary["name"] == "CanaryMaxDuration"
    assert canary["shortDescription"] == {"text": "Canaries are decided within a bounded time"}
    assert canary["fullDescription"]["text"].startswith("Canary deployments double residency")
    assert "Remediation:\n- Promote it, roll it back" in canary["help"]["text"]
    assert "**Remediation**" in canary["help"]["markdown"]
    assert "canary\\_extension" in canary["help"]["markdown"]
    assert canary["defaultConfiguration"] == {"level": "error"}
    assert canary["properties"]["tags"] == ["canary", "residency"]

    levels = {r["id"]: r["defaultConfiguration"]["level"] for r in rules}
    assert levels == {
        "canary.max-duration": "error",
        "production.entry.four-signoffs": "error",
        "deployment.util-floor": "warning",
        "signoff.verified": "note",
        "portfolio.unattributed-cost": "warning",
    }
    # no rationale: the title stands in, so fullDescription is never empty
    verified = rules[3]
    assert verified["fullDescription"] == {"text": "Sign-offs are verified"}


def test_results_only_for_fail_error_waived_pre_existing(report: Report) -> None:
    results = _run(report)["results"]
    statuses = [r["properties"]["status"] for r in results]
    assert sorted(statuses) == ["error", "fail", "fail", "fail", "fail", "pre_existing", "waived"]
    targets = [r["properties"]["target"] for r in results]
    assert "assistant-llm-small@1" not in targets  # pass
    assert "doc-summarizer@1/docsum-v1-use1" not in targets  # skip
    # report order is kept
    expected = [f.target for f in report.findings if f.status in ("fail", "error", "waived", "pre_existing")]
    assert targets == expected


def test_rule_index_points_at_the_rule(report: Report) -> None:
    run = _run(report)
    rules = run["tool"]["driver"]["rules"]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_levels(report: Report) -> None:
    by_target = _results_by_target(report)
    assert by_target["assistant-llm@3"]["level"] == "error"  # fail, severity error
    assert by_target["assistant-llm@3/asst-v3-use1"]["level"] == "warning"  # fail, warning
    assert by_target["assistant-llm@2/signoff:finance:marta-f"]["level"] == "note"  # fail, info
    assert by_target["doc-summarizer@1"]["level"] == "error"  # status error
    assert by_target["embedding-encoder@2"]["level"] == "note"  # pre-existing


def test_error_status_is_level_error_whatever_the_severity(
    make_finding: FindingFactory, make_report: ReportFactory
) -> None:
    finding = make_finding(
        "deployment.util-floor", "a@1/d", "error", severity="info", file="models/a.yaml", line=3
    )
    (result,) = _run(make_report([finding]))["results"]
    assert result["level"] == "error"


def test_message_location_and_fingerprint(report: Report) -> None:
    result = _results_by_target(report)["assistant-llm@3"]
    assert result["message"]["text"] == (
        "canary assistant-llm@3 has run 20d: 100% of traffic, over 14d\n"
        "started 2025-06-10\n"
        "Promote it, roll it back, or extend it."
    )
    (location,) = result["locations"]
    assert location["physicalLocation"] == {
        "artifactLocation": {"uri": "models/assistant-llm.yaml", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 42, "startColumn": 7},
    }
    finding = next(f for f in report.findings if f.target == "assistant-llm@3")
    assert result["partialFingerprints"] == {"policyEngine/v1": finding.fingerprint}
    assert result["properties"]["blocking"] is True
    assert result["properties"]["exception_id"] is None


def test_every_result_has_the_finding_fingerprint(report: Report) -> None:
    fingerprints = {f.target: f.fingerprint for f in report.findings}
    for result in _run(report)["results"]:
        target = result["properties"]["target"]
        assert result["partialFingerprints"]["policyEngine/v1"] == fingerprints[target]
        assert len(fingerprints[target]) == 16


def test_region_without_column_and_no_message_suffix_without_remediation(report: Report) -> None:
    by_target = _results_by_target(report)
    region = by_target["assistant-llm@3/asst-v3-use1"]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 58}
    signoff = by_target["assistant-llm@2/signoff:finance:marta-f"]
    assert signoff["message"]["text"] == "sign-off by marta-f is declared, not verified"


def test_finding_without_file_has_no_locations(report: Report) -> None:
    result = _results_by_target(report)["portfolio"]
    assert "locations" not in result
    assert result["ruleId"] == "portfolio.unattributed-cost"
    assert result["message"]["text"] == (
        "12.5% of GPU cost (3,100 USD) is unattributed\nLabel the workloads."
    )


def test_waived_finding_is_a_suppressed_result(report: Report) -> None:
    results = _run(report)["results"]
    suppressed = [r for r in results if "suppressions" in r]
    assert len(suppressed) == 1
    (waived,) = suppressed
    assert waived["suppressions"] == [
        {"kind": "external", "status": "accepted", "justification": "exception EXC-2025-007"}
    ]
    assert waived["properties"]["status"] == "waived"
    assert waived["properties"]["exception_id"] == "EXC-2025-007"
    assert waived["properties"]["blocking"] is False


def test_file_names_become_valid_uri_references(
    make_finding: FindingFactory, make_report: ReportFactory, sarif_schema: dict[str, Any]
) -> None:
    finding = make_finding("canary.max-duration", "a@1", "fail", file="models/team a/x#1:y.yaml", line=1)
    text = sarif.render(make_report([finding]))
    _validate(json.loads(text), sarif_schema)
    (result,) = json.loads(text)["runs"][0]["results"]
    uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "models/team%20a/x%231%3Ay.yaml"


def test_finding_of_an_unlisted_policy_still_gets_a_rule(
    make_finding: FindingFactory, make_report: ReportFactory, sarif_schema: dict[str, Any]
) -> None:
    finding = make_finding("org.custom-check", "a@1", "fail", severity="warning", file="m.yaml")
    report = make_report([finding])
    log = json.loads(sarif.render(report))
    _validate(log, sarif_schema)
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert rules[-1]["id"] == "org.custom-check"
    assert rules[-1]["defaultConfiguration"] == {"level": "warning"}
    (result,) = log["runs"][0]["results"]
    assert result["ruleIndex"] == len(rules) - 1


def test_empty_report_is_valid(make_report: ReportFactory, sarif_schema: dict[str, Any]) -> None:
    log = json.loads(sarif.render(make_report([])))
    _validate(log, sarif_schema)
    assert log["runs"][0]["results"] == []
    assert len(log["runs"][0]["tool"]["driver"]["rules"]) == 5
