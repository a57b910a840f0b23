"""Terminal output: grouped by model, failing first, each failure with where and how to fix it."""

from __future__ import annotations

import textwrap
from collections import defaultdict

from policy_engine.models.report import Finding, Report

_RANK = {"error": 0, "fail": 1, "waived": 2, "pre_existing": 3, "skip": 4, "pass": 5}
_COLOURS = {
    "block": "31;1",
    "fail": "33",
    "error": "31;1",
    "waived": "36",
    "pre": "2",
    "ok": "32",
    "dim": "2",
}


def _paint(text: str, colour: str, enabled: bool) -> str:
    return f"\033[{_COLOURS[colour]}m{text}\033[0m" if enabled else text


def _label(finding: Finding) -> tuple[str, str]:
    if finding.status == "error":
        return "ERROR", "error"
    if finding.status == "fail":
        return ("BLOCK", "block") if finding.blocking else ("WARN ", "fail")
    if finding.status == "waived":
        return "WAIVED", "waived"
    if finding.status == "pre_existing":
        return "PRE  ", "pre"
    if finding.status == "skip":
        return "SKIP ", "dim"
    return "PASS ", "ok"


def _group(finding: Finding) -> str:
    if finding.model:
        return finding.model
    if finding.target.startswith("endpoint:"):
        return "endpoints"
    if finding.target.startswith("exception:"):
        return "exceptions"
    return "portfolio"


def render(report: Report, color: bool = False) -> str:
    lines = [
        f"policy-engine {report.tool.version} · as of {report.as_of} · context {report.context}"
        f" · CEL {report.tool.cel_backend}" + (f" · base {report.base}" if report.base else "")
    ]
    groups: dict[str, list[Finding]] = defaultdict(list)
    for finding in report.findings:
        groups[_group(finding)].append(finding)

    def group_rank(name: str) -> tuple[int, str]:
        worst = min(_RANK[f.status] - (1 if f.blocking else 0) for f in groups[name])
        return worst, name

    for name in sorted(groups, key=group_rank):
        lines.append("")
        lines.append(_paint(name, "dim", False) if not color else f"\033[1m{name}\033[0m")
        ordered = sorted(groups[name], key=lambda f: (not f.blocking, _RANK[f.status], f.target, f.policy_id))
        for finding in ordered:
            label, colour = _label(finding)
            where = ""
            if finding.location.file:
                where = f"{finding.location.file}:{finding.location.line}"
            lines.append(
                f"  {_paint(label, colour, color)} {finding.policy_id}  {finding.target}  {where}".rstrip()
            )
            lines.extend(
                textwrap.wrap(finding.message, 96, initial_indent="         ", subsequent_indent="         ")
            )
            if finding.exception_id:
                lines.append(f"         waived by {finding.exception_id}")
            if finding.remediation and finding.status in ("fail", "error"):
                fix = " ".join(finding.remediation.split())
                lines.extend(
                    textwrap.wrap(
                        fix, 96, initial_indent="         fix: ", subsequent_indent="              "
                    )
                )
    lines.append("")
    lines.extend(_summary(report, color))
    return "\n".join(lines) + "\n"


def _summary(report: Report, color: bool) -> list[str]:
    counts = report.summary.by_status
    parts = [
        f"{counts.get(s, 0)} {s.replace('_', '-')}"
        for s in ("fail", "error", "waived", "pre_existing", "pass", "skip")
        if counts.get(s, 0)
    ]
    out = []
    blocking = [f for f in report.findings if f.blocking]
    if blocking:
        out.append(
            _paint(f"Blocked by {len(blocking)} finding(s) in context {report.context}:", "block", color)
        )
        per_policy: dict[str, list[Finding]] = defaultdict(list)
        for finding in blocking:
            per_policy[finding.policy_id].append(finding)
        for policy_id, found in sorted(per_policy.items()):
            first = found[0]
            why = (
                "could not be evaluated (fail closed)"
                if first.status == "error"
                else (f"{first.severity} severity, {first.enforcement} enforcement")
            )
            targets = ", ".join(sorted({f.target for f in found})[:4])
            more = "" if len({f.target for f in found}) <= 4 else ", …"
            out.append(f"  {policy_id}: {len(found)} ({why}) on {targets}{more}")
    verdict = f"exit {report.summary.exit_code}"
    out.append(f"Summary: {', '.join(parts) or 'nothing evaluated'} — {len(blocking)} blocking, {verdict}")
    return out
