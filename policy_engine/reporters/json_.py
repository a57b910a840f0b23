"""The versioned JSON report (``schemas/report.schema.json``).

Rendered in pieces: 200,000 findings make a report of about 200 MB, and rendering it as one
string would hold it twice (the serializer's buffer and the string) next to the report itself.
The pieces are UTF-8 bytes, as the serializer makes them (decoding them only for the writer to
encode them again took a third of the rendering), and join to exactly
``report.model_dump_json(indent=2)`` and a newline.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from policy_engine.models.report import Finding, Report

FINDINGS_PER_PIECE = 1000
# The report's own key: top-level keys, and only they, are indented by two spaces.
_EMPTY = b'\n  "findings": []'


def render(report: Report) -> Iterator[bytes]:
    findings = report.findings
    if not findings:
        yield report.model_dump_json(indent=2).encode() + b"\n"
        return
    outline = report.model_copy(update={"findings": []}).model_dump_json(indent=2).encode()
    head, _, tail = outline.partition(_EMPTY)
    yield head + b'\n  "findings": [\n'
    for start in range(0, len(findings), FINDINGS_PER_PIECE):
        piece = _findings().dump_json(findings[start : start + FINDINGS_PER_PIECE], indent=2)
        # A list dumped alone sits at the top level: indent it one level deeper, as inside the
        # report, and join the pieces' items with a comma (JSON strings never hold a newline).
        items = piece[2:-2].replace(b"\n", b"\n  ")
        yield (b"  " if start == 0 else b",\n  ") + items
    yield b"\n  ]" + tail + b"\n"


@cache
def _findings() -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(list[Finding])
