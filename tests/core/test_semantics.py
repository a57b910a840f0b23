"""Evaluation semantics on small custom policies: pass, fail, error, skip, waived, messages."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

AS_OF = "2025-06-30T00:00:00Z"

MODEL = """\
id: m
owner_team: ml
versions:
  - version: "1"
    stage: production
    deployments:
      - id: m-1-use1
        endpoint: m
        region: us-east-1
        traffic_percent: 100
        replicas: {min: 1, max: 2}
        accelerator: {type: nvidia-l4, count: 1}
  - version: "2"
    stage: canary
    canary: {of_version: "1", started_at: "2025-06-01T00:00:00Z", max_duration: 14d, traffic_percent: 5}
  - version: "3"
    stage: canary
    canary: {of_version: "1", started_at: "2025-06-25T00:00:00Z", max_duration: 14d, traffic_percent: 5}
"""
V2_LINE = 13

CANARY_AGE = """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: acme.canary-age, severity: error}
spec:
  scope: version
  match: version.stage == 'canary'
  params: {max_days: {default: 14}}
  variables:
    - {name: age, expression: now - timestamp(version.canary.started_at)}
  validations:
    - name: within-limit
      expression: variables.age <= days(params.max_days)
      messageExpression: "'canary ' + version.id + ' has run ' + fmt(variables.age)"
      message: Canary ran too long
      remediation: Promote it or roll it back.
"""

EVAL_DATASET = """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: acme.eval-dataset, severity: error}
spec:
  scope: version
  match: version.stage == 'production'
  validations:
    - expression: version.entry_evidence.eval.dataset != ''
      message: Production versions name their evaluation dataset
"""

FALLBACK_MESSAGE = """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: acme.message-fallback, severity: warning}
spec:
  scope: version
  match: version.stage == 'production'
  validations:
    - expression: "false"
      messageExpression: "'owned by ' + model.no_such_field"
      message: Static fallback message
"""

MEASURED_UTIL = """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: acme.measured-util, severity: error}
spec:
  scope: version
  requires: [measured]
  validations:
    - expression: measured.gpu_util_avg >= 0.3
      message: Warm GPUs are used
"""

WARN_SOFT = """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: acme.warn-soft, severity: warning}
spec:
  scope: version
  match: version.stage == 'production'
  enforcement: {pre-commit: soft, pull-request: soft, audit: soft}
  validations:
    - expression: size(version.deployments) > 1
      message: Production runs in more than one region
"""

WARN_ADVISORY = """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: acme.warn-advisory, severity: warning}
spec:
  scope: version
  match: version.stage == 'production'
  validations:
    - expression: size(version.deployments) > 1
      message: Production runs in more than one region (advisory)
"""


def exceptions(policy_id: str = "acme.canary-age", expires_at: str = "2025-07-10T00:00:00Z") -> str:
    return f"""\
exceptions:
  - id: EXC-1
    policy: {policy_id}
    target: "m@2"
    reason: Load test is scheduled
    created_at: "2025-06-20T00:00:00Z"
    expires_at: "{expires_at}"
    signoffs:
      - {{role: platform, by: pat, at: "2025-06-20T00:00:00Z"}}
      - {{role: finance, by: fin, at: "2025-06-20T01:00:00Z"}}
"""


def write_policies(directory: Path, **policies: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in policies.items():
        (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
    return directory


def check_json(run_cli: Any, root: Path, *args: Any, as_of: str = AS_OF) -> tuple[int, dict[str, Any]]:
    code, stdout, stderr = run_cli("check", root, "--as-of", as_of, "--format", "json", "--all", *args)
    assert code in (0, 1), stderr
    assert "Traceback" not in stderr
    return code, json.loads(stdout)


def finding(report: dict[str, Any], policy_id: str, target: str) -> dict[str, Any]:
    found = [f for f in report["findings"] if f["policy_id"] == policy_id and f["target"] == target]
    assert len(found) == 1, (policy_id, target, report["findings"])
    return found[0]


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only organisation policies, shared by the module."""
    return write_policies(
        tmp_path_factory.mktemp("org") / "org-policies",
        canary=CANARY_AGE,
        dataset=EVAL_DATASET,
        fallback=FALLBACK_MESSAGE,
        measured=MEASURED_UTIL,
    )


