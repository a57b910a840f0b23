"""Reading a large residency history on all cores.

Reading and validating a record costs about 17 µs in one process: a year of daily records for
a few thousand deployments takes tens of seconds. A large file is cut at line boundaries into
parts, each read by a forked worker with the same reader the serial path uses (so each record
is read, validated and located exactly as there); the records the caller keeps travel back as
plain values. The checks that span records (duplicates, overlapping windows, one currency) run
within each part; across parts, a part hands over only its windows joined into runs and its
currency. On any problem at all, ``read_spread`` gives up and the caller reads the history
again in one process, so that every error is the one the serial reader reports, in its order.
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from policy_engine.models.types import shared_fields_set
from policy_engine.parallel import can_fork, fork_pool
from policy_engine.residency.native import (
    RESIDENCY_DIR,
    SUFFIXES,
    RecordChecker,
    is_adapter_input,
    parse_csv,
    parse_jsonl,
)
from policy_engine.residency.records import Cost, ResidencyRecord
from policy_engine.sources import FileSource

SPREAD_FROM = 8 * 2**20  # bytes of one file; smaller files are read here, as before
PARTS_PER_WORKER = 8  # many parts, taken by whichever worker is free, keep all busy

Keep = Callable[[ResidencyRecord], bool] | None
Runs = dict[tuple[str, ...], list[tuple[int, int]]]  # per group, windows joined (µs since epoch)
_Read = tuple[list[ResidencyRecord], Runs, str | None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FIELDS = tuple(ResidencyRecord.model_fields)
_COST_FIELDS = tuple(Cost.model_fields)

# Set in this process before forking: the file (shown name, text, CSV or not, its parts) and
# what to keep; the workers read their part by index.
_file: tuple[str, str, bool, list[tuple[int, int, int]]] | None = None
_keep: Keep = None


def read_spread(files: FileSource, prefix: str, keep: Keep) -> list[ResidencyRecord] | None:
    """The records of ``residency/`` that ``keep`` accepts, in file and line order; None when
    anything is wrong (the caller then reads again in one process and reports every error)."""
    kept: list[ResidencyRecord] = []
    runs: dict[tuple[str, ...], list[tuple[int, int]]] = {}
    currencies: set[str] = set()
    for path in files.list(RESIDENCY_DIR, SUFFIXES):
        try:
            raw = files.read(path)
        except PermissionError:
            return None
        if raw is None or (path.endswith(".csv") and is_adapter_input(raw)):
            continue
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            return None
        del raw
        for read in _read_file(prefix + path, text, path.endswith(".csv"), keep):
            if read is None:
                return None
            records, part_runs, currency = read
            kept += records
            for key, joined in part_runs.items():
                runs.setdefault(key, []).extend(joined)
            if currency is not None:
                currencies.add(currency)
    if len(currencies) > 1 or any(_overlap(joined) for joined in runs.values()):
        return None
    return kept


def _overlap(joined: list[tuple[int, int]]) -> bool:
    joined.sort()
    return any(later[0] < earlier[1] for earlier, later in pairwise(joined))


def _read_file(shown: str, text: str, is_csv: bool, keep: Keep) -> Iterator[_Read | None]:
    workers = min(os.cpu_count() or 1, 8)
    cuts = _cut(text, is_csv, workers * PARTS_PER_WORKER) if len(text) >= SPREAD_FROM else []
    if len(cuts) < 2 or workers < 2 or not can_fork():
        yield _read(shown, text, 1, is_csv, keep, share=True)
        return
    global _file, _keep
    # The workers slice their part out of the text they inherit: nothing is copied here.
    _file, _keep = (shown, text, is_csv, cuts), keep
    try:
        with fork_pool(workers) as pool:
            for packed in pool.map(_read_part, range(len(cuts))):
                yield None if packed is None else _unpack(packed)
    finally:
        _file, _keep = None, None


def _cut(text: str, is_csv: bool, count: int) -> list[tuple[int, int, int]]:
    """``text`` as about ``count`` parts of whole lines: (start, end, number of the first line).
    A CSV's header is not in any part (each is read after a copy of it, see ``parse_csv``); a
    CSV with quotes is not cut: a quoted cell may hold a newline."""
    start, line = 0, 1
    if is_csv:
        if '"' in text:
            return []
        start = text.find("\n") + 1
        if start == 0:
            return []
        line = 2
    size = max(1, (len(text) - start) // count)
    cuts: list[tuple[int, int, int]] = []
    while start < len(text):
        end = text.find("\n", min(start + size, len(text) - 1))
        end = len(text) if end < 0 else end + 1
        cuts.append((start, end, line))
        line += text.count("\n", start, end)
        start = end
    return cuts


def _read(
    shown: str, text: str, first_line: int, is_csv: bool, keep: Keep, *, share: bool = False
) -> _Read | None:
    """One file, or part of one, read and checked on its own; None on any problem. ``share``:
    the kept records stay in this process (see ``ResidencyRecord.share_fields``)."""
    checker = RecordChecker()
    kept: list[ResidencyRecord] = []

    def take(record: ResidencyRecord) -> None:
        checker.add(record)
        if keep is None or keep(record):
            kept.append(record.share_fields() if share else record)

    parse = parse_csv if is_csv else parse_jsonl
    _, errors = parse(text, shown, take, first_line)
    if errors or checker.errors():
        return None
    runs = {
        key: [(_micros(start), _micros(end)) for start, end in joined]
        for key, joined in checker.runs().items()
    }
    return kept, runs, checker.currency


def _read_part(index: int) -> bytes | None:
    """In a worker: one part, its kept records as plain values."""
    assert _file is not None
    shown, text, is_csv, cuts = _file
    start, end, line = cuts[index]
    if is_csv:
        part, first_line = text[: text.find("\n") + 1] + text[start:end], line - 1
    else:
        part, first_line = text[start:end], line
    read = _read(shown, part, first_line, is_csv, _keep)
    if read is None:
        return None
    records, runs, currency = read
    given: dict[frozenset[str], int] = {}
    return marshal.dumps(([_pack(r, given) for r in records], list(given), runs, currency))


# ---------------------------------------------------------------------------- records as values


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


_START, _END, _COST = (_FIELDS.index(name) for name in ("window_start", "window_end", "cost"))


def _pack(record: ResidencyRecord, given: dict[frozenset[str], int]) -> tuple[Any, ...]:
    """A validated record as marshallable values: its fields, which of them were given, where it
    was read and its source kind."""
    fields = record.__dict__
    values = [fields[name] for name in _FIELDS]
    values[_START] = _micros(values[_START])
    values[_END] = _micros(values[_END])
    cost = values[_COST]
    if cost is not None:
        cost_given = given.setdefault(frozenset(cost.__pydantic_fields_set__), len(given))
        values[_COST] = (tuple(cost.__dict__.values()), cost_given)
    fields_set = given.setdefault(frozenset(record.__pydantic_fields_set__), len(given))
    return values, fields_set, record.origin, record.source_kind


def _unpack(packed: bytes) -> _Read:
    """The records of a part, made again without validating (the worker did), sharing their
    timestamps and their sets of given fields as the serial reader's records do."""
    items, given_sets, runs, currency = marshal.loads(packed)
    sets = [shared_fields_set(frozenset(fields)) for fields in given_sets]
    moments: dict[int, datetime] = {}
    new, assign = object.__new__, object.__setattr__
    records = []
    for values, fields_set, origin, kind in items:
        for at in (_START, _END):
            micros = values[at]
            moment = moments.get(micros)
            if moment is None:
                moment = moments[micros] = _EPOCH + micros * _MICROSECOND
            values[at] = moment
        cost = values[_COST]
        if cost is not None:
            made_cost = new(Cost)
            assign(made_cost, "__dict__", dict(zip(_COST_FIELDS, cost[0], strict=True)))
            assign(made_cost, "__pydantic_fields_set__", sets[cost[1]])
            assign(made_cost, "__pydantic_extra__", None)
            assign(made_cost, "__pydantic_private__", None)
            values[_COST] = made_cost
        record = new(ResidencyRecord)
        assign(record, "__dict__", dict(zip(_FIELDS, values, strict=True)))
        assign(record, "__pydantic_fields_set__", sets[fields_set])
        assign(record, "__pydantic_extra__", None)
        assign(record, "__pydantic_private__", None)
        assign(record, "read_from_", tuple(origin))
        assign(record, "source_kind_", kind)
        records.append(record)
    return records, runs, currency
