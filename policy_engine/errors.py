"""Exit codes and the input-error type every loader raises.

Input errors are collected, never raised one at a time to the user: a run reports every
broken file at once, each as ``path:line:col: message [json.path] (expected ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    BLOCKING = 1
    INPUT_ERROR = 2
    INTERNAL_ERROR = 3


@dataclass(frozen=True, slots=True)
class InputError:
    """One problem with a user's file, located as precisely as the source allows."""

    file: str
    line: int
    column: int
    message: str
    json_path: str = ""
    expected: str = ""

    def render(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.message}"
        if self.json_path:
            text += f" [{self.json_path}]"
        if self.expected:
            text += f" (expected {self.expected})"
        return text


class InputErrors(Exception):
    """Raised with every input error of a stage; the CLI prints them and exits 2."""

    def __init__(self, errors: list[InputError]) -> None:
        super().__init__("\n".join(e.render() for e in errors))
        self.errors = errors


class UsageError(Exception):
    """A bad command line (unknown ref, unknown format, conflicting options): exit 2."""


def json_path(parts: tuple[str | int, ...]) -> str:
    """Render a location tuple as a JSON path: ``$.versions[0].canary.started_at``."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out
