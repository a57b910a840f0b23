"""``policy-engine test``: suite format, patches, injected facts, results, coverage, outputs."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from policy_engine.commands.policy_test import run_policy_tests
from policy_engine.errors import InputErrors, UsageError
from policy_engine.testsuite import PatchError, apply_delete, apply_set, parse_path, run, to_yaml

POLICY = """\
apiVersion: policy-engine/v1
kind: Policy
metadata:
  id: team.small-canaries
  title: Canaries keep at most one warm replica
  severity: error
  tags: [canary]
  rationale: Our canaries are small.
spec:
  scope: deployment
  match: version.stage == 'canary'
  params:
    max_min: {default: 1, description: Largest replicas.min of a canary deployment.}
  validations:
    - name: small
      expression: double(deployment.replicas.min) <= params.max_min
      messageExpression: "deployment.id + ' keeps ' + fmt(deployment.replicas.min) + ' warm replicas'"
      message: Canary deployment is too large
      remediation: Lower replicas.min.
    - name: capped
      expression: deployment.replicas.max <= 4
      messageExpression: "deployment.id + ' may grow to ' + fmt(deployment.replicas.max)"
      message: Canary deployment may grow too large
      remediation: Lower replicas.max.
"""

PASSING_AND_FAILING = """\
  - name: a one-replica canary passes
    expect:
      - {policy: team.small-canaries, target: ranker@3/r3-use1-canary, status: pass}
  - name: a three-replica canary fails
    patch:
      - file: models/ranker.yaml
        set: {"versions[version=3].deployments[id=r3-use1-canary].replicas.min": 3}
    expect:
      - {policy: team.small-canaries, target: ranker@3/r3-use1-canary, validation: small,
         status: fail, message: keeps 3 warm replicas}
"""


@pytest.fixture
def policy_dir(tmp_path: Path, pack_dir: Path) -> Path:
    """An organisation's policy directory with one policy, a copy of the pack's fixture and
    room for suites in tests/."""
    root = tmp_path / "policies"
    (root / "tests").mkdir(parents=True)
    (root / "team.small-canaries.yaml").write_text(POLICY, encoding="utf-8")
    shutil.copytree(pack_dir / "tests" / "fixtures", root / "tests" / "fixtures")
    return root


def write_suite(policy_dir: Path, cases: str, name: str = "team.test.yaml", header: str = "") -> Path:
    path = policy_dir / "tests" / name
    path.write_text(
        "apiVersion: policy-engine/v1\nkind: PolicyTest\nfixture: fixtures/clean\n"
        'as_of: "2025-06-30T00:00:00Z"\n' + header + "cases:\n" + cases,
        encoding="utf-8",
    )
    return path


def input_errors(policy_dir: Path) -> list[str]:
    with pytest.raises(InputErrors) as caught:
        run([policy_dir], backend="cpp")
    return [e.render() for e in caught.value.errors]


# ---------------------------------------------------------------------------- paths and patches


def test_paths_select_keys_items_and_literal_keys() -> None:
    assert parse_path("versions[version=2].deployments.0.replicas.min") == [
        ("key", "versions", ""),
        ("select", "version", "2"),
        ("key", "deployments", ""),
        ("key", "0", ""),
        ("key", "replicas", ""),
        ("key", "min", ""),
    ]
    assert parse_path("policy_params[canary.max-duration].max_days")[1] == ("key", "canary.max-duration", "")
    assert parse_path("metrics[slice=lang=de].value")[1] == ("select", "slice", "lang=de")
    for bad in ("", "a..b", "a.", "a[]", "a]b"):
        with pytest.raises(PatchError):
            parse_path(bad)


def test_set_creates_mappings_appends_and_replaces() -> None:
    document: dict[str, object] = {"versions": [{"version": "1", "signoffs": []}]}
    apply_set(document, "policy_params[a.b].max_days", 3)
    apply_set(document, "versions[version=1].signoffs.-", {"role": "ml"})
    apply_set(document, "versions.0.stage", "canary")
    assert document == {
        "versions": [{"version": "1", "signoffs": [{"role": "ml"}], "stage": "canary"}],
        "policy_params": {"a.b": {"max_days": 3}},
    }
    apply_delete(document, "versions[version=1].signoffs[role=ml]")
    apply_delete(document, "policy_params")
    assert document == {"versions": [{"version": "1", "signoffs": [], "stage": "canary"}]}
    with pytest.raises(PatchError, match="no item with version = 9"):
        apply_set(document, "versions[version=9].stage", "x")
    with pytest.raises(PatchError, match="did you mean 'versions'"):
        apply_delete(document, "version")
    with pytest.raises(PatchError, match="out of range"):
        apply_delete(document, "versions.3")


def test_patched_documents_keep_their_types() -> None:
    text = to_yaml({"v": "8", "t": "2025-06-30T00:00:00Z", "x": 1e-05, "y": 2.0, "n": 3, "b": True})
    assert text == b'{"v": "8", "t": "2025-06-30T00:00:00Z", "x": 1.0e-05, "y": 2.0, "n": 3, "b": true}\n'


# ---------------------------------------------------------------------------- running


def test_passing_suite_exits_0_and_reports_coverage(
    policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_suite(policy_dir, PASSING_AND_FAILING)
    code = run_policy_tests([policy_dir], backend="cpp", require_coverage=False)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ok    a three-replica canary fails" in out
    assert "team.small-canaries [capped]: no fail case" in out
    assert "2 case(s): 2 passed, 0 failed" in out
    # Only the directory under test counts for coverage, not the built-in pack loaded beside it.
    assert "canary.max-duration" not in out


CAPPED_FAILS = """\
  - name: a canary that may grow to 8 replicas fails
    patch:
      - file: models/ranker.yaml
        set: {"versions[version=3].deployments[id=r3-use1-canary].replicas.max": 8}
    expect:
      - {policy: team.small-canaries, target: ranker@3/r3-use1-canary, validation: capped, status: fail}
