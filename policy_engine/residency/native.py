"""The native residency format: JSON Lines (canonical) and a CSV projection.

Reading collects every problem of every file, each located as ``file:line:col`` with the
field's JSON path and what was expected; nothing is dropped and nothing becomes zero.
Besides per-record validation, a set of records is checked as a whole: two records of the
same source for the same deployment and window are duplicates, windows of one deployment and
source must not overlap, and all costs must share one currency.
"""

from __future__ import annotations

import csv
import difflib
import gc
import io
import math
import operator
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from policy_engine.errors import InputError, InputErrors, json_path
from policy_engine.models.types import format_timestamp, parse_timestamp
from policy_engine.residency.records import Cost, ResidencyRecord
from policy_engine.residency.rows import Cell, RowReader, assembled
from policy_engine.sources import FileSource

if TYPE_CHECKING:
    import _csv

    from policy_engine.residency.spread import Noted

Sink = Callable[[ResidencyRecord], None]  # takes each record as it is read

RESIDENCY_DIR = "residency"
SUFFIXES = (".jsonl", ".csv")

# CSV column -> (path in the record, cell type). Order = the order columns are written in.
CSV_COLUMNS: dict[str, tuple[tuple[str, ...], str]] = {
    "deployment_id": (("deployment_id",), "str"),
    "window_start": (("window_start",), "timestamp"),
    "window_end": (("window_end",), "timestamp"),
    "coverage": (("coverage",), "float"),
    "gpu_type": (("gpu_type",), "str"),
    "gpu_hours": (("gpu_hours",), "float"),
    "gpu_count_avg": (("gpu_count_avg",), "float"),
    "warm_replica_hours": (("warm_replica_hours",), "float"),
    "replicas_min_observed": (("replicas_min_observed",), "int"),
    "gpu_util_avg": (("gpu_util_avg",), "float"),
    "gpu_util_p95": (("gpu_util_p95",), "float"),
    "cost_total": (("cost", "total"), "float"),
    "cost_gpu": (("cost", "gpu"), "float"),
    "cost_other": (("cost", "other"), "float"),
    "currency": (("cost", "currency"), "str"),
    "cost_basis": (("cost", "basis"), "str"),
    "requests": (("requests",), "int"),
    "requests_failed": (("requests_failed",), "int"),
    "tokens_in": (("tokens_in",), "int"),
    "tokens_out": (("tokens_out",), "int"),
    "traffic_share": (("traffic_share",), "float"),
    "team": (("labels", "team"), "str"),
    "cost_center": (("labels", "cost_center"), "str"),
    "source": (("provenance", "source"), "str"),
    "replicas_max_observed": (("replicas_max_observed",), "int"),
    "unattributed_reason": (("unattributed_reason",), "str"),
    "schema_version": (("schema_version",), "int"),
}
CSV_REQUIRED = ("deployment_id", "window_start", "window_end")
LABEL_PREFIX = "label."
PROVENANCE_PREFIX = "provenance."
_PATH_TO_COLUMN = {path: column for column, (path, _) in CSV_COLUMNS.items()}
_COST_COLUMNS = ("cost_total", "cost_gpu", "cost_other")
_FOCUS_MARKERS = ("ChargePeriodStart", "BillingCurrency")
_JSON_COLUMN = re.compile(r"line \d+ column (\d+)")


# ---------------------------------------------------------------------------- error wording


