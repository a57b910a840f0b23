"""GitHub Actions reporter: workflow-command annotations on the exact line.

``::error`` for blocking findings, ``::warning`` for findings that fail but do not block,
``::notice`` for info-severity failures, waived findings and findings that already failed at
the base. GitHub shows at most ten annotations of each kind per step, so each kind is sorted by
severity, the first ten are emitted, and a plain closing line says how many were left out
(they are all in the SARIF file and the other outputs). :func:`step_summary` gives the Markdown
for ``$GITHUB_STEP_SUMMARY``.

Report text is escaped as the Actions toolkit does (``escapeData``/``escapeProperty``), so a
message can never end the command or start a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from policy_engine.models.report import Finding, Report
from policy_engine.reporters.markdown import render as render_markdown

Kind = Literal["error", "warning", "notice"]

KINDS: Final[tuple[Kind, ...]] = ("error", "warning", "notice")
MAX_PER_KIND: Final = 10
_SEVERITY_RANK: Final = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Annotation:
    kind: Kind
    finding: Finding

    @property
    def command(self) -> str:
        """The workflow command line for this annotation."""
        f = self.finding
        props: list[tuple[str, str]] = []
        if f.location.file is not None:
            props.append(("file", f.location.file))
            if f.location.line is not None:
                props.append(("line", str(f.location.line)))
                if f.location.column is not None:
                    props.append(("col", str(f.location.column)))
        props.append(("title", f"{f.policy_id} · {f.target}"))
        rendered = ",".join(f"{key}={escape_property(value)}" for key, value in props)
        return f"::{self.kind} {rendered}::{escape_data(_message(f))}"


@dataclass(frozen=True)
class Selection:
    shown: list[Annotation]
    hidden: dict[Kind, int]

    @property
    def hidden_total(self) -> int:
        return sum(self.hidden.values())


def escape_data(text: str) -> str:
    """Escape the message part of a workflow command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a property value of a workflow command."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def kind_of(finding: Finding) -> Kind | None:
    """The annotation kind for a finding, or None when it is not annotated (pass, skip)."""
    if finding.blocking:
        return "error"
    if finding.status in ("fail", "error"):
        return "notice" if finding.severity == "info" else "warning"
    if finding.status in ("waived", "pre_existing"):
        return "notice"
    return None


def select(report: Report) -> Selection:
    """Annotations to emit, sorted by kind then severity, at most ten of each kind."""
    annotations = [
        Annotation(kind, finding) for finding in report.findings if (kind := kind_of(finding)) is not None
    ]
    annotations.sort(key=lambda a: (KINDS.index(a.kind), _SEVERITY_RANK[a.finding.severity]))
    shown: list[Annotation] = []
    hidden: dict[Kind, int] = dict.fromkeys(KINDS, 0)
    emitted: dict[Kind, int] = dict.fromkeys(KINDS, 0)
    for annotation in annotations:
        if emitted[annotation.kind] < MAX_PER_KIND:
            emitted[annotation.kind] += 1
            shown.append(annotation)
        else:
            hidden[annotation.kind] += 1
    return Selection(shown, hidden)


def render(report: Report) -> str:
    """Workflow commands, one per line, then a plain line about any that were left out."""
    selection = select(report)
    lines = [annotation.command for annotation in selection.shown]
    if selection.hidden_total:
        lines.append(
            f"policy-engine: {_hidden_text(selection)} not shown as annotations "
            f"(GitHub shows at most {MAX_PER_KIND} of each kind per step); "
            "every finding is in the SARIF file and the other outputs."
        )
    return "".join(f"{line}\n" for line in lines)


def step_summary(report: Report) -> str:
    """Markdown for ``$GITHUB_STEP_SUMMARY``: the PR comment plus a note on hidden annotations."""
    summary = render_markdown(report)
    selection = select(report)
    if selection.hidden_total:
        summary += (
            "\n> [!NOTE]\n"
            f"> {_hidden_text(selection)} not shown as annotations on this step "
            f"(GitHub shows at most {MAX_PER_KIND} of each kind per step). "
            "Every finding is in the SARIF file uploaded to code scanning and in the other "
            "outputs of this run.\n"
        )
    return summary


def _message(finding: Finding) -> str:
    text = finding.message.strip()
    if finding.status == "waived":
        waiver = f"exception {finding.exception_id}" if finding.exception_id else "an exception"
        text = f"Waived by {waiver}: {text}"
    elif finding.status == "pre_existing":
        text = f"Pre-existing at base: {text}"
    if finding.remediation and finding.remediation.strip():
        text += "\n" + finding.remediation.strip()
    return text


def _hidden_text(selection: Selection) -> str:
    parts = [f"{count} {kind}" for kind, count in selection.hidden.items() if count]
    noun = "finding" if selection.hidden_total == 1 else "findings"
    return f"{selection.hidden_total} more {noun} ({', '.join(parts)})"