"""


def test_require_coverage_fails_on_a_validation_never_seen_failing(
    policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_suite(policy_dir, PASSING_AND_FAILING)
    assert run_policy_tests([policy_dir], backend="cpp", require_coverage=True) == 1
    write_suite(policy_dir, PASSING_AND_FAILING + CAPPED_FAILS)
    capsys.readouterr()
    assert run_policy_tests([policy_dir], backend="cpp", require_coverage=True) == 0, capsys.readouterr().out


def test_a_failing_expectation_shows_expected_and_actual(
    policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_suite(
        policy_dir,
        """\
  - name: wrongly expects a pass
    patch:
      - file: models/ranker.yaml
        set: {"versions[version=3].deployments[id=r3-use1-canary].replicas.min": 3}
    expect:
      - {policy: team.small-canaries, target: ranker@3/r3-use1-canary, status: pass}
  - name: wrongly expects a message
    patch:
      - file: models/ranker.yaml
        set: {"versions[version=3].deployments[id=r3-use1-canary].replicas.min": 3}
    expect:
      - {policy: team.small-canaries, target: ranker@3/r3-use1-canary, status: fail, message: nope}
""",
    )
    assert run_policy_tests([policy_dir], backend="cpp") == 1
    out = capsys.readouterr().out
    assert "FAIL  wrongly expects a pass" in out
    assert "team.small-canaries on ranker@3/r3-use1-canary: expected pass, got fail" in out
    assert "fail [small] r3-use1-canary keeps 3 warm replicas" in out
    assert "no fail message contains 'nope'" in out
    assert "0 passed, 2 failed" in out


def test_strict_cases_fail_on_unexpected_findings(policy_dir: Path) -> None:
    write_suite(
        policy_dir,
        """\
  - name: the clean fixture is clean
    strict: true
  - name: nothing else may fail
    strict: true
    patch:
      - file: models/ranker.yaml
        set: {"versions[version=3].deployments[id=r3-use1-canary].replicas.min": 3}
    expect:
      - {policy: team.small-canaries, target: ranker@3/r3-use1-canary, status: fail}
