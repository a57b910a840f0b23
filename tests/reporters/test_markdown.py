"""Markdown PR comment: verdict, severity × status table, failing first, safe escaping."""

from __future__ import annotations

import re
from collections.abc import Callable

from policy_engine.models.report import Finding, Report
from policy_engine.reporters import markdown

FindingFactory = Callable[..., Finding]
ReportFactory = Callable[..., Report]


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n### ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _cells(row: str) -> list[str]:
    """Split a table row on unescaped pipes."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def test_heading_and_marker(report: Report) -> None:
    text = markdown.render(report)
    assert text.startswith("<!-- policy-engine:report -->\n\n## ❌ policy-engine: 2 blocking findings\n")
    assert text.endswith("</details>\n")
    assert text == markdown.render(report.model_copy(deep=True))
    assert "base `3f2c1a0` → head `9e8d7c6`" in text
    assert "exit code 1" in text


def test_verdict_without_blocking_findings(make_finding: FindingFactory, make_report: ReportFactory) -> None:
    advisory = make_finding("p.x", "a@1", "fail", severity="warning", enforcement="advisory")
    text = markdown.render(make_report([advisory]))
    assert "\n## ⚠️ policy-engine: nothing blocking (1 non-blocking finding)\n" in text
    clean = markdown.render(make_report([make_finding("p.x", "a@1", "pass")]))
    assert "\n## ✅ policy-engine: nothing blocking\n" in clean
    assert "### Failing" not in clean


def test_summary_table_counts_severity_by_status(report: Report) -> None:
    text = markdown.render(report)
    table = [line for line in text.splitlines() if line.startswith("| ") and "|--" not in line]
    assert table[:5] == [
        "| Severity | Fail | Error | Waived | Pre-existing | Skip | Pass | Blocking |",
        "| 🔴 error | 1 | 1 | 1 | 1 | 0 | 1 | 2 |",
        "| 🟡 warning | 2 | 0 | 0 | 0 | 1 | 0 | 0 |",
        "| 🔵 info | 1 | 0 | 0 | 0 | 0 | 0 | 0 |",
        "| **Total** | **4** | **1** | **1** | **1** | **1** | **1** | **2** |",
    ]
    assert "counted but not listed" not in text


def test_unlisted_pass_and_skip_are_counted_not_split(make_report: ReportFactory) -> None:
    text = markdown.render(make_report(unlisted={"pass": 40, "skip": 2}))
    assert "| 🔴 error | 1 | 1 | 1 | 1 | – | – | 2 |" in text
    assert "| **Total** | **4** | **1** | **1** | **1** | **3** | **41** | **2** |" in text
    assert "_–: counted but not listed in this report; run with `--all`" in text
    rest = text[text.index("<details><summary>41 checks passed, 3 skipped</summary>") :]
    assert "| `deployment.util-floor` | `doc-summarizer@1/docsum-v1-use1` | requires measured" in rest
    assert "\n\nPassing and skipped results are counted here; run with `--all` to list them.\n" in rest


def test_everything_listed_no_hint(make_finding: FindingFactory, make_report: ReportFactory) -> None:
    text = markdown.render(make_report([make_finding("p.x", "a@1", "pass")]))
    assert "<details><summary>1 check passed, 0 skipped</summary>\n\nNothing was skipped.\n" in text
    assert "--all" not in text


def test_failing_first_blocking_first_then_waived_then_pre_existing(report: Report) -> None:
    text = markdown.render(report)
    failing = _section(text, "### Failing (5, 2 blocking)")
    entries = [line for line in failing.splitlines() if line.startswith("- ")]
    assert [re.findall(r"`([^`]+)`", e)[:2] for e in entries] == [
        ["canary.max-duration", "assistant-llm@3"],
        ["production.entry.four-signoffs", "doc-summarizer@1"],
        ["portfolio.unattributed-cost", "portfolio"],
        ["deployment.util-floor", "assistant-llm@3/asst-v3-use1"],
        ["signoff.verified", "assistant-llm@2/signoff:finance:marta-f"],
    ]
    assert entries[0].startswith("- ❌ **blocking** · ")
    assert entries[0].endswith("· `models/assistant-llm.yaml:42`\\")
    assert entries[2].startswith("- ⚠️ not blocking · ")
    assert entries[2].endswith("· no file\\")
    assert text.index("### Failing") < text.index("### Waived (1)")
    assert text.index("### Waived (1)") < text.index("### Pre-existing at base (1)")
    assert text.index("### Pre-existing at base (1)") < text.index(
        "<details><summary>1 check passed, 1 skipped</summary>"
    )


def test_failing_entry_has_message_remediation_and_details(report: Report) -> None:
    text = markdown.render(report)
    assert (
        "  canary assistant-llm@3 has run 20d: 100% of traffic, over 14d<br>started 2025-06-10\\\n"
        "  **Remediation:** Promote it, roll it back, or extend it.\n"
        "\n"
        "  <details><summary>Details</summary>\n"
    ) in text
    assert "  **Evaluation error:** no such key: signoffs\n" in text
    # values and the fingerprint sit inside the collapsed block
    block = text[text.index("<details><summary>Details</summary>") :]
    block = block[: block.index("</details>")]
    assert "  | `age` | `480h` |" in block
    assert "  | `max_days` | `14.0` |" in block
    assert "  | fingerprint | `3b1bc2d93b5d5ff6` |" in block
    assert "  | enforcement | soft |" in block


def test_waived_and_pre_existing_tables(report: Report) -> None:
    text = markdown.render(report)
    assert (
        "| `production.entry.four-signoffs` | `search-reranker@3` | "
        "`models/search-reranker.yaml:12` | `EXC-2025-007` | "
        "search-reranker@3 lacks sign-offs: finance, ml |"
    ) in text
    assert (
        "| `canary.max-duration` | `embedding-encoder@2` | `models/embedding-encoder.yaml:40` | "
        "error | canary embedding-encoder@2 has run 30d |"
    ) in text
    assert "| `deployment.util-floor` | `doc-summarizer@1/docsum-v1-use1` | " in text
    assert "requires measured: no residency data |" in text
    assert "| `canary.max-duration` | `params.max_days` | `14.0` | `21.0` | `portfolio.yaml` |" in text
    assert "<summary>1 setting differs from the pack's defaults</summary>" in text


def test_pipes_are_escaped_in_table_cells(make_finding: FindingFactory, make_report: ReportFactory) -> None:
    waived = make_finding(
        "p.x",
        "a|b@1",
        "waived",
        file="models/a.yaml",
        line=2,
        message="cost | budget\nover",
        exception_id="EXC-1",
        values={"ratio|x": "3|4"},
    )
    text = markdown.render(make_report([waived]))
    (row,) = [line for line in text.splitlines() if line.startswith("| `p.x`")]
    assert row == "| `p.x` | `a\\|b@1` | `models/a.yaml:2` | `EXC-1` | cost \\| budget<br>over |"
    assert len(_cells(row)) == 5


def test_pipes_escaped_in_value_cells(make_finding: FindingFactory, make_report: ReportFactory) -> None:
    failing = make_finding("p.x", "a@1", "fail", values={"ratio|x": "3|4"}, blocking=True)
    text = markdown.render(make_report([failing]))
    (row,) = [line for line in text.splitlines() if "ratio|" in line or "ratio\\|" in line]
    assert row == "  | `ratio\\|x` | `3\\|4` |"
    assert len(_cells(row)) == 2


def test_markup_in_messages_is_shown_literally(
    make_finding: FindingFactory, make_report: ReportFactory
) -> None:
    finding = make_finding(
        "p.x",
        "a@1",
        "fail",
        blocking=True,
        message="<img src=x onerror=alert(1)> [link](http://x) *bold* `code` #12",
        remediation="- not a list\n===",
    )
    text = markdown.render(make_report([finding]))
    assert (
        "  \\<img src=x onerror=alert(1)\\> \\[link\\](http://x) \\*bold\\* \\`code\\` \\#12\\\n"
        "  **Remediation:** \\- not a list<br>\\===\n"
    ) in text
    assert "<img" not in text.replace("\\<img", "")


def test_code_spans_hold_backticks() -> None:
    assert markdown.code("a`b") == "``a`b``"
    assert markdown.code("`x`") == "`` `x` ``"
    assert markdown.code("plain") == "`plain`"


def test_long_sections_are_cut_with_a_note(make_finding: FindingFactory, make_report: ReportFactory) -> None:
    findings = [
        make_finding("p.x", f"m@{i}", "fail", file="models/m.yaml", line=i, blocking=True)
        for i in range(1, markdown.MAX_LISTED + 8)
    ]
    text = markdown.render(make_report(findings))
    entries = [line for line in text.splitlines() if line.startswith("- ❌ ")]
    assert len(entries) == markdown.MAX_LISTED
    assert "_…and 7 more; every finding is in the SARIF and JSON outputs._" in text
    assert f"## ❌ policy-engine: {markdown.MAX_LISTED + 7} blocking findings" in text