def describe(error: Any, field: str) -> tuple[str, str]:
    """A pydantic error as (message, expected), naming ``field`` the way the user wrote it."""
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return f"missing required field {field!r}", ""
    if kind == "finite_number":
        return f"{field} is {_shown(value)}: NaN and Inf are not allowed", "a finite number"
    if kind == "greater_than_equal":
        return f"negative value {_shown(value)} for {field}", f"a number ≥ {_num(ctx.get('ge', 0))}"
    if kind == "less_than_equal":
        return (
            f"{field} is {_shown(value)}, above {_num(ctx.get('le', 1))}",
            "a ratio between 0 and 1 (utilisation in percent must be divided by 100)",
        )
    if kind == "timezone_aware":
        return (
            f"timestamp {_shown(value)} in {field} has no time zone",
            "an RFC 3339 timestamp with a zone, e.g. 2025-06-29T00:00:00Z",
        )
    if kind.startswith("datetime"):
        return (
            f"{_shown(value)} in {field} is not an RFC 3339 timestamp",
            "e.g. 2025-06-29T00:00:00Z",
        )
    if kind == "int_type":
        return f"{field} is {_shown(value)}, not a whole number", "an integer count"
    if kind in ("float_type", "float_parsing"):
        return f"{field} is {_shown(value)}, not a number", "a number"
    if kind == "string_type":
        return f"{field} is {_shown(value)}, not a string", "a string"
    if kind == "string_too_short":
        return f"{field} is empty", "a non-empty string (or null)"
    if kind == "string_pattern_mismatch":
        return f"{field} is {_shown(value)}", f"a value matching {ctx.get('pattern')}"
    if kind == "literal_error":
        return f"{field} is {_shown(value)}, which is not allowed", str(ctx.get("expected", ""))
    if kind in ("dict_type", "model_type"):
        return f"{field} is {_shown(value)}", "a JSON object"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, "), ""
    return f"{field}: {error['msg']}", ""


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _shown(value: Any) -> str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "NaN" if math.isnan(value) else ("Inf" if value > 0 else "-Inf")
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _known_fields(loc: tuple[str | int, ...]) -> list[str]:
    model: type[BaseModel] = ResidencyRecord
    if loc[:1] == ("cost",):
        model = Cost
    elif loc:
        return []
    return sorted(model.model_fields)


def _unknown_field(name: str, loc: tuple[str | int, ...]) -> tuple[str, str]:
    known = _known_fields(loc)
    message = f"unknown field {name!r}"
    guess = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if guess:
        message += f"; did you mean {guess[0]!r}?"
    return message, ("one of " + ", ".join(known)) if known else ""


# ---------------------------------------------------------------------------- JSON Lines


def parse_jsonl(
    text: str, file: str, sink: Sink | None = None, first_line: int = 1
) -> tuple[list[ResidencyRecord], list[InputError]]:
    """Every record of a JSON Lines text, plus every located problem. With ``sink``, each record
    goes there as it is read instead of into the list. ``first_line``: the file's line number
    of the text's first line (for a part of a file read on its own)."""
    records: list[ResidencyRecord] = []
    emit = sink or records.append
    errors: list[InputError] = []
    validate = ResidencyRecord.__pydantic_validator__.validate_json  # the model's own, minus a wrapper
    for number, line in enumerate(text.split("\n"), first_line):
        if not line or line.isspace():
            continue
        try:
            record: ResidencyRecord = validate(line)
        except ValidationError as exc:
            errors.extend(_jsonl_errors(exc, line, file, number))
            continue
        emit(record.located(file, number))
    return records, errors


def _jsonl_errors(exc: ValidationError, line: str, file: str, number: int) -> list[InputError]:
    out = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        kind = error["type"]
        if kind == "json_invalid":
            found = _JSON_COLUMN.search(str(error.get("ctx", {}).get("error", error["msg"])))
            column = int(found.group(1)) if found else 1
            out.append(
                InputError(
                    file, number, column, f"invalid JSON: {error['msg']}", "$", "one JSON object per line"
                )
            )
            continue
        if kind == "model_type" and not loc:
            out.append(
                InputError(file, number, 1, "a line is not a JSON object", "$", "one JSON object per line")
            )
            continue
        field = ".".join(str(p) for p in loc) or "record"
        if kind == "extra_forbidden":
            message, expected = _unknown_field(str(loc[-1]), loc[:-1])
        else:
            message, expected = describe(error, field)
        column = _key_column(line, loc[:-1] if kind == "missing" else loc)
        out.append(InputError(file, number, column, message, json_path(loc), expected))
    return out


def _key_column(line: str, loc: tuple[Any, ...]) -> int:
    """1-based column of the innermost key of ``loc`` in one JSON line (1 when not found)."""
    position = -1
    start = 0
    for part in loc:
        if isinstance(part, int):
            continue
        found = re.compile(r'"' + re.escape(str(part)) + r'"\s*:').search(line, start)
        if not found:
            break
        position = found.start()
        start = found.end()
    return position + 1 if position >= 0 else 1


# ---------------------------------------------------------------------------- CSV


