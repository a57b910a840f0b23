"""The review as GitHub-flavoured Markdown: the layout's sections, with tables for the charts.

Everything taken from the report is escaped (``reporters.markdown``), so a name in the
manifest cannot add links, HTML or table cells to the document.
"""

from __future__ import annotations

from policy_engine.audit.layout import Bars, Block, Code, Items, Line, Para, Section, Stacked, Table, layout
from policy_engine.audit.model import AuditReport
from policy_engine.reporters.markdown import cell, code, escape


def render(report: AuditReport) -> str:
    document = layout(report)
    parts = [f"# {escape(document.title)}", escape(document.subtitle)]
    contents = " · ".join(f"[{escape(s.title)}](#{s.id})" for s in document.sections)
    parts.append(f"Contents: {contents}")
    for section in document.sections:
        parts.append(_section(section))
    return "\n\n".join(p for p in parts if p) + "\n"


def _section(section: Section) -> str:
    blocks = [f'<a id="{section.id}"></a>\n\n## {escape(section.title)}']
    blocks += [text for text in (_block(b) for b in section.blocks) if text]
    return "\n\n".join(blocks)


def _text(value: str) -> str:
    return cell(code(value)) if isinstance(value, Code) else escape(value)


def _block(block: Block) -> str:
    if isinstance(block, Para):
        if block.kind == "note":
            return f"**{escape(block.text)}**"
        if block.kind == "warning":
            return f"> ⚠ {escape(block.text)}"
        return escape(block.text)
    if isinstance(block, Items):
        prefix = "> ⚠ " if block.kind == "warning" else ""
        lines = [f"{prefix}- {escape(item)}" for item in block.items]
        return ("\n>\n" if block.kind == "warning" else "\n").join(lines)
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Bars | Stacked | Line):
        return ""  # the same numbers are in the section's tables; charts are drawn in HTML
    raise TypeError(type(block).__name__)  # pragma: no cover


def _table(table: Table) -> str:
    lines = []
    if table.title:
        lines += [f"**{escape(table.title)}**", ""]
    if not table.rows:
        lines.append(escape(table.empty))
        return "\n".join(lines)
    numeric = table.numeric or [False] * len(table.headers)
    headers = [escape(h) if h else " " for h in table.headers]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join("---:" if right else "---" for right in numeric) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_text(value) or " " for value in row) + " |")
    return "\n".join(lines)