@pytest.fixture
def portfolio(write_portfolio: Any) -> Path:
    """A private portfolio a test may change."""
    root: Path = write_portfolio(models={"m.yaml": MODEL})
    return root


@pytest.fixture(scope="module")
def shared_portfolio(tmp_path_factory: pytest.TempPathFactory, portfolio_builder: Any) -> Path:
    """A read-only portfolio, evaluated once for the module."""
    root: Path = portfolio_builder(tmp_path_factory.mktemp("shared") / "portfolio", models={"m.yaml": MODEL})
    return root


@pytest.fixture(scope="module")
def report(run_cli: Any, shared_portfolio: Path, org: Path) -> dict[str, Any]:
    _, result = check_json(run_cli, shared_portfolio, "--no-builtin", "--policies", org)
    return result


def test_no_builtin_loads_only_the_user_directory(report: dict[str, Any], org: Path) -> None:
    ids = [p["id"] for p in report["policies"]]
    assert ids == ["acme.canary-age", "acme.eval-dataset", "acme.measured-util", "acme.message-fallback"]
    sources = {p["id"]: p["source"] for p in report["policies"]}
    assert sources["acme.canary-age"].endswith("org-policies/canary.yaml")
    assert sources["acme.message-fallback"].endswith("org-policies/fallback.yaml")
    assert not any(source.startswith("builtin:") for source in sources.values())
    assert {f["policy_id"] for f in report["findings"]} <= set(ids)


def test_fail_carries_message_remediation_values_and_location(report: dict[str, Any]) -> None:
    failed = finding(report, "acme.canary-age", "m@2")
    assert failed["status"] == "fail"
    assert failed["severity"] == "error"
    assert failed["enforcement"] == "soft"
    assert failed["blocking"] is True
    assert failed["validation"] == "within-limit"
    assert failed["message"] == "canary m@2 has run 29.0d"
    assert failed["remediation"] == "Promote it or roll it back."
    assert failed["values"] == {"params.max_days": 14.0, "age": "29.0d"}
    assert failed["location"]["file"].endswith("models/m.yaml")
    assert failed["location"]["line"] == V2_LINE
    assert failed["location"]["json_path"] == "$.versions[1]"
    assert (failed["model"], failed["version"]) == ("m", "2")
    assert re.fullmatch(r"[0-9a-f]{16}", failed["fingerprint"])


def test_pass(report: dict[str, Any]) -> None:
    passed = finding(report, "acme.canary-age", "m@3")
    assert passed["status"] == "pass"
    assert passed["blocking"] is False


def test_match_false_is_a_skip_with_reason(report: dict[str, Any]) -> None:
    skipped = finding(report, "acme.canary-age", "m@1")
    assert skipped["status"] == "skip"
    assert skipped["blocking"] is False
    assert skipped["skip_reason"] == "not applicable (match is false)"


def test_evaluation_error_blocks_and_names_the_missing_field(report: dict[str, Any]) -> None:
    errored = finding(report, "acme.eval-dataset", "m@1")
    assert errored["status"] == "error"
    assert errored["blocking"] is True
    assert "missing field 'eval'" in errored["message"]
    assert "m@1" in errored["message"]
    assert "eval" in errored["remediation"]


def test_message_expression_that_errors_falls_back_to_message(report: dict[str, Any]) -> None:
    failed = finding(report, "acme.message-fallback", "m@1")
    assert failed["status"] == "fail"
    assert failed["message"] == "Static fallback message"
    assert failed["blocking"] is False  # warning → advisory by default


def test_requires_measured_without_data_is_a_skip_with_reason(report: dict[str, Any]) -> None:
    for target in ("m@1", "m@2", "m@3"):
        skipped = finding(report, "acme.measured-util", target)
        assert skipped["status"] == "skip"
        assert skipped["skip_reason"] == "no measured residency for this target"


