"""The review as one self-contained HTML file: inline CSS, charts as inline SVG, no scripts,
no external fonts, styles or images, so it opens the same in any browser without a network."""

from __future__ import annotations

from html import escape

from policy_engine.audit import charts
from policy_engine.audit.layout import Bars, Block, Code, Items, Line, Para, Section, Stacked, Table, layout
from policy_engine.audit.model import AuditReport

STYLE = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1180px; padding: 24px; color: #1a202c; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #e2e8f0; padding-bottom: 4px; margin-top: 2em; }
.subtitle { color: #4a5568; margin-top: 0; }
nav { background: #f7fafc; border: 1px solid #e2e8f0; padding: 8px 12px; border-radius: 6px; }
nav a { margin-right: 12px; white-space: nowrap; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 0.9em; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid #e2e8f0; padding: 4px 8px; vertical-align: top; }
th { background: #edf2f7; text-align: left; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.92em;
       background: #f7fafc; padding: 0 2px; }
.note { font-weight: 600; margin-bottom: 2px; }
.warning { background: #fffaf0; border-left: 4px solid #dd6b20; padding: 6px 12px; }
.empty { color: #4a5568; font-style: italic; }
.chart { display: block; margin: 8px 0 16px; max-width: 100%; height: auto; }
.chart text { font-size: 12px; fill: #2d3748; }
.chart .chart-title { font-size: 14px; font-weight: 600; }
.chart .muted { fill: #718096; font-size: 11px; }
.chart .grid { stroke: #e2e8f0; stroke-width: 1; }
""".strip()


def render(report: AuditReport) -> str:
    document = layout(report)
    nav = " ".join(f'<a href="#{s.id}">{escape(s.title)}</a>' for s in document.sections)
    body = "\n".join(_section(s) for s in document.sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(document.title)}</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n"
        f"<h1>{escape(document.title)}</h1>\n"
        f'<p class="subtitle">{escape(document.subtitle)}</p>\n'
        f"<nav>{nav}</nav>\n{body}\n</body>\n</html>\n"
    )


def _section(section: Section) -> str:
    parts = [f'<section id="{section.id}">', f"<h2>{escape(section.title)}</h2>"]
    parts += [_block(block) for block in section.blocks]
    parts.append("</section>")
    return "\n".join(parts)


def _text(value: str) -> str:
    return f"<code>{escape(value)}</code>" if isinstance(value, Code) else escape(value)


def _block(block: Block) -> str:
    if isinstance(block, Para):
        css = {"text": "", "note": ' class="note"', "warning": ' class="warning"'}[block.kind]
        return f"<p{css}>{escape(block.text)}</p>"
    if isinstance(block, Items):
        css = ' class="warning"' if block.kind == "warning" else ""
        items = "".join(f"<li>{escape(item)}</li>" for item in block.items)
        return f"<ul{css}>{items}</ul>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Bars):
        return charts.bars(block.title, block.items, block.unit)
    if isinstance(block, Stacked):
        return charts.stacked(block.title, block.categories, block.series, block.unit, block.notes)
    if isinstance(block, Line):
        return charts.line(block.title, block.points, block.unit)
    raise TypeError(type(block).__name__)  # pragma: no cover


_NUM = ' class="num"'


def _table(table: Table) -> str:
    title = f"<caption>{escape(table.title)}</caption>" if table.title else ""
    if not table.rows:
        heading = f'<p class="note">{escape(table.title)}</p>' if table.title else ""
        return f'{heading}<p class="empty">{escape(table.empty)}</p>'
    numeric = table.numeric or [False] * len(table.headers)
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    rows = []
    for row in table.rows:
        cells = "".join(
            f"<td{_NUM if right else ''}>{_text(value)}</td>"
            for value, right in zip(row, numeric, strict=False)
        )
        rows.append(f"<tr>{cells}</tr>")
    body = "\n".join(rows)
    return f"<table>{title}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"