""",
    )
    result = run([policy_dir], backend="cpp")
    clean, other = result.cases
    assert clean.ok
    assert not other.ok
    # Three warm replicas also break the pack's canary overhead and residency estimate.
    assert {f.policy_id for f in other.unexpected} == {
        "canary.residency-overhead",
        "production.entry.residency-estimate",
    }


def test_facts_are_injected_and_exceptions_waive(policy_dir: Path) -> None:
    write_suite(
        policy_dir,
        """\
  - name: measured residency reaches the policy
    measured:
      ranker@2: {cost_monthly_run_rate: 5000, coverage: 1.0, requests: 10}
    expect:
      - {policy: residency.creep, target: ranker@2, validation: estimate, status: fail}
  - name: an active exception waives
    patch:
      - file: models/ranker.yaml
        set: {"versions[version=3].deployments[id=r3-use1-canary].replicas.min": 3}
      - file: exceptions.yaml
        content:
          exceptions:
            - id: EXC-9
              policy: team.small-canaries
              target: ranker@3/r3-use1-canary
              reason: Load test week
              created_at: "2025-06-29T00:00:00Z"
              expires_at: "2025-07-10T00:00:00Z"
              signoffs:
                - {role: platform, by: pat-platform, at: "2025-06-29T00:00:00Z"}
                - {role: finance, by: fin-fiona, at: "2025-06-29T00:00:00Z"}
    expect:
      - {policy: team.small-canaries, target: ranker@3/r3-use1-canary, status: waived, blocking: false}
""",
    )
    result = run([policy_dir], backend="cpp")
    assert result.ok, [(c.name, [o.problem for o in c.expectations]) for c in result.cases]


def test_junit_output(policy_dir: Path, tmp_path: Path) -> None:
    write_suite(
        policy_dir,
        PASSING_AND_FAILING
        + """\
  - name: wrongly expects a skip
    expect:
      - {policy: team.small-canaries, target: ranker@3/r3-use1-canary, status: skip}
""",
    )
    output = tmp_path / "out" / "tests.xml"
    code = run_policy_tests(
        [policy_dir], output_format="junit", output=output, backend="cpp", require_coverage=True
    )
    assert code == 1
    root = ET.fromstring(output.read_text(encoding="utf-8"))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    suite = suites[next(n for n in suites if n and n.endswith("team.test.yaml"))]
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    failure = suite.find("testcase[@name='wrongly expects a skip']/failure")
    assert failure is not None
    assert "expected skip, got pass" in (failure.get("message") or "")
    coverage = suites["coverage"]
    assert coverage.find("testcase[@name='team.small-canaries [capped]']/failure") is not None


# ---------------------------------------------------------------------------- input errors


def test_unknown_policy_target_validation_and_fact_targets_are_located(policy_dir: Path) -> None:
    path = write_suite(
        policy_dir,
        """\
  - name: typos
    measured:
      ranker@22: {coverage: 1.0}
    expect:
      - {policy: team.smal-canaries, target: ranker@3, status: pass}
      - {policy: team.small-canaries, target: ranker@3/r3-use1-canry, status: pass}
      - {policy: team.small-canaries, target: ranker@3/r3-use1-canary, validation: smal, status: pass}
