"""SARIF 2.1.0 reporter: code scanning results with rules from policy metadata.

One ``tool.driver.rules[]`` entry per policy in the report; one result per finding that is not
``pass`` or ``skip``. Waived findings stay in the file as suppressed results, so the alert is
shown as dismissed rather than silently dropped. Results match across runs on
``partialFingerprints["policyEngine/v1"]``, the finding fingerprint (never a line number).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final
from urllib.parse import quote

from policy_engine.models.report import Finding, PolicyInfo, Report

SARIF_VERSION: Final = "2.1.0"
SARIF_SCHEMA_URI: Final = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
FINGERPRINT_KEY: Final = "policyEngine/v1"
SRCROOT: Final = "%SRCROOT%"

_LEVEL_BY_SEVERITY: Final = {"error": "error", "warning": "warning", "info": "note"}
_PROBLEM_SEVERITY: Final = {"error": "error", "warning": "warning", "info": "recommendation"}
_REPORTED: Final = frozenset({"fail", "error", "waived", "pre_existing"})
# Characters kept as they are in a relative URI path; everything else is percent-encoded.
# ``:`` is left out on purpose: in a first path segment it would read as a URI scheme.
_URI_SAFE: Final = "/!$&'()*+,;=@~"


def render(report: Report) -> str:
    """The report as a SARIF 2.1.0 log, indented JSON ending in a newline."""
    rules, index = _rules(report)
    results = [
        _result(finding, index[finding.policy_id])
        for finding in report.findings
        if finding.status in _REPORTED
    ]
    driver: dict[str, Any] = {
        "name": report.tool.name,
        "version": report.tool.version,
        "rules": rules,
        "properties": {
            "cel_backend": report.tool.cel_backend,
            "pack_version": report.tool.pack_version,
        },
    }
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        "originalUriBaseIds": {
            SRCROOT: {"description": {"text": "The root of the repository that was checked."}}
        },
        "columnKind": "unicodeCodePoints",
        "results": results,
        "properties": {
            "schema_version": report.schema_version,
            "as_of": report.as_of,
            "context": report.context,
            "base": report.base,
            "head": report.head,
            "blocking": report.summary.blocking,
            "exit_code": report.summary.exit_code,
        },
    }
    log = {"$schema": SARIF_SCHEMA_URI, "version": SARIF_VERSION, "runs": [run]}
    return json.dumps(log, indent=2, sort_keys=False) + "\n"


def _rules(report: Report) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rules in policy order, plus a minimal rule for any finding whose policy is not listed."""
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for policy in report.policies:
        if policy.id not in index:
            index[policy.id] = len(rules)
            rules.append(_rule(policy))
    for finding in report.findings:
        if finding.status in _REPORTED and finding.policy_id not in index:
            index[finding.policy_id] = len(rules)
            rules.append(
                _rule(
                    PolicyInfo(
                        id=finding.policy_id,
                        severity=finding.severity,
                        scope="unknown",
                        source="unknown",
                    )
                )
            )
    return rules, index


def _rule(policy: PolicyInfo) -> dict[str, Any]:
    title = policy.title or policy.id
    rationale = policy.rationale or title
    remediation = _unique(policy.remediation)
    help_text = rationale
    help_markdown = f"**{_md(title)}**\n\n{_md(rationale)}"
    if remediation:
        help_text += "\n\nRemediation:\n" + "\n".join(f"- {step}" for step in remediation)
        help_markdown += "\n\n**Remediation**\n\n" + "\n".join(f"- {_md(step)}" for step in remediation)
    properties: dict[str, Any] = {
        "tags": _unique(policy.tags),
        "problem.severity": _PROBLEM_SEVERITY[policy.severity],
        "scope": policy.scope,
        "source": policy.source,
    }
    if policy.enforcement:
        properties["enforcement"] = dict(policy.enforcement)
    return {
        "id": policy.id,
        "name": _rule_name(policy.id),
        "shortDescription": {"text": title},
        "fullDescription": {"text": rationale},
        "help": {"text": help_text, "markdown": help_markdown},
        "defaultConfiguration": {"level": _LEVEL_BY_SEVERITY[policy.severity]},
        "properties": properties,
    }


def _result(finding: Finding, rule_index: int) -> dict[str, Any]:
    text = finding.message
    if finding.remediation:
        text += "\n" + finding.remediation
    result: dict[str, Any] = {
        "ruleId": finding.policy_id,
        "ruleIndex": rule_index,
        "level": _level(finding),
        "message": {"text": text},
    }
    location = _location(finding)
    if location is not None:
        result["locations"] = [location]
    result["partialFingerprints"] = {FINGERPRINT_KEY: finding.fingerprint}
    if finding.status == "waived":
        justification = (
            f"exception {finding.exception_id}" if finding.exception_id else "waived by an exception"
        )
        result["suppressions"] = [{"kind": "external", "status": "accepted", "justification": justification}]
    result["properties"] = {
        "target": finding.target,
        "validation": finding.validation,
        "status": finding.status,
        "severity": finding.severity,
        "enforcement": finding.enforcement,
        "blocking": finding.blocking,
        "exception_id": finding.exception_id,
        "values": finding.model_dump(mode="json")["values"],
    }
    return result


def _level(finding: Finding) -> str:
    if finding.status == "error":
        return "error"
    if finding.status == "pre_existing":
        return "note"
    return _LEVEL_BY_SEVERITY[finding.severity]


def _location(finding: Finding) -> dict[str, Any] | None:
    where = finding.location
    if where.file is None:
        return None
    physical: dict[str, Any] = {
        "artifactLocation": {"uri": quote(where.file, safe=_URI_SAFE), "uriBaseId": SRCROOT}
    }
    if where.line is not None and where.line >= 1:
        region: dict[str, Any] = {"startLine": where.line}
        if where.column is not None and where.column >= 1:
            region["startColumn"] = where.column
        physical["region"] = region
    location: dict[str, Any] = {"physicalLocation": physical}
    location["logicalLocations"] = [
        {"name": finding.target, "fullyQualifiedName": finding.target, "kind": "resource"}
    ]
    return location


def _rule_name(policy_id: str) -> str:
    """``canary.max-duration`` -> ``CanaryMaxDuration``: an identifier without spaces."""
    parts = [part for part in re.split(r"[^0-9A-Za-z]+", policy_id) if part]
    return "".join(part[:1].upper() + part[1:] for part in parts) or policy_id


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


_MD_SPECIAL: Final = re.compile(r"([\\`*_\[\]<>|~#&!])")


def _md(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)
