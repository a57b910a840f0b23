"""Markdown reporter: the pull-request comment, also used as the GitHub job summary.

Layout: a hidden marker (so a workflow can find and update its own comment), a heading with
the verdict, a severity × status table, the failing findings (blocking first) with their
remediation, then waived and pre-existing findings, then what passed or was skipped. The
values that decided each finding sit in collapsed ``<details>`` blocks.

Everything taken from the report is escaped, so a message cannot add HTML, links, headings or
table cells to the comment. Long reports are cut at a fixed number of entries per section with
a note pointing at the complete outputs, keeping the body within GitHub's comment size limit.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from policy_engine.models.report import Finding, Report

MARKER: Final = "<!-- policy-engine:report -->"
MAX_LISTED: Final = 50
"""At most this many findings per section; the rest are counted, not listed."""
MAX_VALUE_CHARS: Final = 200

SEVERITIES: Final = ("error", "warning", "info")
_TABLE_STATUSES: Final = ("fail", "error", "waived", "pre_existing", "skip", "pass")
_STATUS_LABEL: Final = {
    "fail": "Fail",
    "error": "Error",
    "waived": "Waived",
    "pre_existing": "Pre-existing",
    "skip": "Skip",
    "pass": "Pass",
}
_SEVERITY_ICON: Final = {"error": "🔴", "warning": "🟡", "info": "🔵"}

_SPECIAL: Final = re.compile(r"([\\`*_\[\]<>|~#&!])")
# Line starts that would open a list or underline a heading: the punctuation gets a backslash.
_LIST_MARKER: Final = re.compile(r"^(\s*\d{0,9})([-+.)])(?=\s|$)", re.MULTILINE)
_SETEXT: Final = re.compile(r"^(\s*)([=-])(?=[=-]*\s*$)", re.MULTILINE)


def render(report: Report) -> str:
    """The report as a GitHub-flavoured Markdown document ending in a newline."""
    findings = report.findings
    failing = [f for f in findings if f.status in ("fail", "error")]
    failing.sort(key=lambda f: not f.blocking)  # stable: blocking first, sorted order within
    waived = [f for f in findings if f.status == "waived"]
    pre_existing = [f for f in findings if f.status == "pre_existing"]

    blocks = [MARKER, _heading(report, failing), _context_line(report), _summary_table(report)]
    if failing:
        blocks.append(_failing_section(failing))
    if waived:
        blocks.append(_waived_section(waived))
    if pre_existing:
        blocks.append(_pre_existing_section(pre_existing))
    blocks.append(_rest_section(report))
    if report.overrides:
        blocks.append(_overrides_section(report))
    return "\n\n".join(block for block in blocks if block) + "\n"


# -- escaping ----------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Escape text so Markdown and HTML in it are shown literally; newlines become ``<br>``."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    text = _SPECIAL.sub(r"\\\1", text)
    text = _LIST_MARKER.sub(r"\1\\\2", text)
    text = _SETEXT.sub(r"\1\\\2", text)
    return "<br>".join(text.split("\n"))


def code(text: str) -> str:
    """An inline code span holding ``text`` exactly, whatever backticks it contains."""
    text = " ".join(text.replace("\r", "\n").split("\n"))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def cell(text: str) -> str:
    """Make a code span safe inside a table cell: GFM splits cells on ``|`` even inside code.

    Text from :func:`escape` is already safe there (its pipes are escaped).
    """
    return text.replace("|", "\\|")


# -- sections ----------------------------------------------------------------------------------


def _heading(report: Report, failing: list[Finding]) -> str:
    blocking = report.summary.blocking
    if blocking:
        return f"## ❌ policy-engine: {_plural(blocking, 'blocking finding')}"
    non_blocking = sum(1 for f in failing if not f.blocking)
    if non_blocking:
        return f"## ⚠️ policy-engine: nothing blocking ({_plural(non_blocking, 'non-blocking finding')})"
    return "## ✅ policy-engine: nothing blocking"


def _context_line(report: Report) -> str:
    parts = [f"Context {code(report.context)}", f"as of {code(report.as_of)}"]
    if report.base or report.head:
        parts.append(f"base {code(report.base or '?')} → head {code(report.head or '?')}")
    tool = report.tool
    parts.append(
        f"{escape(tool.name)} {escape(tool.version)} (pack {escape(tool.pack_version)}, "
        f"CEL {escape(tool.cel_backend)})"
    )
    parts.append(f"exit code {report.summary.exit_code}")
    return " · ".join(parts)


def _summary_table(report: Report) -> str:
    """Severity × status counts of the listed findings, with the run's totals underneath.

    Pass and skip results are always counted but listed only with ``--all``; when a status has
    more results than listed findings, its per-severity cells show ``–``.
    """
    listed: dict[tuple[str, str], int] = {}
    per_status: dict[str, int] = {}
    blocking: dict[str, int] = {}
    for f in report.findings:
        listed[f.severity, f.status] = listed.get((f.severity, f.status), 0) + 1
        per_status[f.status] = per_status.get(f.status, 0) + 1
        if f.blocking:
            blocking[f.severity] = blocking.get(f.severity, 0) + 1
    totals = {s: max(report.summary.by_status.get(s, 0), per_status.get(s, 0)) for s in _TABLE_STATUSES}
    statuses = [
        s for s in _TABLE_STATUSES if s != "pre_existing" or totals[s] or report.context == "pull-request"
    ]
    complete = {s: per_status.get(s, 0) == totals[s] for s in statuses}

    lines = [
        "| Severity | " + " | ".join(_STATUS_LABEL[s] for s in statuses) + " | Blocking |",
        "|:--|" + "--:|" * (len(statuses) + 1),
    ]
    for severity in SEVERITIES:
        counts = [str(listed.get((severity, s), 0)) if complete[s] else "–" for s in statuses]
        lines.append(
            f"| {_SEVERITY_ICON[severity]} {severity} | "
            + " | ".join(counts)
            + f" | {blocking.get(severity, 0)} |"
        )
    total_cells = " | ".join(f"**{totals[s]}**" for s in statuses)
    lines.append(f"| **Total** | {total_cells} | **{report.summary.blocking}** |")
    if not all(complete.values()):
        lines += [
            "",
            "_–: counted but not listed in this report; run with `--all` to list every result._",
        ]
    return "\n".join(lines)


def _failing_section(failing: list[Finding]) -> str:
    blocking = sum(1 for f in failing if f.blocking)
    title = f"### Failing ({len(failing)}"
    title += f", {blocking} blocking)" if blocking else ")"
    entries = [_failing_entry(f) for f in failing[:MAX_LISTED]]
    return "\n\n".join([title, *entries, *_more(len(failing))])


def _failing_entry(finding: Finding) -> str:
    verdict = "❌ **blocking**" if finding.blocking else "⚠️ not blocking"
    head = f"- {verdict} · {code(finding.policy_id)} on {code(finding.target)} · {_where(finding)}"
    message = escape(finding.message)
    if finding.status == "error":
        message = f"**Evaluation error:** {message}"
    lines = [head, f"  {message}"]
    if finding.remediation and finding.remediation.strip():
        lines.append(f"  **Remediation:** {escape(finding.remediation)}")
    return "\\\n".join(lines) + "\n\n" + _details(finding)


def _details(finding: Finding) -> str:
    rows = [
        f"| severity | {_SEVERITY_ICON[finding.severity]} {finding.severity} |",
        f"| status | {_STATUS_LABEL[finding.status].lower()} |",
        f"| enforcement | {finding.enforcement} |",
    ]
    if finding.validation != "0":
        rows.append(f"| validation | {cell(code(finding.validation))} |")
    rows.append(f"| fingerprint | {code(finding.fingerprint)} |")
    values = finding.model_dump(mode="json")["values"]
    for name, value in values.items():
        rows.append(f"| {cell(code(str(name)))} | {cell(code(_value(value)))} |")
    return "\n".join(
        [
            "  <details><summary>Details</summary>",
            "",
            "  | Name | Value |",
            "  |:--|:--|",
            *(f"  {row}" for row in rows),
            "",
            "  </details>",
        ]
    )


def _waived_section(waived: list[Finding]) -> str:
    lines = [
        f"### Waived ({len(waived)})",
        "",
        "| Policy | Target | Location | Exception | Message |",
        "|:--|:--|:--|:--|:--|",
    ]
    for f in waived[:MAX_LISTED]:
        exception = code(f.exception_id) if f.exception_id else "–"
        lines.append(
            f"| {cell(code(f.policy_id))} | {cell(code(f.target))} | {cell(_where(f))} | "
            f"{cell(exception)} | {escape(f.message)} |"
        )
    return "\n".join(lines + [f"\n{note}" for note in _more(len(waived))])


def _pre_existing_section(pre_existing: list[Finding]) -> str:
    lines = [
        f"### Pre-existing at base ({len(pre_existing)})",
        "",
        "Already failing on targets this change does not touch; they do not block.",
        "",
        "| Policy | Target | Location | Severity | Message |",
        "|:--|:--|:--|:--|:--|",
    ]
    for f in pre_existing[:MAX_LISTED]:
        lines.append(
            f"| {cell(code(f.policy_id))} | {cell(code(f.target))} | {cell(_where(f))} | "
            f"{f.severity} | {escape(f.message)} |"
        )
    return "\n".join(lines + [f"\n{note}" for note in _more(len(pre_existing))])


def _rest_section(report: Report) -> str:
    passed_listed = sum(1 for f in report.findings if f.status == "pass")
    skipped_findings = [f for f in report.findings if f.status == "skip"]
    passed = max(report.summary.by_status.get("pass", 0), passed_listed)
    skipped = max(report.summary.by_status.get("skip", 0), len(skipped_findings))
    lines = [f"<details><summary>{_plural(passed, 'check')} passed, {skipped} skipped</summary>", ""]
    if skipped_findings:
        lines += ["| Policy | Target | Reason |", "|:--|:--|:--|"]
        for f in skipped_findings[:MAX_LISTED]:
            reason = escape(f.skip_reason) if f.skip_reason else "–"
            lines.append(f"| {cell(code(f.policy_id))} | {cell(code(f.target))} | {reason} |")
        lines += [f"\n{note}" for note in _more(len(skipped_findings))]
    if passed > passed_listed or skipped > len(skipped_findings):
        if skipped_findings:
            lines.append("")
        lines.append("Passing and skipped results are counted here; run with `--all` to list them.")
    elif not skipped_findings:
        lines.append("Nothing was skipped.")
    lines += ["", "</details>"]
    return "\n".join(lines)


def _overrides_section(report: Report) -> str:
    lines = [
        f"<details><summary>{_differ(len(report.overrides))} from the pack's defaults</summary>",
        "",
        "| Policy | Setting | Default | Value | Source |",
        "|:--|:--|:--|:--|:--|",
    ]
    for o in report.overrides:
        lines.append(
            f"| {cell(code(o.policy_id))} | {cell(code(o.setting))} | "
            f"{cell(code(_value(o.default)))} | {cell(code(_value(o.value)))} | "
            f"{cell(code(o.source))} |"
        )
    lines += ["", "</details>"]
    return "\n".join(lines)


# -- helpers -----------------------------------------------------------------------------------


def _where(finding: Finding) -> str:
    where = finding.location
    if where.file is None:
        return "no file"
    text = where.file
    if where.line is not None:
        text += f":{where.line}"
    return code(text)


def _value(value: Any) -> str:
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 1] + "…"
    return text


def _more(total: int) -> list[str]:
    if total <= MAX_LISTED:
        return []
    return [f"_…and {total - MAX_LISTED} more; every finding is in the SARIF and JSON outputs._"]


def _differ(count: int) -> str:
    return "1 setting differs" if count == 1 else f"{count} settings differ"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
