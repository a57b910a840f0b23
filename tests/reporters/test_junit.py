"""JUnit XML: one suite per policy, one case per finding, readable by junitparser."""

from __future__ import annotations

from collections.abc import Callable

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from policy_engine.models.report import Finding, Report
from policy_engine.reporters import junit

FindingFactory = Callable[..., Finding]
ReportFactory = Callable[..., Report]


def _parse(report: Report) -> list[TestSuite]:
    xml = JUnitXml.fromstring(junit.render(report))
    return list(xml)


def _cases(report: Report) -> dict[str, TestCase]:
    return {f"{case.classname}/{case.name}": case for suite in _parse(report) for case in suite}


def test_document_shape(report: Report) -> None:
    text = junit.render(report)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites ')
    assert text.endswith("</testsuites>\n")
    assert text == junit.render(report.model_copy(deep=True))


def test_one_suite_per_policy_with_matching_counts(report: Report) -> None:
    suites = _parse(report)
    assert [s.name for s in suites] == [p.id for p in report.policies]
    expected = {
        "canary.max-duration": (3, 1, 0, 1),
        "production.entry.four-signoffs": (2, 0, 1, 1),
        "deployment.util-floor": (2, 1, 0, 1),
        "signoff.verified": (1, 1, 0, 0),
        "portfolio.unattributed-cost": (1, 1, 0, 0),
    }
    for suite in suites:
        cases = list(suite)
        counted = (
            len(cases),
            sum(isinstance(r, Failure) for c in cases for r in c.result),
            sum(isinstance(r, Error) for c in cases for r in c.result),
            sum(isinstance(r, Skipped) for c in cases for r in c.result),
        )
        assert (suite.tests, suite.failures, suite.errors, suite.skipped) == counted
        assert counted == expected[suite.name]


def test_totals_on_testsuites(report: Report) -> None:
    xml = JUnitXml.fromstring(junit.render(report))
    assert xml.tests == len(report.findings) == 9
    assert xml.failures == 4
    assert xml.errors == 1
    assert xml.skipped == 3


def test_case_names(report: Report) -> None:
    names = set(_cases(report))
    assert "canary.max-duration/assistant-llm@3" in names
    # a named validation is appended; index "0" is not
    assert "deployment.util-floor/assistant-llm@3/asst-v3-use1#floor" in names
    assert "signoff.verified/assistant-llm@2/signoff:finance:marta-f" in names


def test_failure_carries_message_severity_remediation_and_location(report: Report) -> None:
    case = _cases(report)["canary.max-duration/assistant-llm@3"]
    (failure,) = case.result
    assert isinstance(failure, Failure)
    assert failure.type == "error"
    assert failure.message == (
        "canary assistant-llm@3 has run 20d: 100% of traffic, over 14d\nstarted 2025-06-10"
    )
    assert failure.text is not None
    assert "Remediation: Promote it, roll it back, or extend it." in failure.text
    assert "Location: models/assistant-llm.yaml:42:7" in failure.text
    assert "blocking: yes" in failure.text


def test_error_skip_waived_pre_existing_and_pass(report: Report) -> None:
    cases = _cases(report)
    (error,) = cases["production.entry.four-signoffs/doc-summarizer@1"].result
    assert isinstance(error, Error)
    assert error.message == "no such key: signoffs"
    assert error.type == "error"

    (skipped,) = cases["deployment.util-floor/doc-summarizer@1/docsum-v1-use1#floor"].result
    assert isinstance(skipped, Skipped)
    assert skipped.message == "requires measured: no residency data"

    (waived,) = cases["production.entry.four-signoffs/search-reranker@3"].result
    assert isinstance(waived, Skipped)
    assert waived.message == "waived by EXC-2025-007"

    (pre,) = cases["canary.max-duration/embedding-encoder@2"].result
    assert isinstance(pre, Skipped)
    assert pre.message == "pre-existing at base"

    passed = cases["canary.max-duration/assistant-llm-small@1"]
    assert passed.result == []
    assert passed.is_passed


def test_finding_without_location(report: Report) -> None:
    (failure,) = _cases(report)["portfolio.unattributed-cost/portfolio"].result
    assert isinstance(failure, Failure)
    assert failure.type == "warning"
    assert failure.text is not None
    assert "Location:" not in failure.text


def test_markup_and_control_characters_survive(
    make_finding: FindingFactory, make_report: ReportFactory
) -> None:
    finding = make_finding(
        "canary.max-duration",
        "a@1",
        "fail",
        file="models/a.yaml",
        line=3,
        message='cost <5> & "more" \x07 bell',
    )
    (suite, *_) = _parse(make_report([finding]))
    (case,) = list(suite)
    (failure,) = case.result
    assert failure.message == 'cost <5> & "more" \ufffd bell'


def test_policy_without_findings_is_an_empty_suite(make_report: ReportFactory) -> None:
    suites = _parse(make_report([]))
    assert len(suites) == 5
    assert all(s.tests == 0 and list(s) == [] for s in suites)
