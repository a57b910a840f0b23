"""``test``: run policy test suites and report cases and coverage as text or JUnit XML."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Literal

from policy_engine.commands.check import BackendChoice
from policy_engine.errors import ExitCode
from policy_engine.models.report import Finding
from policy_engine.outputs import write_atomic
from policy_engine.testsuite import CaseResult, ExpectationResult, RunResult, run

OutputFormat = Literal["text", "junit"]


def run_policy_tests(
    paths: list[Path],
    *,
    output_format: OutputFormat = "text",
    output: Path | None = None,
    require_coverage: bool = False,
    backend: str = "auto",
    include_builtin: bool = True,
) -> int:
    """Run every suite under ``paths``: 0 when all cases pass (and, with ``require_coverage``,
    every validation of the policies under test has a passing and a failing case), 1 otherwise.
    Invalid suites, fixtures or expectations raise ``InputErrors`` (exit 2, located)."""
    choice: BackendChoice = backend if backend in ("cpp", "python") else "auto"  # type: ignore[assignment]
    result = run(paths, backend=choice, include_builtin=include_builtin)
    text = render_junit(result, require_coverage) if output_format == "junit" else render_text(result)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomic(output, text)
    failed = not result.ok or (require_coverage and bool(result.coverage.gaps()))
    return int(ExitCode.BLOCKING if failed else ExitCode.OK)


# ---------------------------------------------------------------------------- text


def _describe(outcome: ExpectationResult) -> str:
    expected = outcome.expectation
    where = f"{expected.policy} on {expected.target}"
    if expected.validation is not None:
        where += f" [{expected.validation}]"
    return f"{where}: {outcome.problem}"


def _finding_line(finding: Finding) -> str:
    if finding.status == "pass":  # a pass carries the validation's static failure text
        return f"pass [{finding.validation}]"
    return f"{finding.status} [{finding.validation}] {finding.message}"


def _case_lines(case: CaseResult) -> list[str]:
    lines = [f"  {'ok  ' if case.ok else 'FAIL'}  {case.name}"]
    if case.ok:
        return lines
    for outcome in case.expectations:
        if outcome.ok:
            continue
        lines.append(f"          {_describe(outcome)}")
        lines.extend(f"            {_finding_line(f)}" for f in outcome.findings)
    for finding in case.unexpected:
        where = f"{finding.policy_id} on {finding.target}"
        lines.append(f"          unexpected {where}: {_finding_line(finding)}")
    return lines


def render_text(result: RunResult) -> str:
    lines: list[str] = []
    for suite in result.suites:
        lines.append(f"{suite.suite.shown}  (fixture {suite.suite.doc.fixture})")
        for case in suite.cases:
            lines.extend(_case_lines(case))
        lines.append("")
    coverage = result.coverage
    gaps = coverage.gaps()
    untested = coverage.untested
    if gaps:
        lines.append("Coverage gaps (a validation needs a case that sees it pass and one that sees it fail):")
        lines.extend(f"  {policy} [{key}]: no {missing} case" for policy, key, missing in gaps)
    if untested:
        lines.append("Policies without tests: " + ", ".join(untested))
    if gaps or untested:
        lines.append("")
    cases = result.cases
    failed = sum(1 for c in cases if not c.ok)
    complete = coverage.total - len(gaps)
    lines.append(
        f"{len(result.suites)} suite(s), {len(cases)} case(s): {len(cases) - failed} passed, {failed} failed"
        f" · coverage {complete}/{coverage.total} validations pass and fail"
        f" in {len(coverage.validations)} policies · CEL {result.backend}"
    )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- junit


def render_junit(result: RunResult, require_coverage: bool) -> str:
    """One test suite per suite file, one test case per case; coverage gaps as a suite of its own
    (failures with ``require_coverage``, skipped otherwise)."""
    root = ET.Element("testsuites", {"name": "policy-engine test"})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite_result in result.suites:
        suite = ET.SubElement(root, "testsuite", {"name": suite_result.suite.shown})
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for case in suite_result.cases:
            counts["tests"] += 1
            element = ET.SubElement(
                suite,
                "testcase",
                {"classname": suite_result.suite.shown, "name": case.name, "time": "0"},
            )
            if not case.ok:
                counts["failures"] += 1
                problems = [_describe(o) for o in case.expectations if not o.ok] + [
                    f"unexpected {f.policy_id} on {f.target}: {_finding_line(f)}" for f in case.unexpected
                ]
                message = problems[0] if problems else "failed"
                failure = ET.SubElement(element, "failure", {"message": message})
                failure.text = "\n".join(_case_lines(case)[1:]).strip() or None
        _close(suite, counts, totals)
    gaps = result.coverage.gaps()
    coverage = ET.SubElement(root, "testsuite", {"name": "coverage"})
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for policy_id, keys in sorted(result.coverage.validations.items()):
        for key in keys:
            counts["tests"] += 1
            element = ET.SubElement(
                coverage, "testcase", {"classname": "coverage", "name": f"{policy_id} [{key}]", "time": "0"}
            )
            missing = next((m for p, k, m in gaps if p == policy_id and k == key), None)
            if missing is None:
                continue
            text = f"no {missing} case"
            if require_coverage:
                counts["failures"] += 1
                ET.SubElement(element, "failure", {"message": text})
            else:
                counts["skipped"] += 1
                ET.SubElement(element, "skipped", {"message": text})
    _close(coverage, counts, totals)
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _close(element: ET.Element, counts: dict[str, int], totals: dict[str, int]) -> None:
    for key, value in counts.items():
        element.set(key, str(value))
        totals[key] += value
    element.set("time", "0")
