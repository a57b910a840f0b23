"""Differential test: cel-expr-python (cpp) and cel-python (python) give identical findings.

The python backend is slow to start, so each portfolio is evaluated once per backend for the
whole module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

AS_OF = "2025-06-30T00:00:00Z"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "acme-portfolio"
BACKENDS = ("cpp", "python")

# Policies that reach the corners where the runtimes differ by default: missing keys, runtime
# type errors, division by zero, has() on optional blocks, int/double mixing, fmt().
EDGE_POLICIES = """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: diff.edges, severity: error}
spec:
  scope: version
  variables:
    - name: started
      expression: >-
        has(version.canary.started_at) ? timestamp(version.canary.started_at) : now
  validations:
    - name: has-on-optional-block
      expression: "!has(version.shadow.started_at)"
      message: no shadow
    - name: floor-is-a-double
      expression: "!has(version.floor_monthly) || version.floor_monthly >= 0.0"
      message: floors compare with doubles
    - name: counts-are-ints
      expression: version.warm_replicas >= 1
      messageExpression: >-
        version.id + ' keeps ' + fmt(version.warm_replicas) + ' warm replica(s) since '
        + fmt(variables.started) + ' (' + fmt(now - variables.started) + ', regions '
        + fmt(version.deployments.map(d, d.region)) + ')'
      message: no warm replicas
    - name: missing-field
      expression: version.entry_evidence.eval.dataset != ''
      message: eval dataset recorded
    - name: mixed-arithmetic
      expression: version.warm_replicas + 0.5 > 0.0
      message: arithmetic
    - name: division-by-zero
      expression: 10 / (size(version.deployments) - size(version.deployments)) > 1
      message: division
    - name: message-fallback
      expression: "false"
      messageExpression: "'see ' + version.no_such_field"
      message: static fallback
"""

EDGE_MODEL = """\
id: m
owner_team: ml
versions:
  - version: "1"
    stage: production
    deployments:
      - {id: m-1-a, endpoint: m, region: us-east-1, traffic_percent: 100,
         replicas: {min: 2, max: 4}, accelerator: {type: nvidia-l4, count: 1}}
      - {id: m-1-b, endpoint: m, region: eu-west-1, traffic_percent: 100, scale_to_zero: true,
         replicas: {min: 0, max: 4}, accelerator: {type: nvidia-l4, count: 1}}
  - version: "2"
    stage: canary
    canary: {of_version: "1", started_at: "2025-06-01T12:00:00Z", max_duration: 14d, traffic_percent: 5}
  - version: "3"
    stage: retired
"""


def _report(run_cli: Any, *args: Any, backend: str) -> dict[str, Any]:
    code, stdout, stderr = run_cli(
        "check", *args, "--as-of", AS_OF, "--format", "json", "--all", "--cel-backend", backend
    )
    assert code in (0, 1), stderr
    report: dict[str, Any] = json.loads(stdout)
    assert report["tool"]["cel_backend"] == backend
    return report


def _without_backend(report: dict[str, Any]) -> dict[str, Any]:
    copy = json.loads(json.dumps(report))
    del copy["tool"]["cel_backend"]
    return copy


@pytest.fixture(scope="module")
def example_reports(run_cli: Any) -> dict[str, dict[str, Any]]:
    return {backend: _report(run_cli, EXAMPLE, backend=backend) for backend in BACKENDS}


@pytest.fixture(scope="module")
def edge_reports(
    run_cli: Any, tmp_path_factory: pytest.TempPathFactory, portfolio_builder: Any
) -> dict[str, dict[str, Any]]:
    base = tmp_path_factory.mktemp("edges")
    root = portfolio_builder(base / "portfolio", models={"m.yaml": EDGE_MODEL})
    policies = base / "policies"
    policies.mkdir()
    (policies / "edges.yaml").write_text(EDGE_POLICIES, encoding="utf-8")
    return {
        backend: _report(run_cli, root, "--no-builtin", "--policies", policies, backend=backend)
        for backend in BACKENDS
    }


def test_example_findings_are_identical_on_both_backends(example_reports: dict[str, dict[str, Any]]) -> None:
    cpp, python = (_without_backend(example_reports[b]) for b in BACKENDS)
    assert python["summary"] == cpp["summary"]
    for left, right in zip(cpp["findings"], python["findings"], strict=True):
        assert left == right
    assert python == cpp


def test_example_comparison_covers_every_kind_of_finding(example_reports: dict[str, dict[str, Any]]) -> None:
    statuses = {f["status"] for f in example_reports["cpp"]["findings"]}
    assert {"pass", "fail", "skip", "waived"} <= statuses
    assert any(f["values"] for f in example_reports["cpp"]["findings"] if f["status"] == "fail")
    assert len(example_reports["cpp"]["policies"]) >= 8


def test_edge_findings_are_identical_on_both_backends(edge_reports: dict[str, dict[str, Any]]) -> None:
    cpp, python = (_without_backend(edge_reports[b]) for b in BACKENDS)
    for left, right in zip(cpp["findings"], python["findings"], strict=True):
        assert left == right
    assert python == cpp


def test_edge_findings_say_what_happened(edge_reports: dict[str, dict[str, Any]]) -> None:
    found = {(f["target"], f["validation"]): f for f in edge_reports["cpp"]["findings"]}
    assert found[("m@1", "has-on-optional-block")]["status"] == "pass"
    assert found[("m@3", "floor-is-a-double")]["status"] == "pass"  # no deployments: floor 0.0
    assert found[("m@1", "counts-are-ints")]["status"] == "pass"
    assert found[("m@2", "counts-are-ints")]["message"] == (
        "m@2 keeps 0 warm replica(s) since 2025-06-01 12:00 UTC (28.5d, regions )"
    )
    assert "missing field 'eval'" in found[("m@1", "missing-field")]["message"]
    assert found[("m@1", "missing-field")]["status"] == "error"
    assert "_+_(int, double)" in found[("m@1", "mixed-arithmetic")]["message"]
    assert "division by zero" in found[("m@1", "division-by-zero")]["message"]
    assert found[("m@1", "message-fallback")]["message"] == "static fallback"
