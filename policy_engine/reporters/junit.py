"""JUnit XML reporter: one test suite per policy, one test case per finding.

``fail`` is a ``<failure>``, ``error`` an ``<error>``; ``skip``, ``waived`` and ``pre_existing``
are ``<skipped>`` with the reason; ``pass`` is a plain test case. Pass and skip findings appear
only when the report lists them (``--all``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Final

from policy_engine.models.report import Finding, Report

_XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'
# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render(report: Report) -> str:
    """The report as a JUnit XML document ending in a newline."""
    by_policy: dict[str, list[Finding]] = {policy.id: [] for policy in report.policies}
    for finding in report.findings:
        by_policy.setdefault(finding.policy_id, []).append(finding)

    root = ET.Element("testsuites", {"name": report.tool.name})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for policy_id, findings in by_policy.items():
        suite = ET.SubElement(root, "testsuite", {"name": _clean(policy_id)})
        counts = {"tests": len(findings), "failures": 0, "errors": 0, "skipped": 0}
        for finding in findings:
            outcome = _testcase(suite, finding)
            if outcome:
                counts[outcome] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", "0")
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", "0")
    ET.indent(root)
    return _XML_DECLARATION + ET.tostring(root, encoding="unicode") + "\n"


def _testcase(suite: ET.Element, finding: Finding) -> str | None:
    """Add the test case; return the counter it adds to (failures, errors, skipped) if any."""
    name = finding.target
    if finding.validation != "0":
        name += f"#{finding.validation}"
    case = ET.SubElement(suite, "testcase", {"classname": _clean(finding.policy_id), "name": _clean(name)})
    case.set("time", "0")
    if finding.location.file is not None:
        case.set("file", _clean(finding.location.file))
        if finding.location.line is not None:
            case.set("line", str(finding.location.line))

    if finding.status in ("fail", "error"):
        tag, counter = ("failure", "failures") if finding.status == "fail" else ("error", "errors")
        element = ET.SubElement(case, tag, {"message": _clean(finding.message), "type": finding.severity})
        element.text = _clean(_details(finding))
        return counter
    if finding.status in ("skip", "waived", "pre_existing"):
        if finding.status == "skip":
            reason = finding.skip_reason or "not applicable"
        elif finding.status == "waived":
            reason = f"waived by {finding.exception_id}" if finding.exception_id else "waived"
        else:
            reason = "pre-existing at base"
        skipped = ET.SubElement(case, "skipped", {"message": _clean(reason)})
        if finding.status != "skip":
            skipped.text = _clean(_details(finding))
        return "skipped"
    return None


def _details(finding: Finding) -> str:
    lines = [finding.message.strip()]
    if finding.remediation and finding.remediation.strip():
        lines.append(f"Remediation: {finding.remediation.strip()}")
    where = finding.location
    if where.file is not None:
        place = where.file
        if where.line is not None:
            place += f":{where.line}"
            if where.column is not None:
                place += f":{where.column}"
        lines.append(f"Location: {place}")
    lines.append(
        f"Severity: {finding.severity}; enforcement: {finding.enforcement}; "
        f"blocking: {'yes' if finding.blocking else 'no'}"
    )
    lines.append(f"Fingerprint: {finding.fingerprint}")
    return "\n".join(lines)


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)