""",
    )
    errors = input_errors(policy_dir)
    assert all(e.startswith(f"{path.as_posix()}:") for e in errors), errors
    expected = [
        ":10:10: no loaded policy has id 'team.smal-canaries'; did you mean 'team.small-canaries'?",
        "no target 'ranker@3/r3-use1-canry' in the fixture; did you mean 'ranker@3/r3-use1-canary'?",
        "has no validation 'smal'; did you mean 'small'?",
        ":8:7: measured names target 'ranker@22', which is not in the fixture",
    ]
    for text in expected:
        assert any(text in e for e in errors), (text, errors)


def test_schema_errors_in_suites_and_facts(policy_dir: Path) -> None:
    write_suite(
        policy_dir,
        """\
  - name: bad
    measured:
      ranker@2: {cost_per_day: 3}
    expect:
      - {policy: team.small-canaries, target: ranker@2, status: passed}
""",
    )
    text = "\n".join(input_errors(policy_dir))
    assert ":8:18: unknown field 'cost_per_day'" in text
    assert ":10:57: 'passed' is not allowed" in text


def test_case_names_are_unique_and_cases_expect_something(policy_dir: Path) -> None:
    write_suite(
        policy_dir,
        """\
  - name: bad
    expect:
      - {policy: team.small-canaries, target: ranker@2, status: skip}
  - name: bad
    expect: []
""",
    )
    text = "\n".join(input_errors(policy_dir))
    assert ":9:5: case name 'bad' is also used by case 1" in text
    assert ":9:5: the case expects nothing" in text


def test_patch_errors_are_located_at_the_patch(policy_dir: Path) -> None:
    write_suite(
        policy_dir,
        """\
  - name: bad path
    patch:
      - file: models/ranker.yaml
        set: {"versions[version=7].stage": production}
    expect:
      - {policy: team.small-canaries, target: ranker@3/r3-use1-canary, status: pass}
  - name: invalid result
    patch:
      - file: models/ranker.yaml
        set: {"versions[version=3].stage": staging}
    expect:
      - {policy: team.small-canaries, target: ranker@3/r3-use1-canary, status: pass}
  - name: missing file
    patch:
      - file: models/nope.yaml
        delete: [id]
    expect:
      - {policy: team.small-canaries, target: ranker@3/r3-use1-canary, status: pass}
""",
    )
    errors = input_errors(policy_dir)
    text = "\n".join(errors)
    assert ":9:15: models/ranker.yaml: versions[version=7].stage: no item with version = 7" in text
    assert "case 'invalid result': after patching, " in text
    assert "'staging' is not allowed" in text
    assert "models/nope.yaml: no such file in the fixture" in text


def test_no_suites_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no policy test suites"):
        run([tmp_path], backend="cpp")
    with pytest.raises(UsageError, match="no such file or directory"):
        run([tmp_path / "missing"], backend="cpp")


def test_a_single_suite_file_tests_its_policy_directory(policy_dir: Path) -> None:
    path = write_suite(policy_dir, PASSING_AND_FAILING)
    result = run([path], backend="cpp")
    assert result.ok
    assert set(result.coverage.validations) == {"team.small-canaries"}


def test_without_the_builtin_pack(policy_dir: Path) -> None:
    write_suite(policy_dir, PASSING_AND_FAILING)
    result = run([policy_dir], backend="cpp", include_builtin=False)
    assert result.ok
    assert {f.policy_id for c in result.cases for f in c.findings} == {"team.small-canaries"}


def test_a_fixtures_own_policies_load_like_checks_but_are_not_under_test(policy_dir: Path) -> None:
    fixture_policies = policy_dir / "tests" / "fixtures" / "clean" / "policies"
    fixture_policies.mkdir()
    (fixture_policies / "local.yaml").write_text(
        POLICY.replace("team.small-canaries", "local.small-canaries"), encoding="utf-8"
    )
    write_suite(
        policy_dir,
        PASSING_AND_FAILING
        + """\
  - name: the fixture's own policy runs too
    expect:
      - {policy: local.small-canaries, target: ranker@3/r3-use1-canary, status: pass}
""",
    )
    result = run([policy_dir], backend="cpp")
    assert result.ok
    assert set(result.coverage.validations) == {"team.small-canaries"}
