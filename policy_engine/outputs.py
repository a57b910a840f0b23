"""Writing reports: atomically to files, or to stdout; stdout carries only the report."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from policy_engine import reporters
from policy_engine.errors import UsageError
from policy_engine.models.report import Report
from policy_engine.reporters import Rendered


@dataclass(frozen=True, slots=True)
class OutputSpec:
    format: str
    path: Path | None


def parse_formats(
    values: tuple[str, ...],
    output: Path | None,
    *,
    choices: Collection[str] | None = None,
    default: str = "text",
) -> list[OutputSpec]:
    """``--format NAME[=PATH]`` (repeatable); ``--output`` gives the one stdout format a path.

    ``choices`` are the format names the command knows (default: the check reporters)."""
    known = reporters.REPORTERS if choices is None else choices
    specs = []
    for value in values or (default,):
        name, _, path = value.partition("=")
        if name not in known:
            raise UsageError(f"unknown format {name!r}; choose from {', '.join(known)}")
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
    _commit([_stage(path, text)])


_SLICE = 1 << 20  # characters


def _stage(path: Path, text: Rendered) -> tuple[Path, Path]:
    """Write ``text`` to a temporary file beside ``path``; (temporary, final). A file that cannot
    be written is a usage error (exit 2) naming it, and leaves ``path`` as it was."""
    tmp: Path | None = None
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as handle:
            for piece in [text] if isinstance(text, str) else text:
                if isinstance(piece, bytes):
                    handle.write(piece)
                    continue
                # In slices: encoding a large report at once would hold a second copy of it.
                for start in range(0, len(piece), _SLICE):
                    handle.write(piece[start : start + _SLICE].encode())
        os.chmod(tmp, _mode_for(path))  # mkstemp makes it private; a report is an ordinary file
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    return tmp, path


def _joined(pieces: Iterator[str] | Iterator[bytes]) -> str:
    return "".join(piece.decode() if isinstance(piece, bytes) else piece for piece in pieces)


def _commit(staged: list[tuple[Path, Path]]) -> None:
    """Rename every staged file over its destination; on failure remove what is left staged."""
    for index, (tmp, path) in enumerate(staged):
        try:
            os.replace(tmp, path)
        except BaseException as exc:  # also an interrupt: leave no temporary file behind
            for leftover, _ in staged[index:]:
                leftover.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
            raise


def _mode_for(path: Path) -> int:
    """The existing file's permissions, else what the umask gives a new file."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def emit(report: Report, specs: list[OutputSpec], *, color: bool, step_summary: Path | None = None) -> None:
    """Render every requested format; with the github format, also append the job summary.

    Everything is rendered, and every file written to a temporary beside it, before any report
    file is replaced: a run that fails part-way leaves every existing report as it was.
    """
    to_stdout = ""
    staged: list[tuple[Path, Path]] = []
    try:
        for spec in specs:
            if spec.format == "text":
                from policy_engine.reporters.text import render as render_text

                text: Rendered = render_text(report, color=color and spec.path is None)
            else:
                text = reporters.get(spec.format)(report)
            if spec.path is None:
                to_stdout = text if isinstance(text, str) else _joined(text)  # at most one
            else:
                staged.append(_stage(spec.path, text))  # pieces go straight to the staged file
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    _commit(staged)
    if to_stdout:
        sys.stdout.write(to_stdout)
        sys.stdout.flush()
    for spec in specs:
        if spec.format == "github" and step_summary is not None:
            from policy_engine.reporters.github import step_summary as summary_of

            with step_summary.open("a", encoding="utf-8") as handle:
                handle.write(summary_of(report))