def parse_csv(
    text: str, file: str, sink: Sink | None = None, first_line: int = 1
) -> tuple[list[ResidencyRecord], list[InputError]]:
    """Every record of a CSV text in the native projection, plus every located problem. With
    ``sink``, each record goes there as it is read instead of into the list. ``first_line``:
    where the text's second line (its first row) is line ``first_line + 1`` of the file, for a
    part of a file read on its own after a copy of its header."""
    shift = first_line - 1
    errors: list[InputError] = []
    records: list[ResidencyRecord] = []
    emit = sink or records.append
    raw_lines = text.split("\n")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return [], [InputError(file, 1, 1, "CSV file is empty", "", "a header row")]
    except csv.Error as exc:
        return [], [InputError(file, 1, 1, f"invalid CSV: {exc}", "", "a header row")]
    header = [name.strip() for name in header]
    columns = _cell_columns(raw_lines[0]) if raw_lines else []
    header_errors = _check_header(header, file, columns)
    if header_errors:
        return [], header_errors
    reader_of_rows = RowReader(_cells(header), _COST_AMOUNTS)
    rows = _plain_rows(raw_lines) if _plain(text, raw_lines) else _quoted_rows(reader, file, shift, errors)
    for number, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        record = reader_of_rows.record(row) if len(row) == len(header) else None
        if record is None:  # a problem somewhere in the row, or a value to check: pydantic decides
            line_text = raw_lines[number - 1] if number - 1 < len(raw_lines) else ""
            record = _csv_record(header, row, file, number + shift, _cell_columns(line_text), errors)
        if record is not None:
            emit(record.located(file, number + shift))
    return records, errors


def _plain(text: str, lines: list[str]) -> bool:
    """Whether every line is one row whose cells are split by commas alone, exactly as the CSV
    reader would read them: no quotes, carriage returns or NULs, no cell past its size limit."""
    if '"' in text or "\r" in text or "\0" in text:
        return False
    return max(map(len, lines), default=0) < csv.field_size_limit()


def _plain_rows(lines: list[str]) -> Iterator[tuple[int, list[str]]]:
    """The rows after the header of a plain text (see ``_plain``), with their line numbers."""
    for number in range(2, len(lines) + 1):
        yield number, lines[number - 1].split(",")


def _quoted_rows(
    reader: _csv.Reader, file: str, shift: int, errors: list[InputError]
) -> Iterator[tuple[int, list[str]]]:
    """The rows after the header as the CSV reader reads them, with the line each starts on;
    the first unreadable one ends them with an error."""
    previous = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = reader.line_num + shift
            errors.append(InputError(file, line, 1, f"invalid CSV: {exc}", "", "RFC 4180 CSV"))
            return
        yield previous + 1, row
        previous = reader.line_num


def _check_header(header: list[str], file: str, columns: list[int]) -> list[InputError]:
    errors = []
    seen: set[str] = set()
    for index, name in enumerate(header):
        column = columns[index] if index < len(columns) else 1
        if name in seen:
            errors.append(
                InputError(file, 1, column, f"column {name!r} appears twice", f"$.{name}", "each column once")
            )
        seen.add(name)
        if name in CSV_COLUMNS or name.startswith((LABEL_PREFIX, PROVENANCE_PREFIX)):
            continue
        guess = difflib.get_close_matches(name, list(CSV_COLUMNS), n=1, cutoff=0.6)
        hint = f"; did you mean {guess[0]!r}?" if guess else ""
        expected = "the native columns (" + ", ".join(CSV_COLUMNS) + ") or label.<key> / provenance.<key>"
        if all(marker in header for marker in _FOCUS_MARKERS):
            hint = "; this looks like a FOCUS export: run `policy-engine residency import --from focus`"
        errors.append(InputError(file, 1, column, f"unknown column {name!r}{hint}", "", expected))
        if "looks like a FOCUS export" in hint:
            break
    for name in CSV_REQUIRED:
        if name not in seen:
            errors.append(
                InputError(
                    file,
                    1,
                    1,
                    f"missing column {name!r}",
                    f"$.{name}",
                    "a header with " + ", ".join(CSV_REQUIRED),
                )
            )
    if any(name in seen for name in _COST_COLUMNS):
        for name in ("currency", "cost_basis"):
            if name not in seen:
                errors.append(
                    InputError(
                        file,
                        1,
                        1,
                        f"missing column {name!r} (cost columns are present)",
                        f"$.{name}",
                        "currency and cost_basis next to cost_total",
                    )
                )
    return errors


def _cell_columns(line: str) -> list[int]:
    """1-based start column of each cell of one CSV line, honouring quotes."""
    starts = [1]
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            starts.append(index + 2)
    return starts


