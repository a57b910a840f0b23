"""Reading a large residency history on all cores.

Reading and validating a record costs about 17 µs in one process: a year of daily records for
a few thousand deployments takes tens of seconds. A large file is cut at line boundaries into
parts, each read by a forked worker with the same reader the serial path uses (so each record
is read, validated and located exactly as there); the records the caller keeps travel back as
plain values. The checks that span records (duplicates, overlapping windows, one currency) run
within each part; across parts, a part hands over only its windows joined into runs and its
currency. On any problem at all, ``read_spread`` gives up and the caller reads the history
again in one process, so that every error is the one the serial reader reports, in its order.

A file read whole and found valid is remembered by its content (in the parse cache, keyed by
its bytes and by this code): its runs, its currency, and where each run of lines whose records
share one window lies in it. When the caller keeps only a ``Window`` of time, a later run with
the same file reads again only the lines whose windows it keeps (with a 30-day window over
monthly files, the last month or two), with the same reader; what spans files is checked
with the remembered runs. ``known_files`` says, without reading any record, whether every file
is remembered and which of its lines a window keeps: what ``remembered`` keys measured facts by.
"""

from __future__ import annotations

import marshal
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from policy_engine import parsecache
from policy_engine.models import types
from policy_engine.models.types import shared_fields_set
from policy_engine.parallel import can_fork, fork_pool
from policy_engine.residency import native, records, rows
from policy_engine.residency.native import (
    RESIDENCY_DIR,
    SUFFIXES,
    RecordChecker,
    is_adapter_input,
    parse_csv,
    parse_jsonl,
)
from policy_engine.residency.records import Cost, ResidencyRecord, Window
from policy_engine.sources import FileSource

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

SPREAD_FROM = 8 * 2**20  # bytes of one file; smaller files are read here, as before
PARTS_PER_WORKER = 8  # many parts, taken by whichever worker is free, keep all busy

Keep = Callable[[ResidencyRecord], bool] | None
Runs = dict[tuple[str, ...], list[tuple[int, int]]]  # per group, windows joined (µs since epoch)
# Consecutive lines whose records share one window: first line, the characters they span in
# the file's text (start, end), and the window (µs since epoch).
Span = tuple[int, int, int, int, int]
_Read = tuple[list[ResidencyRecord], Runs, str | None, list[Span]]
_Cut = tuple[int, int, int]  # characters [start, end) of whole lines, and the first one's number
# Per file read: its path, the key it is remembered by, and the ranges of it a ``Window`` keeps.
Noted = list[tuple[str, str, list[_Cut]]]
_INDEX = "residency-index:1"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# Set in this process before forking: the file (shown name, text, CSV or not, its parts) and
# what to keep; the workers read their part by index.
_file: tuple[str, str, bool, list[_Cut]] | None = None
_keep: Keep = None


def read_spread(
    files: FileSource, prefix: str, keep: Keep, noted: Noted | None = None
) -> list[ResidencyRecord] | None:
    """The records of ``residency/`` that ``keep`` accepts, in file and line order; None when
    anything is wrong (the caller then reads again in one process and reports every error).
    ``noted`` gets what ``known_files`` would now give (a key "" for a file not remembered)."""
    kept: list[ResidencyRecord] = []
    runs: Runs = {}
    currencies: set[str] = set()
    for found in _native_files(files):
        if found is None:
            return None
        path, raw = found
        is_csv = path.endswith(".csv")
        index_key = _index_key(raw) if _rememberable(path, raw) else ""
        known = _known(index_key) if isinstance(keep, Window) else None
        ranges = _kept_ranges(known[0], keep) if known is not None and isinstance(keep, Window) else None
        try:
            # A known file none of whose lines are kept is not even decoded.
            text = raw.decode("utf-8-sig") if ranges != [] else ""
        except UnicodeDecodeError:
            return None
        del raw
        if known is not None and ranges is not None:
            spans, file_runs, currency = known
            reads = _read_known(prefix + path, text, is_csv, keep, ranges)
        else:
            spans, file_runs, currency = [], {}, None
            reads = _read_file(prefix + path, text, is_csv, keep)
        currencies_of_file: set[str] = set()
        for read in reads:
            if read is None:
                return None
            records, part_runs, part_currency, part_spans = read
            kept += records
            if known is None:
                spans += part_spans
                for key, joined in part_runs.items():
                    file_runs.setdefault(key, []).extend(joined)
                if part_currency is not None:
                    currencies_of_file.add(part_currency)
        if known is None:
            if len(currencies_of_file) > 1:
                return None
            currency = currencies_of_file.pop() if currencies_of_file else None
            file_runs = {key: _joined(windows) for key, windows in file_runs.items()}
            if index_key:
                parsecache.store(index_key, (spans, file_runs, currency))
        if noted is not None and isinstance(keep, Window):  # ("" for a file not remembered)
            noted.append((path, index_key, _kept_ranges(spans, keep) if index_key else []))
        for key, joined in file_runs.items():
            runs.setdefault(key, []).extend(joined)
        if currency is not None:
            currencies.add(currency)
    if len(currencies) > 1 or any(_overlap(joined) for joined in runs.values()):
        return None
    return kept