def test_summary_counts_every_status(report: dict[str, Any]) -> None:
    by_status = report["summary"]["by_status"]
    listed: dict[str, int] = {}
    for item in report["findings"]:
        listed[item["status"]] = listed.get(item["status"], 0) + 1
    assert {k: v for k, v in by_status.items() if v} == listed
    assert (by_status["fail"], by_status["error"], by_status["pass"]) == (2, 1, 1)
    assert report["summary"]["blocking"] == 2
    assert report["summary"]["exit_code"] == 1


def test_pass_and_skip_are_counted_but_listed_only_with_all(
    run_cli: Any, shared_portfolio: Path, org: Path, report: dict[str, Any]
) -> None:
    code, stdout, _ = run_cli(
        "check", shared_portfolio, "--as-of", AS_OF, "--format", "json", "--no-builtin", "--policies", org
    )
    assert code == 1
    short = json.loads(stdout)
    assert {f["status"] for f in short["findings"]} == {"fail", "error"}
    assert short["summary"] == report["summary"]


def test_fingerprint_ignores_line_numbers(
    run_cli: Any, portfolio: Path, org: Path, report: dict[str, Any]
) -> None:
    model = portfolio / "models" / "m.yaml"
    model.write_text("# moved down by two lines\n#\n" + model.read_text(), encoding="utf-8")
    _, moved = check_json(run_cli, portfolio, "--no-builtin", "--policies", org)
    before = finding(report, "acme.canary-age", "m@2")
    after = finding(moved, "acme.canary-age", "m@2")
    assert after["location"]["line"] == before["location"]["line"] + 2
    assert after["fingerprint"] == before["fingerprint"]


class TestExceptions:
    @pytest.fixture
    def waived_portfolio(self, portfolio: Path) -> Path:
        (portfolio / "exceptions.yaml").write_text(exceptions(), encoding="utf-8")
        return portfolio

    def test_active_exception_turns_fail_into_waived(
        self, run_cli: Any, waived_portfolio: Path, org: Path
    ) -> None:
        _, report = check_json(run_cli, waived_portfolio, "--no-builtin", "--policies", org)
        waived = finding(report, "acme.canary-age", "m@2")
        assert waived["status"] == "waived"
        assert waived["exception_id"] == "EXC-1"
        assert waived["blocking"] is False
        assert report["summary"]["by_status"]["waived"] == 1

    @pytest.mark.parametrize(
        ("as_of", "status"),
        [
            ("2025-07-09T23:59:59Z", "waived"),
            ("2025-07-10T00:00:00Z", "fail"),
            ("2025-07-10T00:00:01Z", "fail"),
        ],
        ids=["just-before-expiry", "at-expiry", "after-expiry"],
    )
    def test_exception_expires_at_exactly_expires_at(
        self, run_cli: Any, waived_portfolio: Path, org: Path, as_of: str, status: str
    ) -> None:
        _, report = check_json(run_cli, waived_portfolio, "--no-builtin", "--policies", org, as_of=as_of)
        found = finding(report, "acme.canary-age", "m@2")
        assert found["status"] == status
        assert found["blocking"] is (status == "fail")
        assert found["exception_id"] == ("EXC-1" if status == "waived" else None)

    def test_exception_does_not_waive_other_targets(
        self, run_cli: Any, waived_portfolio: Path, org: Path
    ) -> None:
        _, report = check_json(
            run_cli, waived_portfolio, "--no-builtin", "--policies", org, as_of="2025-07-09T12:00:00Z"
        )
        # m@3 (started 2025-06-25) is past 14 days at this instant and is not covered.
        assert finding(report, "acme.canary-age", "m@3")["status"] == "fail"

    def test_hard_enforcement_cannot_be_waived(
        self, run_cli: Any, waived_portfolio: Path, tmp_path: Path
    ) -> None:
        hard = CANARY_AGE.replace("  scope: version\n", "  scope: version\n  enforcement: {audit: hard}\n")
        policies = write_policies(tmp_path / "hard", canary=hard)
        code, report = check_json(run_cli, waived_portfolio, "--no-builtin", "--policies", policies)
        found = finding(report, "acme.canary-age", "m@2")
        assert found["status"] == "fail"
        assert found["enforcement"] == "hard"
        assert found["blocking"] is True
        assert found["exception_id"] is None
        assert code == 1

    def test_exception_without_approvals_waives_nothing(
        self, run_cli: Any, portfolio: Path, org: Path
    ) -> None:
        text = exceptions().split("    signoffs:")[0]
        (portfolio / "exceptions.yaml").write_text(text, encoding="utf-8")
        _, report = check_json(run_cli, portfolio, "--no-builtin", "--policies", org)
        assert finding(report, "acme.canary-age", "m@2")["status"] == "fail"


