"""``audit``: the quarterly portfolio review. Collect → compute sections → render → exit code."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

from policy_engine.audit import renderer
from policy_engine.audit.collect import CollectOptions, collect
from policy_engine.audit.quarters import Period
from policy_engine.audit.sections import build
from policy_engine.commands.check import LoadOptions
from policy_engine.engine import FailOn
from policy_engine.outputs import OutputSpec, write_atomic

FORMATS = ("markdown", "html", "json")


@dataclass(frozen=True, slots=True)
class AuditOptions:
    load: LoadOptions
    period: Period
    fail_on: FailOn = "never"
    working_tree: bool = False
    outputs: list[OutputSpec] = field(default_factory=lambda: [OutputSpec("markdown", None)])
    progress: bool = False  # one-line progress on stderr (the CLI turns it on for a terminal)


class Progress:
    """A single status line on a terminal, rewritten in place and erased when done."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.count = 0

    def __call__(self, message: str) -> None:
        if self.stream is None:
            return
        self.count += 1
        self.stream.write(f"\r\x1b[Kaudit [{self.count}] {message}…")
        self.stream.flush()

    def clear(self) -> None:
        if self.stream is not None and self.count:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def run_audit(options: AuditOptions) -> int:
    progress = Progress(sys.stderr if options.progress else None)
    try:
        collected = collect(
            CollectOptions(options.load, options.period, options.fail_on, options.working_tree), progress
        )
        progress("computing the review")
        report = build(collected)
        rendered = []
        for spec in options.outputs:
            progress(f"rendering {spec.format}")
            rendered.append((spec, renderer(spec.format)(report)))
    finally:
        progress.clear()
    for spec, text in rendered:
        if spec.path is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            write_atomic(spec.path, text)
    return report.exit_code