def known_files(files: FileSource, keep: Window) -> Noted | None:
    """Each file of ``residency/`` with the key it is remembered by and the ranges of it that
    ``keep`` keeps; None unless every file is remembered valid (see the module's docstring).
    Files are read here, one at a time (a git tree's reader serves one thread); large ones are
    hashed on other threads meanwhile (hashing lets other threads run)."""
    keys: list[tuple[str, str | Future[str]]] = []
    pool: ThreadPoolExecutor | None = None
    try:
        for found in _native_files(files):
            if found is None:
                return None
            path, raw = found
            if not _rememberable(path, raw):
                keys.append((path, ""))
            elif len(raw) < SPREAD_FROM:
                keys.append((path, _index_key(raw)))
            else:
                if pool is None:
                    from concurrent.futures import ThreadPoolExecutor  # only large histories pay

                    pool = ThreadPoolExecutor(_workers())
                keys.append((path, pool.submit(_index_key, raw)))
            del found, raw
    finally:
        if pool is not None:
            pool.shutdown()
    noted: Noted = []
    for path, key in keys:
        index_key = key if isinstance(key, str) else key.result()
        known = _known(index_key)
        if known is None:
            return None
        noted.append((path, index_key, _kept_ranges(known[0], keep)))
    return noted


def _native_files(files: FileSource) -> Iterator[tuple[str, bytes] | None]:
    """Each native file of ``residency/`` (FOCUS exports kept there as adapter inputs are not)
    with its bytes; None for a file that may not be read."""
    for path in files.list(RESIDENCY_DIR, SUFFIXES):
        try:
            raw = files.read(path)
        except PermissionError:
            yield None
            return
        if raw is not None and not (path.endswith(".csv") and is_adapter_input(raw)):
            yield path, raw


def _rememberable(path: str, raw: bytes) -> bool:
    """A quoted CSV cell may hold a newline: such a file's lines are not its records."""
    return not (path.endswith(".csv") and b'"' in raw)


def _index_key(raw: bytes) -> str:
    """The key of what a valid file with these bytes is remembered by ("" without a cache)."""
    return parsecache.key(raw, f"{_INDEX}:{_code()}") if parsecache.enabled() else ""


def _known(index_key: str) -> tuple[list[Span], Runs, str | None] | None:
    """A valid file's spans, runs and currency, if a run has read one with this content."""
    found = parsecache.lookup(index_key) if index_key else None
    if not isinstance(found, tuple) or len(found) != 3:
        return None
    spans, runs, currency = found
    return spans, runs, currency


@cache
def _code() -> str:
    """A fingerprint of the code that reads and checks a file and says what it remembers."""
    import pydantic

    modules = (native, records, rows, types, sys.modules[__name__])  # types: timestamps, field sets
    return parsecache.code_fingerprint(modules, pydantic.VERSION)


