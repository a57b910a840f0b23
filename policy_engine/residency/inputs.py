"""What the adapters share: located JSON inputs, daily windows, numbers that may not lie."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from policy_engine.errors import InputError, json_path
from policy_engine.residency.records import ResidencyRecord
from policy_engine.yamlsource import SourceMap, YamlError, parse

DAY = timedelta(days=1)


@dataclass
class Result:
    """What an adapter made of its inputs."""

    records: list[ResidencyRecord] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def extend(self, other: Result) -> None:
        self.records.extend(other.records)
        self.errors.extend(other.errors)
        self.warnings.extend(other.warnings)


class JsonInput:
    """One JSON document (a file or an HTTP response) whose errors point at file:line:col.

    Positions are only worked out when an error needs one: the text is parsed a second time
    with the located YAML reader (JSON is YAML), which is slow but only on the error path.
    """

    def __init__(self, name: str, data: Any, text: str | None = None) -> None:
        self.name = name
        self.data = data
        self.text = text
        self._source: SourceMap | None = None

    @classmethod
    def from_bytes(cls, name: str, raw: bytes) -> JsonInput | InputError:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return InputError(name, 1, exc.start + 1, "invalid UTF-8", "", "UTF-8 JSON")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return InputError(name, exc.lineno, exc.colno, f"invalid JSON: {exc.msg}", "", "a JSON document")
        return cls(name, data, text)

    def locate(self, path: tuple[str | int, ...]) -> tuple[int, int]:
        if self.text is None:
            return (1, 1)
        if self._source is None:
            try:
                self._source = parse(self.text, self.name)[1]
            except YamlError:
                self._source = SourceMap(self.name)
        return self._source.locate(path)

    def error(self, path: tuple[str | int, ...], message: str, expected: str = "") -> InputError:
        line, column = self.locate(path)
        return InputError(self.name, line, column, message, json_path(path), expected)


def number(
    value: Any,
    where: JsonInput,
    path: tuple[str | int, ...],
    errors: list[InputError],
    *,
    negative_ok: bool = False,
) -> float | None:
    """A JSON number (or a numeric string, as Prometheus sends) checked for NaN, Inf and sign.

    ``None`` stays ``None`` (missing, never zero); anything wrong is a located error.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        errors.append(where.error(path, f"{value!r} is not a number", "a number"))
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            errors.append(where.error(path, f"{value!r} is not a number", "a number"))
            return None
    if not isinstance(value, int | float):
        errors.append(where.error(path, f"expected a number, got {type(value).__name__}", "a number"))
        return None
    result = float(value)
    if math.isnan(result) or math.isinf(result):
        errors.append(where.error(path, f"{value!r}: NaN and Inf are not allowed", "a finite number"))
        return None
    if result < 0 and not negative_ok:
        errors.append(where.error(path, f"negative value {value!r}", "a number ≥ 0"))
        return None
    return result


def day_windows(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut at UTC midnights."""
    windows = []
    cursor = start
    while cursor < end:
        midnight = datetime(cursor.year, cursor.month, cursor.day, tzinfo=UTC) + DAY
        upper = min(midnight, end)
        windows.append((cursor, upper))
        cursor = upper
    return windows


def midnight(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def is_midnight(moment: datetime) -> bool:
    return moment == midnight(moment)
