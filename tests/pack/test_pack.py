"""The built-in pack: complete metadata, every validation tested both ways, and identical
findings on both CEL backends."""

from __future__ import annotations

from typing import Any, Literal

from policy_engine.cel import Checker
from policy_engine.commands.policy_test import render_text
from policy_engine.policies import builtin_source, load_policies
from policy_engine.testsuite import RunResult

FAMILIES = ("canary.", "shadow.", "fallback.", "production.entry.", "cost.", "signoff.", "exit.")


def test_the_pack_has_at_least_16_policies_covering_every_family() -> None:
    ids = {p.id for p in load_policies([builtin_source()])}
    assert len(ids) >= 16
    for family in (*FAMILIES, "residency.", "idle.", "attribution.", "endpoint."):
        assert any(i.startswith(family) for i in ids), family


def test_every_builtin_policy_is_fully_documented() -> None:
    """The minimum policy file is small for users; the pack itself carries everything."""
    problems = []
    for policy in load_policies([builtin_source()]):
        meta, spec = policy.doc.metadata, policy.doc.spec
        for field in ("title", "rationale"):
            if not (getattr(meta, field) or "").strip():
                problems.append(f"{policy.id}: no {field}")
        if not meta.tags:
            problems.append(f"{policy.id}: no tags")
        for name, param in spec.params.items():
            if param.default is None or not (param.description or "").strip():
                problems.append(f"{policy.id}: parameter {name} lacks a default or description")
        for index, validation in enumerate(spec.validations):
            where = f"{policy.id} validation {validation.name or index}"
            if not validation.name:
                problems.append(f"{where}: no name (the fingerprint would be its index)")
            if not validation.messageExpression:
                problems.append(f"{where}: no messageExpression")
            if not (validation.remediation or "").strip():
                problems.append(f"{where}: no remediation")
    assert not problems, "\n".join(problems)


def test_every_pack_case_passes_on_both_backends(pack_results: dict[str, RunResult]) -> None:
    for backend, result in pack_results.items():
        assert result.ok, f"{backend}:\n" + render_text(result)
        assert result.backend == backend


def test_every_builtin_validation_is_seen_passing_and_failing(pack_results: dict[str, RunResult]) -> None:
    coverage = pack_results["cpp"].coverage
    assert not coverage.untested, coverage.untested
    assert not coverage.gaps(), coverage.gaps()
    assert coverage.total >= 40


def _comparable(result: RunResult) -> list[tuple[str, str, list[dict[str, Any]]]]:
    return [
        (suite.suite.shown, case.name, [f.model_dump(mode="json") for f in case.findings])
        for suite in result.suites
        for case in suite.cases
    ]


def test_both_backends_give_identical_findings(pack_results: dict[str, RunResult]) -> None:
    """Statuses, messages (fmt, never string(double)), blocking and the values behind them."""
    cpp, python = _comparable(pack_results["cpp"]), _comparable(pack_results["python"])
    assert [c[:2] for c in cpp] == [c[:2] for c in python]
    for (suite, case, left), (_, _, right) in zip(cpp, python, strict=True):
        assert left == right, f"{suite}: {case}"


def test_no_pack_finding_is_an_evaluation_error(pack_results: dict[str, RunResult]) -> None:
    """A policy that cannot evaluate on the fixture's shapes is a policy bug, not a finding."""
    errors = [
        f"{case.name}: {f.policy_id} on {f.target}: {f.message}"
        for case in pack_results["cpp"].cases
        for f in case.findings
        if f.status == "error"
    ]
    assert not errors, "\n".join(errors)


Want = Literal["bool", "string", "any"]


def test_every_builtin_expression_passes_the_checker() -> None:
    """A run skips checking the built-in pack (it compiles what it needs once); this is where
    its authored text meets the checker: the portable subset, and the type each place wants."""
    checker = Checker.create()
    assert checker is not None
    checked = 0
    for policy in load_policies([builtin_source()]):
        spec = policy.doc.spec
        texts: list[tuple[str, Literal["bool", "string", "any"]]] = [
            (v.expression, "any") for v in spec.variables
        ]
        texts += [(spec.match, "bool")] if spec.match else []
        for validation in spec.validations:
            texts.append((validation.expression, "bool"))
            if validation.messageExpression:
                texts.append((validation.messageExpression, "string"))
        for text, want in texts:
            checker.check(text, want)  # raises CelCompileError on anything it refuses
            checked += 1
    assert checked > 150