def _cells(header: list[str]) -> list[Cell]:
    """Where each column of a (checked) header goes: labels and provenance by prefix, the rest
    by ``CSV_COLUMNS``."""
    cells = []
    for index, name in enumerate(header):
        if name.startswith((LABEL_PREFIX, PROVENANCE_PREFIX)):
            where, key = name.split(".", 1)
            cells.append(Cell(index, ("labels" if where == "label" else "provenance", key), "str"))
        else:
            path, kind = CSV_COLUMNS[name]
            cells.append(Cell(index, path, kind))
    return cells


_COST_AMOUNTS = frozenset(CSV_COLUMNS[name][0][-1] for name in _COST_COLUMNS)


def _csv_record(
    header: list[str],
    row: list[str],
    file: str,
    number: int,
    columns: list[int],
    errors: list[InputError],
) -> ResidencyRecord | None:
    def where(index: int) -> int:
        return columns[index] if index < len(columns) else 1

    if len(row) != len(header):
        errors.append(
            InputError(
                file,
                number,
                1,
                f"row has {len(row)} cells but the header has {len(header)}",
                "",
                "one cell per column (quote cells that contain commas)",
            )
        )
        return None
    data: dict[str, Any] = {"labels": {}, "provenance": {}}
    cost: dict[str, Any] = {}
    cost_present = False
    failed = False
    position: dict[tuple[str, ...], int] = {}
    for index, (name, cell) in enumerate(zip(header, row, strict=True)):
        cell = cell.strip()
        if name.startswith(LABEL_PREFIX):
            if cell:
                data["labels"][name[len(LABEL_PREFIX) :]] = cell
            continue
        if name.startswith(PROVENANCE_PREFIX):
            if cell:
                data["provenance"][name[len(PROVENANCE_PREFIX) :]] = cell
            continue
        path, kind = CSV_COLUMNS[name]
        position[path] = index
        if not cell:
            continue
        try:
            value = _cell_value(cell, kind)
        except ValueError as exc:
            message, expected = str(exc).split("|", 1)
            errors.append(
                InputError(
                    file, number, where(index), f"column {name!r}: {message}", json_path(path), expected
                )
            )
            failed = True
            continue
        if path[0] == "cost":
            cost[path[1]] = value
            cost_present = cost_present or name in _COST_COLUMNS
        elif len(path) == 2:
            data[path[0]][path[1]] = value
        else:
            data[path[0]] = value
    if failed:
        return None
    try:
        return ResidencyRecord.model_validate(assembled(data, cost, cost_present))
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(str(part) for part in error["loc"])
            column_name = _PATH_TO_COLUMN.get(loc, ".".join(loc) or "record")
            if error["type"] == "missing" and loc[:1] == ("cost",):
                column_name = _PATH_TO_COLUMN.get(loc, column_name)
                message = f"column {column_name!r} is empty but other cost columns are set"
                expected = "cost_total, currency and cost_basis on every row that has a cost"
            else:
                message, expected = describe(error, f"column {column_name!r}")
            index = position.get(loc, -1)
            errors.append(
                InputError(file, number, where(index) if index >= 0 else 1, message, json_path(loc), expected)
            )
        return None


def _cell_value(cell: str, kind: str) -> Any:
    if kind == "str":
        return cell
    if kind == "timestamp":
        try:
            return parse_timestamp(cell)
        except ValueError as exc:
            raise ValueError(f"{exc}|an RFC 3339 timestamp with a zone, e.g. 2025-06-29T00:00:00Z") from None
    if kind == "int":
        try:
            return int(cell)
        except ValueError:
            raise ValueError(f"{cell!r} is not a whole number|an integer count") from None
    try:
        number = float(cell)
    except ValueError:
        raise ValueError(f"{cell!r} is not a number|a number") from None
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"{cell!r}: NaN and Inf are not allowed|a finite number")
    return number


# ---------------------------------------------------------------------------- whole-set checks


def _group_key(record: ResidencyRecord) -> tuple[str, ...]:
    if record.deployment_id is not None:
        return ("deployment", record.deployment_id, record.source_kind)
    labels = ",".join(f"{k}={v}" for k, v in sorted(record.labels.items()))
    return ("unattributed", record.unattributed_reason or "", labels, record.source_kind)


_by_window = operator.itemgetter(0, 1)


def _where(record: ResidencyRecord) -> tuple[str, int]:
    return record.origin or ("<records>", 0)


def check_records(records: Iterable[ResidencyRecord], currency: str | None = None) -> list[InputError]:
    """Duplicates, overlapping windows and mixed currencies across a set of records.

    ``currency`` (e.g. the portfolio's) is the one every cost must use; without it, the first
    cost seen sets it.
    """
    checker = RecordChecker(currency)
    for record in records:
        checker.add(record)
    return checker.errors()


