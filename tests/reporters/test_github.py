"""GitHub workflow commands: kinds, escaping, the ten-per-kind cap, the job summary."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from policy_engine.models.report import Finding, Report
from policy_engine.reporters import github, markdown

FindingFactory = Callable[..., Finding]
ReportFactory = Callable[..., Report]


def test_whole_output_for_the_sample_report(report: Report) -> None:
    assert github.render(report).splitlines() == [
        "::error file=models/assistant-llm.yaml,line=42,col=7,"
        "title=canary.max-duration · assistant-llm@3::"
        "canary assistant-llm@3 has run 20d: 100%25 of traffic, over 14d%0A"
        "started 2025-06-10%0APromote it, roll it back, or extend it.",
        "::error file=models/doc-summarizer.yaml,line=25,col=5,"
        "title=production.entry.four-signoffs · doc-summarizer@1::no such key: signoffs",
        "::warning title=portfolio.unattributed-cost · portfolio::"
        "12.5%25 of GPU cost (3,100 USD) is unattributed%0ALabel the workloads.",
        "::warning file=models/assistant-llm.yaml,line=58,"
        "title=deployment.util-floor · assistant-llm@3/asst-v3-use1::"
        "GPU utilisation 12%25 is below the 30%25 floor%0ALower min_replicas.",
        "::notice file=models/embedding-encoder.yaml,line=40,"
        "title=canary.max-duration · embedding-encoder@2::"
        "Pre-existing at base: canary embedding-encoder@2 has run 30d%0APromote it.",
        "::notice file=models/search-reranker.yaml,line=12,col=5,"
        "title=production.entry.four-signoffs · search-reranker@3::"
        "Waived by exception EXC-2025-007: search-reranker@3 lacks sign-offs: finance, ml"
        "%0AAdd the missing sign-offs.",
        "::notice file=models/assistant-llm.yaml,line=99,col=9,"
        "title=signoff.verified · assistant-llm@2/signoff%3Afinance%3Amarta-f::"
        "sign-off by marta-f is declared, not verified",
    ]
    assert github.render(report).endswith("not verified\n")


def test_escaping_follows_the_actions_toolkit() -> None:
    assert github.escape_data("50% done\r\nnext: a, b") == "50%25 done%0D%0Anext: a, b"
    assert github.escape_property("50% done\r\nnext: a, b") == "50%25 done%0D%0Anext%3A a%2C b"
    # % is escaped first, so an existing escape sequence is not decoded later
    assert github.escape_data("%0A") == "%250A"
    assert github.escape_property("%3A") == "%253A"


def test_properties_and_message_escaped_in_a_command(make_finding: FindingFactory) -> None:
    finding = make_finding(
        "canary.max-duration",
        "m@1/signoff:finance:a,b",
        "fail",
        file="models/a,b:c.yaml",
        line=7,
        column=3,
        message="100% over: 14d, 20d\r\n::error::injected",
        blocking=True,
    )
    command = github.Annotation("error", finding).command
    assert command == (
        "::error file=models/a%2Cb%3Ac.yaml,line=7,col=3,"
        "title=canary.max-duration · m@1/signoff%3Afinance%3Aa%2Cb::"
        "100%25 over: 14d, 20d%0D%0A::error::injected"
    )
    assert "\n" not in command


def test_no_location_properties_without_a_file(make_finding: FindingFactory) -> None:
    finding = make_finding("portfolio.unattributed-cost", "portfolio", "fail", severity="warning")
    assert github.Annotation("warning", finding).command == (
        "::warning title=portfolio.unattributed-cost · portfolio::portfolio.unattributed-cost on portfolio"
    )


def test_line_without_column(make_finding: FindingFactory) -> None:
    finding = make_finding("canary.max-duration", "a@1", "fail", file="m/a.yaml", line=4)
    command = github.Annotation("warning", finding).command
    assert command.startswith("::warning file=m/a.yaml,line=4,title=")


@pytest.mark.parametrize(
    ("status", "severity", "blocking", "kind"),
    [
        ("fail", "error", True, "error"),
        ("error", "warning", True, "error"),
        ("fail", "error", False, "warning"),
        ("error", "warning", False, "warning"),
        ("fail", "info", False, "notice"),
        ("error", "info", False, "notice"),
        ("waived", "error", False, "notice"),
        ("pre_existing", "warning", False, "notice"),
        ("pass", "error", False, None),
        ("skip", "error", False, None),
    ],
)
def test_kind_of(
    make_finding: FindingFactory, status: str, severity: str, blocking: bool, kind: str | None
) -> None:
    finding = make_finding("p.x", "a@1", status, severity=severity, blocking=blocking)
    assert github.kind_of(finding) == kind


def _many(make_finding: FindingFactory) -> list[Finding]:
    findings = [
        make_finding("p.block", f"m@{i}", "fail", file="models/m.yaml", line=i, blocking=True)
        for i in range(1, 13)
    ]
    # 11 failing-but-not-blocking: 10 of warning severity first in file order, then one of
    # error severity that must sort ahead of them
    findings += [
        make_finding("p.warn", f"w@{i}", "fail", severity="warning", file="models/w.yaml", line=i)
        for i in range(1, 11)
    ]
    findings.append(make_finding("p.advisory", "z@1", "fail", severity="error", file="models/z.yaml", line=1))
    findings += [
        make_finding("p.info", f"n@{i}", "fail", severity="info", file="models/n.yaml", line=i)
        for i in range(1, 4)
    ]
    return findings


def test_at_most_ten_of_each_kind_sorted_by_severity(
    make_finding: FindingFactory, make_report: ReportFactory
) -> None:
    report = make_report(_many(make_finding))
    lines = github.render(report).splitlines()
    errors = [line for line in lines if line.startswith("::error ")]
    warnings = [line for line in lines if line.startswith("::warning ")]
    notices = [line for line in lines if line.startswith("::notice ")]
    assert len(errors) == 10
    assert len(warnings) == 10
    assert len(notices) == 3
    # kinds in order: errors, then warnings, then notices, then the note
    assert lines[:10] == errors
    assert lines[10:20] == warnings
    assert lines[20:23] == notices
    # the first ten blocking findings in report order
    assert [e.split("title=p.block · ")[1].split("::")[0] for e in errors] == [f"m@{i}" for i in range(1, 11)]
    # the error-severity advisory finding jumps ahead of the warnings; w@10 is the one cut
    assert "title=p.advisory · z@1::" in warnings[0]
    assert not any("w@10::" in w for w in warnings)
    assert lines[23] == (
        "policy-engine: 3 more findings (2 error, 1 warning) not shown as annotations "
        "(GitHub shows at most 10 of each kind per step); every finding is in the SARIF file "
        "and the other outputs."
    )
    assert len(lines) == 24


def test_selection_counts(make_finding: FindingFactory, make_report: ReportFactory) -> None:
    selection = github.select(make_report(_many(make_finding)))
    assert selection.hidden == {"error": 2, "warning": 1, "notice": 0}
    assert selection.hidden_total == 3
    assert len(selection.shown) == 23


def test_no_trailing_note_when_nothing_is_hidden(report: Report) -> None:
    assert not any(line.startswith("policy-engine:") for line in github.render(report).splitlines())


def test_empty_report_renders_nothing(make_report: ReportFactory) -> None:
    assert github.render(make_report([])) == ""


def test_step_summary_is_the_markdown_report_plus_the_hidden_note(
    make_finding: FindingFactory, make_report: ReportFactory
) -> None:
    report = make_report(_many(make_finding))
    summary = github.step_summary(report)
    assert summary.startswith(markdown.render(report))
    assert summary.endswith(
        "\n> [!NOTE]\n"
        "> 3 more findings (2 error, 1 warning) not shown as annotations on this step "
        "(GitHub shows at most 10 of each kind per step). Every finding is in the SARIF file "
        "uploaded to code scanning and in the other outputs of this run.\n"
    )


def test_step_summary_without_hidden_annotations_is_the_markdown_report(report: Report) -> None:
    assert github.step_summary(report) == markdown.render(report)