class TestFailOn:
    @pytest.fixture
    def warnings_only(self, tmp_path: Path) -> Path:
        return write_policies(tmp_path / "warn", soft=WARN_SOFT, advisory=WARN_ADVISORY)

    def test_warnings_do_not_block_by_default(
        self, run_cli: Any, portfolio: Path, warnings_only: Path
    ) -> None:
        code, report = check_json(run_cli, portfolio, "--no-builtin", "--policies", warnings_only)
        assert code == 0
        assert finding(report, "acme.warn-soft", "m@1")["status"] == "fail"
        assert finding(report, "acme.warn-soft", "m@1")["blocking"] is False

    def test_fail_on_warning_makes_warning_failures_blocking(
        self, run_cli: Any, portfolio: Path, warnings_only: Path
    ) -> None:
        code, report = check_json(
            run_cli, portfolio, "--no-builtin", "--policies", warnings_only, "--fail-on", "warning"
        )
        assert code == 1
        assert finding(report, "acme.warn-soft", "m@1")["blocking"] is True
        # advisory is reported, never blocks (DESIGN §4), whatever --fail-on says
        assert finding(report, "acme.warn-advisory", "m@1")["blocking"] is False
        assert report["summary"]["blocking"] == 1

    def test_fail_on_never_reports_only(self, run_cli: Any, portfolio: Path, org: Path) -> None:
        code, report = check_json(run_cli, portfolio, "--no-builtin", "--policies", org, "--fail-on", "never")
        assert code == 0
        assert report["summary"]["blocking"] == 0
        assert report["summary"]["exit_code"] == 0
        assert report["summary"]["by_status"]["fail"] == 2
        assert report["summary"]["by_status"]["error"] == 1
        assert not any(f["blocking"] for f in report["findings"])


def portfolio_with_params(params: str) -> str:
    return (
        "schema_version: 1\n"
        "kind: InferencePortfolio\n"
        "portfolio: {id: test, name: Test portfolio, currency: USD}\n"
        "rates:\n"
        "  gpu_hour: {nvidia-l4: 0.7}\n"
        "policy_params:\n"
        f"  acme.canary-age: {params}\n"
    )


def test_policy_params_override_is_applied_and_listed(run_cli: Any, write_portfolio: Any, org: Path) -> None:
    root = write_portfolio(portfolio=portfolio_with_params("{max_days: 30}"), models={"m.yaml": MODEL})
    _, report = check_json(run_cli, root, "--no-builtin", "--policies", org)
    assert finding(report, "acme.canary-age", "m@2")["status"] == "pass"
    assert report["overrides"] == [
        {
            "policy_id": "acme.canary-age",
            "setting": "params.max_days",
            "default": 14.0,
            "value": 30.0,
            "source": "portfolio.yaml:7",
        }
    ]


def test_policy_params_equal_to_the_default_are_not_overrides(
    run_cli: Any, write_portfolio: Any, org: Path
) -> None:
    root = write_portfolio(portfolio=portfolio_with_params("{max_days: 14}"), models={"m.yaml": MODEL})
    _, report = check_json(run_cli, root, "--no-builtin", "--policies", org)
    assert report["overrides"] == []
    assert finding(report, "acme.canary-age", "m@2")["status"] == "fail"