# What the cross-record checks keep of a record: its window, where it was read, what it is.
_Seen = tuple[datetime, datetime, tuple[str, int], str]


class RecordChecker:
    """``check_records`` one record at a time, keeping only a few fields of each: a large
    history can be checked while its records are read and dropped."""

    def __init__(self, currency: str | None = None) -> None:
        self._currency = currency
        self._first_currency: tuple[str, int] | None = None
        self._groups: dict[tuple[str, ...], list[_Seen]] = {}
        self._errors: list[InputError] = []

    def add(self, record: ResidencyRecord) -> None:
        dep_id = record.deployment_id
        key = ("deployment", dep_id, record.source_kind) if dep_id is not None else _group_key(record)
        what = dep_id or f"unattributed {record.unattributed_reason}"
        seen = (record.window_start, record.window_end, _where(record), what)
        group = self._groups.get(key)
        if group is None:
            self._groups[key] = [seen]
        else:
            group.append(seen)
        cost = record.cost
        if cost is None or cost.currency == self._currency:
            return
        if self._currency is None:
            self._currency = cost.currency
            self._first_currency = _where(record)
            return
        file, line = _where(record)
        if self._first_currency is not None:
            reason = f"{self._currency} in {':'.join(str(p) for p in self._first_currency)}"
        else:
            reason = f"the portfolio's currency {self._currency}"
        self._errors.append(
            InputError(
                file,
                line,
                1,
                f"mixed currencies: {cost.currency} here, {reason}",
                "$.cost.currency",
                f"one currency ({self._currency}); convert before import",
            )
        )

    @property
    def currency(self) -> str | None:
        """The currency every cost must use: given, else the first one seen."""
        return self._currency

    def runs(self) -> dict[tuple[str, ...], list[tuple[datetime, datetime]]]:
        """Per group, its windows in order, joined where one ends as the next starts: what a
        check of more records needs to know of these (when ``errors`` finds none here)."""
        out: dict[tuple[str, ...], list[tuple[datetime, datetime]]] = {}
        for key, members in self._groups.items():
            joined: list[tuple[datetime, datetime]] = []
            for start, end, _, _ in sorted(members, key=_by_window):
                if joined and joined[-1][1] == start:
                    joined[-1] = (joined[-1][0], end)
                else:
                    joined.append((start, end))
            out[key] = joined
        return out

    def errors(self) -> list[InputError]:
        errors = list(self._errors)
        for key, members in self._groups.items():
            if len(members) < 2:
                continue
            members.sort(key=_by_window)
            latest = members[0]
            for seen in members[1:]:
                if seen[0] < latest[1]:
                    errors.append(_overlap(key[-1], seen, latest))
                if seen[1] > latest[1]:
                    latest = seen
        errors.sort(key=lambda e: (e.file, e.line, e.column))
        return errors


def _overlap(source: str, seen: _Seen, latest: _Seen) -> InputError:
    """The error for a record whose window starts before an earlier one of its group ends."""
    start, end, (file, line), what = seen
    other = ":".join(str(p) for p in latest[2])
    window = f"[{format_timestamp(start)}, {format_timestamp(end)})"
    if start == latest[0] and end == latest[1]:
        message = f"duplicate record for {what} {window} from source {source!r} (also {other})"
        expected = "one record per deployment, window and source"
    else:
        earlier = f"[{format_timestamp(latest[0])}, {format_timestamp(latest[1])})"
        message = f"window {window} of {what} overlaps {earlier} at {other}"
        expected = "non-overlapping half-open windows per deployment and source"
    return InputError(file, line, 1, message, "$.window_start", expected)


# ---------------------------------------------------------------------------- loading


