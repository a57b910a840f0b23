"""The versioned JSON report (``schemas/report.schema.json``).

Rendered in pieces: 200,000 findings make a report of about 200 MB, and rendering it as one
string would hold it twice (the serializer's buffer and the string) next to the report itself.
The pieces join to exactly ``report.model_dump_json(indent=2)`` and a newline.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from policy_engine.models.report import Finding, Report

FINDINGS_PER_PIECE = 1000
# The report's own key: top-level keys, and only they, are indented by two spaces.
_EMPTY = '\n  "findings": []'


def render(report: Report) -> Iterator[str]:
    findings = report.findings
    if not findings:
        yield report.model_dump_json(indent=2) + "\n"
        return
    outline = report.model_copy(update={"findings": []}).model_dump_json(indent=2)
    head, _, tail = outline.partition(_EMPTY)
    yield head + '\n  "findings": [\n'
    for start in range(0, len(findings), FINDINGS_PER_PIECE):
        piece = _findings().dump_json(findings[start : start + FINDINGS_PER_PIECE], indent=2).decode()
        # A list dumped alone sits at the top level: indent it one level deeper, as inside the
        # report, and join the pieces' items with a comma (JSON strings never hold a newline).
        items = piece[2:-2].replace("\n", "\n  ")
        yield ("  " if start == 0 else ",\n  ") + items
    yield "\n  ]" + tail + "\n"


@cache
def _findings() -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(list[Finding])
