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
        """One readable line, however long or strange the values it quotes."""
        text = f"{self.file}:{self.line}:{self.column}: {clip(self.message, 300)}"
        if self.json_path:
            text += f" [{clip(self.json_path, 200)}]"
        if self.expected:
            text += f" (expected {clip(self.expected, 400)})"
        return printable(text)


class InputErrors(Exception):
    """Raised with every input error of a stage; the CLI prints them and exits 2."""

    def __init__(self, errors: list[InputError]) -> None:
        super().__init__("\n".join(e.render() for e in errors))
        self.errors = errors


class UsageError(Exception):
    """A bad command line (unknown ref, unknown format, conflicting options): exit 2."""


def clip(text: str, limit: int = 300) -> str:
    """A message that quotes a huge value stays readable: keep its start and its end."""
    if len(text) <= limit:
        return text
    keep = (limit - 5) // 2
    return f"{text[:keep]} ... {text[-keep:]}"


def printable(text: str) -> str:
    """``text`` on one line with every control or invisible character escaped (``\\x1b``).

    Messages quote what hostile files contain; a raw newline would forge another error line,
    and a terminal escape sequence or a bidirectional override would change what is shown.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


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