def parse_file(
    raw: bytes, file: str, sink: Sink | None = None
) -> tuple[list[ResidencyRecord], list[InputError]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        return [], [
            InputError(file, line, column, f"invalid UTF-8 byte 0x{raw[exc.start]:02x}", "", "UTF-8 text")
        ]
    if file.endswith(".csv"):
        return parse_csv(text, file, sink)
    return parse_jsonl(text, file, sink)


def is_adapter_input(raw: bytes) -> bool:
    """A FOCUS export kept under residency/ as an adapter input, not a native file."""
    head = raw[:4096].decode("utf-8-sig", errors="replace").split("\n", 1)[0]
    return all(marker in head for marker in _FOCUS_MARKERS) and "window_start" not in head


def load_residency(
    files: FileSource,
    prefix: str = "",
    keep: Callable[[ResidencyRecord], bool] | None = None,
    noted: Noted | None = None,
) -> list[ResidencyRecord]:
    """Every record of ``residency/**/*.jsonl|*.csv`` under a portfolio root.

    FOCUS exports kept there as adapter inputs (their header has ``ChargePeriodStart`` and
    ``BillingCurrency``) are not native files and are skipped. Raises ``InputErrors`` with every
    problem of every file. ``keep``: only the records it accepts are returned (every record is
    still read and checked); the others are dropped as they are read. ``noted``: see
    ``spread.read_spread``; left empty when the files could not all be read there.
    """
    records: list[ResidencyRecord] = []
    errors: list[InputError] = []
    checker = RecordChecker()

    def take(record: ResidencyRecord) -> None:
        checker.add(record)
        if keep is None or keep(record):
            records.append(record.share_fields())

    with paused_gc(lambda: len(records) > FREEZE_ABOVE):
        from policy_engine.residency.spread import read_spread  # (it reads with this module)

        spread = read_spread(files, prefix, keep, noted)  # large files on all cores, when all is well
        if spread is not None:
            records = spread
            return records
        if noted is not None:
            noted.clear()
        for path in files.list(RESIDENCY_DIR, SUFFIXES):
            _load_one(files, path, prefix + path, take, errors)
    errors.extend(checker.errors())
    if errors:
        raise InputErrors(errors)
    return records


FREEZE_ABOVE = 50_000  # records; below this a normal collection afterwards is cheap


@contextmanager
def paused_gc(large: Callable[[], bool] = lambda: True) -> Iterator[None]:
    """Pause the cyclic garbage collector while building many objects that all stay alive.

    Records hold no reference cycles, so collecting while hundreds of thousands of them are
    created only scans them again and again. When ``large()`` says so afterwards, everything
    alive is frozen (``gc.freeze``) so that later collections skip it too; reference counting
    still frees it as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if large():
            gc.freeze()
        if enabled:
            gc.enable()


def _load_one(
    files: FileSource,
    path: str,
    shown: str,
    take: Callable[[ResidencyRecord], None],
    errors: list[InputError],
) -> None:
    try:
        raw = files.read(path)
    except PermissionError as exc:
        errors.append(InputError(shown, 1, 1, str(exc), "", "a file inside the portfolio"))
        return
    if raw is None or (path.endswith(".csv") and is_adapter_input(raw)):
        return
    _, problems = parse_file(raw, shown, take)
    errors.extend(problems)


# ---------------------------------------------------------------------------- writing


def sort_key(record: ResidencyRecord) -> tuple[datetime, int, str, str, str]:
    return (
        record.window_start,
        0 if record.deployment_id is not None else 1,
        record.deployment_id or record.unattributed_reason or "",
        ",".join(f"{k}={v}" for k, v in sorted(record.labels.items())),
        record.source_kind,
    )


def dumps_jsonl(records: Iterable[ResidencyRecord]) -> str:
    return "".join(record.model_dump_json() + "\n" for record in records)


def dumps_csv(records: Iterable[ResidencyRecord]) -> str:
    records = list(records)
    label_keys = sorted({k for r in records for k in r.labels if k not in ("team", "cost_center")})
    provenance_keys = sorted({k for r in records for k in r.provenance if k != "source"})
    header = [
        *CSV_COLUMNS,
        *(LABEL_PREFIX + k for k in label_keys),
        *(PROVENANCE_PREFIX + k for k in provenance_keys),
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for record in records:
        data = record.model_dump()
        row = []
        for path, kind in CSV_COLUMNS.values():
            value: Any = data
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            row.append(_cell_text(value, kind))
        row.extend(record.labels.get(k, "") for k in label_keys)
        row.extend(record.provenance.get(k, "") for k in provenance_keys)
        writer.writerow(row)
    return buffer.getvalue()


def _cell_text(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "timestamp":
        return format_timestamp(value)
    return str(value)


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file in the same directory, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_records(records: Iterable[ResidencyRecord], path: Path) -> None:
    """Write records sorted by window and deployment, as CSV for ``*.csv``, else JSON Lines."""
    ordered = sorted(records, key=sort_key)
    text = dumps_csv(ordered) if path.suffix == ".csv" else dumps_jsonl(ordered)
    write_atomic(path, text)
