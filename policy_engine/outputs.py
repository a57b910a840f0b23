"""Writing reports: atomically to files, or to stdout; stdout carries only the report."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from policy_engine import reporters
from policy_engine.errors import UsageError
from policy_engine.models.report import Report


@dataclass(frozen=True, slots=True)
class OutputSpec:
    format: str
    path: Path | None


def parse_formats(values: tuple[str, ...], output: Path | None) -> list[OutputSpec]:
    """``--format NAME[=PATH]`` (repeatable); ``--output`` gives the one stdout format a path."""
    specs = []
    for value in values or ("text",):
        name, _, path = value.partition("=")
        if name not in reporters.REPORTERS:
            raise UsageError(f"unknown format {name!r}; choose from {', '.join(reporters.REPORTERS)}")
        specs.append(OutputSpec(name, Path(path) if path else None))
    to_stdout = [s for s in specs if s.path is None]
    if len(to_stdout) > 1:
        raise UsageError("at most one --format may go to stdout; give the others a path (NAME=PATH)")
    if output is not None:
        if not to_stdout:
            raise UsageError(
                "--output names the file for the format without a path, but every format has one"
            )
        specs = [OutputSpec(s.format, output) if s.path is None else s for s in specs]
    return specs


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory, so a failed run never truncates a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def emit(report: Report, specs: list[OutputSpec], *, color: bool, step_summary: Path | None = None) -> None:
    """Render every requested format; with the github format, also append the job summary."""
    for spec in specs:
        if spec.format == "text":
            from policy_engine.reporters.text import render as render_text

            text = render_text(report, color=color and spec.path is None)
        else:
            text = reporters.get(spec.format)(report)
        if spec.path is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            write_atomic(spec.path, text)
        if spec.format == "github" and step_summary is not None:
            from policy_engine.reporters.github import step_summary as summary_of

            with step_summary.open("a", encoding="utf-8") as handle:
                handle.write(summary_of(report))
