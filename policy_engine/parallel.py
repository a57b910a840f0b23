"""Parse many YAML files on all cores: the cold path of a large portfolio is YAML parsing.

Files are read in the calling process (they may come from git objects) and only their bytes
travel to worker processes; results come back as plain values and positions. Small batches are
parsed in-process, where starting workers would cost more than it saves.
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any

from policy_engine import parsecache
from policy_engine.errors import InputError
from policy_engine.yamlsource import (
    SourceMap,
    YamlError,
    cache_entry,
    cache_key,
    decode,
    from_cache,
    parse,
    parse_uncached,
)

PARALLEL_FROM = 150  # files

Parsed = tuple[Any, SourceMap] | InputError


def _parse_one(item: tuple[bytes, str]) -> Parsed:
    """Parse one file in this process, through the parse cache."""
    raw, shown = item
    try:
        return parse(decode(raw, shown), shown)
    except YamlError as exc:
        return exc.error


def _parse_in_worker(item: tuple[bytes, str]) -> bytes | InputError:
    """Parse one file in a worker: the result travels back marshalled, as the parse cache
    keeps it (the caller stores it there; shared strings stay shared)."""
    raw, shown = item
    try:
        value, source = parse_uncached(decode(raw, shown), shown)
    except YamlError as exc:
        return exc.error
    return marshal.dumps(cache_entry(value, source))


def parse_all(items: list[tuple[bytes, str]]) -> Iterator[Parsed]:
    """Parse ``(bytes, shown path)`` pairs, yielding results in order as they come, so that the
    caller can validate and drop each document before the next; input errors are yielded. A
    value from the parse cache may come ``Unread`` (decoded when its ``value()`` is asked)."""
    workers = min(os.cpu_count() or 1, 8)
    if len(items) < PARALLEL_FROM or workers < 2 or not can_fork():
        for item in items:
            yield _parse_one(item)
        return
    # Cached files are answered here; only misses go to the workers.
    keys = [_cache_key(raw, shown) for raw, shown in items]
    hits = [key is not None and parsecache.contains(key) for key in keys]
    misses = [item for item, hit in zip(items, hits, strict=True) if not hit]
    workers_if_needed: Any = fork_pool(workers) if misses else nullcontext()
    with workers_if_needed as pool:
        chunk = max(1, len(misses) // (workers * 4))
        parsed = iter(pool.map(_parse_in_worker, misses, chunksize=chunk)) if misses else iter(())
        for (raw, shown), key, hit in zip(items, keys, hits, strict=True):
            if hit and key is not None:
                yield _from_cache(raw, shown, key)
                continue
            result = next(parsed)
            if isinstance(result, InputError):
                yield result
                continue
            if key is not None:
                parsecache.store_marshalled(key, result)
            marshalled, packed, _ = marshal.loads(result)
            yield marshal.loads(marshalled), SourceMap(shown, packed=packed, content_key=key or "")
    parsecache.flush()  # one pack for the batch, instead of holding it for the whole run


def _cache_key(raw: bytes, shown: str) -> str | None:
    """The file's parse-cache key; None when it cannot be decoded (parsing reports why)."""
    try:
        return cache_key(decode(raw, shown))
    except YamlError:
        return None


def _from_cache(raw: bytes, shown: str, key: str) -> Parsed:
    """A cached parse, its value left ``Unread`` (the caller may not need it)."""
    hit = from_cache(decode(raw, shown), shown, digest=key, lazy=True)
    return hit if hit is not None else _parse_one((raw, shown))  # an unreadable entry


def can_fork() -> bool:
    import multiprocessing  # only large portfolios get here; small runs never import it

    return "fork" in multiprocessing.get_all_start_methods()


def fork_pool(workers: int) -> Any:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))


# ---------------------------------------------------------------------------- evaluation

EVALUATE_FROM = 4000  # targets
# Units differ in cost (a model file stands for all its targets, a version has many more
# policies than a sign-off, and the scopes come one after another): many small pieces, each
# taken by whichever worker is free, keep both busy to the end.
PIECES_PER_WORKER = 16

Job = Callable[[list[Any]], Any]
_job: Job | None = None
_chunks: list[list[Any]] = []


def _run_chunk(index: int) -> tuple[Any, dict[str, bytes]]:
    """One piece's result, with the parse-cache entries it stored (e.g. version digests): the
    parent stores them, and writes them with its own."""
    assert _job is not None
    return _job(_chunks[index]), parsecache.take_pending()


def pieces(units: list[Any], weights: list[int], count: int) -> list[list[Any]]:
    """``units`` cut, in order, into ``count`` runs of about equal weight (none empty)."""
    total = sum(weights)
    out: list[list[Any]] = []
    current: list[Any] = []
    filled = 0
    for unit, weight in zip(units, weights, strict=True):
        current.append(unit)
        filled += weight
        if filled * count >= total * (len(out) + 1):
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def fork_runner(workers: int | None = None) -> Callable[[Job, list[Any], list[int]], list[Any]]:
    """A ``Runner`` for ``engine.evaluate`` that splits many targets over forked workers.

    Forked workers share the parent's compiled programs and data copy-on-write (model files
    whose targets are made in the worker, too); only their outcomes travel back. Few targets,
    or platforms without ``fork``, run in this process, a piece at a time so that each piece's
    targets are freed before the next is made.
    """
    count = workers or min(os.cpu_count() or 1, 8)

    def run(function: Job, units: list[Any], weights: list[int]) -> list[Any]:
        global _job, _chunks
        if sum(weights) < EVALUATE_FROM:
            return [function(units)]
        parts = pieces(units, weights, max(count, 1) * PIECES_PER_WORKER)
        if count < 2 or not can_fork():
            return [function(part) for part in parts]
        _job, _chunks = function, parts
        try:
            with fork_pool(count) as pool:
                done = list(pool.map(_run_chunk, range(len(_chunks))))
        finally:
            _job, _chunks = None, []
        for _, entries in done:
            for key, data in entries.items():
                parsecache.store_marshalled(key, data)
        return [result for result, _ in done]

    return run