def _kept_ranges(spans: list[Span], keep: Window) -> list[_Cut]:
    """The character ranges of the spans whose window ``keep`` holds, neighbours joined."""
    ranges: list[_Cut] = []
    for line, start, end, window_start, window_end in spans:
        if not keep.holds(_moment(window_start), _moment(window_end)):
            continue
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], end, ranges[-1][2])
        else:
            ranges.append((start, end, line))
    return ranges


def _joined(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Windows in order, joined where one ends as the next starts."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(windows):
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _overlap(joined: list[tuple[int, int]]) -> bool:
    joined.sort()
    return any(later[0] < earlier[1] for earlier, later in pairwise(joined))


def _workers() -> int:
    return min(os.cpu_count() or 1, 8)


def _read_file(shown: str, text: str, is_csv: bool, keep: Keep) -> Iterator[_Read | None]:
    workers = _workers()
    cuts = _cut(text, is_csv, workers * PARTS_PER_WORKER) if len(text) >= SPREAD_FROM else []
    if len(cuts) < 2 or workers < 2 or not can_fork():
        read = _read(shown, text, 1, is_csv, keep, share=True)
        yield None if read is None else (*read[:3], _spans(text, 0, 1, read[3]))
        return
    yield from _read_parts(shown, text, is_csv, keep, cuts, workers)


def _read_known(
    shown: str, text: str, is_csv: bool, keep: Keep, ranges: list[_Cut]
) -> Iterator[_Read | None]:
    """The kept records of a file known valid: only ``ranges`` are read again."""
    workers = _workers()
    size = sum(end - start for start, end, _ in ranges)
    if size < SPREAD_FROM or workers < 2 or not can_fork():
        for cut in ranges:
            yield _part(shown, text, is_csv, keep, cut, share=True)
        return
    count = workers * PARTS_PER_WORKER
    cuts = [
        piece
        for start, end, line in ranges
        for piece in _cut_range(text, start, end, line, max(1, count * (end - start) // size))
    ]
    yield from _read_parts(shown, text, is_csv, keep, cuts, workers)


def _read_parts(
    shown: str, text: str, is_csv: bool, keep: Keep, cuts: list[_Cut], workers: int
) -> Iterator[_Read | None]:
    global _file, _keep
    # The workers slice their part out of the text they inherit: nothing is copied here.
    _file, _keep = (shown, text, is_csv, cuts), keep
    try:
        with fork_pool(workers) as pool:
            for packed in pool.map(_read_part, range(len(cuts))):
                yield None if packed is None else _unpack(packed)
    finally:
        _file, _keep = None, None


def _cut(text: str, is_csv: bool, count: int) -> list[_Cut]:
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
    return _cut_range(text, start, len(text), line, count)


def _cut_range(text: str, start: int, stop: int, line: int, count: int) -> list[_Cut]:
    """Characters [start, stop) of ``text``, whole lines from line ``line``, as about ``count``
    parts."""
    size = max(1, (stop - start) // count)
    cuts: list[_Cut] = []
    while start < stop:
        end = text.find("\n", min(start + size, stop - 1), stop)
        end = stop if end < 0 else end + 1
        cuts.append((start, end, line))
        line += text.count("\n", start, end)
        start = end
    return cuts


def _read(
    shown: str, text: str, first_line: int, is_csv: bool, keep: Keep, *, share: bool = False
) -> tuple[list[ResidencyRecord], Runs, str | None, list[tuple[int, int, datetime, datetime]]] | None:
    """One file, or part of one, read and checked on its own; None on any problem. ``share``:
    the kept records stay in this process (see ``ResidencyRecord.share_fields``). Also gives
    its runs of consecutive records with one window: (first line, last line, window)."""
    checker = RecordChecker()
    kept: list[ResidencyRecord] = []
    lines: list[tuple[int, int, datetime, datetime]] = []

    def take(record: ResidencyRecord) -> None:
        checker.add(record)
        line = record.read_from_[1]  # type: ignore[attr-defined]  # set by the reader (origin)
        start, end = record.window_start, record.window_end
        if lines and lines[-1][2] == start and lines[-1][3] == end:
            lines[-1] = (lines[-1][0], line, start, end)
        else:
            lines.append((line, line, start, end))
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
    return kept, runs, checker.currency, lines


def _spans(text: str, at: int, line: int, lines: list[tuple[int, int, datetime, datetime]]) -> list[Span]:
    """Runs of lines as the characters they span in ``text``, whose line ``line`` starts at
    ``at``."""
    spans: list[Span] = []
    find = text.find
    for first, last, start, end in lines:
        while line < first:
            at = find("\n", at) + 1
            line += 1
        begin = at
        while line <= last:
            newline = find("\n", at)
            at = len(text) if newline < 0 else newline + 1
            line += 1
        spans.append((first, begin, at, _micros(start), _micros(end)))
    return spans


def _part(shown: str, text: str, is_csv: bool, keep: Keep, cut: _Cut, *, share: bool = False) -> _Read | None:
    """Lines [start, end) of a file's text, read after a copy of its header for a CSV."""
    start, end, line = cut
    if is_csv:
        part, first_line = text[: text.find("\n") + 1] + text[start:end], line - 1
    else:
        part, first_line = text[start:end], line
    read = _read(shown, part, first_line, is_csv, keep, share=share)
    if read is None:
        return None
    return (*read[:3], _spans(text, start, line, read[3]))


def _read_part(index: int) -> bytes | None:
    """In a worker: one part, its kept records as plain values."""
    assert _file is not None
    shown, text, is_csv, cuts = _file
    read = _part(shown, text, is_csv, _keep, cuts[index])
    if read is None:
        return None
    records, runs, currency, spans = read
    given: dict[frozenset[str], int] = {}
    return marshal.dumps(([_pack(r, given) for r in records], list(given), runs, currency, spans))


# ---------------------------------------------------------------------------- records as values


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int) -> datetime:
    return _EPOCH + micros * _MICROSECOND


_WINDOW = ("window_start", "window_end")


def _pack(record: ResidencyRecord, given: dict[frozenset[str], int]) -> tuple[Any, ...]:
    """A validated record as marshallable values: its fields (timestamps as µs since epoch,
    the cost as its fields), which of them were given, where it was read and its source kind.
    (Dicts, which marshal makes again in C, with their keys in the model's order.)"""
    fields = dict(record.__dict__)
    fields["window_start"] = _micros(fields["window_start"])
    fields["window_end"] = _micros(fields["window_end"])
    cost = fields["cost"]
    if cost is not None:
        cost_given = given.setdefault(frozenset(cost.__pydantic_fields_set__), len(given))
        fields["cost"] = (cost.__dict__, cost_given)
    fields_set = given.setdefault(frozenset(record.__pydantic_fields_set__), len(given))
    return fields, fields_set, record.origin, record.source_kind


def _unpack(packed: bytes) -> _Read:
    """The records of a part, made again without validating (the worker did), sharing their
    timestamps and their sets of given fields as the serial reader's records do."""
    items, given_sets, runs, currency, spans = marshal.loads(packed)
    sets = [shared_fields_set(frozenset(fields)) for fields in given_sets]
    moments: dict[int, datetime] = {}
    new, assign = object.__new__, object.__setattr__
    records = []
    for fields, fields_set, origin, kind in items:
        for name in _WINDOW:
            micros = fields[name]
            moment = moments.get(micros)
            if moment is None:
                moment = moments[micros] = _EPOCH + micros * _MICROSECOND
            fields[name] = moment
        cost = fields["cost"]
        if cost is not None:
            made_cost = new(Cost)
            assign(made_cost, "__dict__", cost[0])
            assign(made_cost, "__pydantic_fields_set__", sets[cost[1]])
            assign(made_cost, "__pydantic_extra__", None)
            assign(made_cost, "__pydantic_private__", None)
            fields["cost"] = made_cost
        record = new(ResidencyRecord)
        assign(record, "__dict__", fields)
        assign(record, "__pydantic_fields_set__", sets[fields_set])
        assign(record, "__pydantic_extra__", None)
        assign(record, "__pydantic_private__", None)
        assign(record, "read_from_", tuple(origin))
        assign(record, "source_kind_", kind)
        records.append(record)
    return records, runs, currency, spans
