"""Parse many YAML files on all cores: the cold path of a large portfolio is YAML parsing.

Files are read in the calling process (they may come from git objects) and only their bytes
travel to worker processes; results come back as plain values and positions. Small batches are
parsed in-process, where starting workers would cost more than it saves.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from policy_engine.errors import InputError
from policy_engine.yamlsource import SourceMap, YamlError, decode, from_cache, parse

PARALLEL_FROM = 150  # files

Parsed = tuple[Any, SourceMap] | InputError


def _parse_one(item: tuple[bytes, str]) -> tuple[Any, dict[Any, Any]] | InputError:
    raw, shown = item
    try:
        value, source = parse(decode(raw, shown), shown)
    except YamlError as exc:
        return exc.error
    return value, source.positions


def parse_all(items: list[tuple[bytes, str]]) -> list[Parsed]:
    """Parse ``(bytes, shown path)`` pairs, in order; input errors are returned, not raised."""
    workers = min(os.cpu_count() or 1, 8)
    if len(items) < PARALLEL_FROM or workers < 2 or not _can_fork():
        return [_wrap(item[1], _parse_one(item)) for item in items]
    # Cached files are answered here; only misses go to the workers.
    results: list[Parsed | None] = [None] * len(items)
    misses: list[int] = []
    for index, (raw, shown) in enumerate(items):
        try:
            hit = from_cache(decode(raw, shown), shown)
        except YamlError:
            hit = None  # the worker reports it
        if hit is None:
            misses.append(index)
        else:
            results[index] = hit
    if misses:
        chunk = max(1, len(misses) // (workers * 4))
        with _pool(workers) as pool:
            parsed = pool.map(_parse_one, [items[i] for i in misses], chunksize=chunk)
            for index, result in zip(misses, parsed, strict=True):
                results[index] = _wrap(items[index][1], result)
    return [r for r in results if r is not None]


def _can_fork() -> bool:
    import multiprocessing  # only large portfolios get here; small runs never import it

    return "fork" in multiprocessing.get_all_start_methods()


def _pool(workers: int) -> Any:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))


def _wrap(shown: str, result: tuple[Any, dict[Any, Any]] | InputError) -> Parsed:
    if isinstance(result, InputError):
        return result
    return result[0], SourceMap(shown, result[1])


# ---------------------------------------------------------------------------- evaluation

EVALUATE_FROM = 4000  # targets of one scope

_job: Callable[[list[Any]], Any] | None = None
_chunks: list[list[Any]] = []


def _run_chunk(index: int) -> Any:
    assert _job is not None
    return _job(_chunks[index])


def fork_runner(workers: int | None = None) -> Callable[[Callable[[list[Any]], Any], list[Any]], list[Any]]:
    """A ``Runner`` for ``engine.evaluate`` that splits large scopes over forked workers.

    Forked workers share the parent's compiled programs and target data copy-on-write; only
    their outcomes travel back. Small scopes, or platforms without ``fork``, run in-process.
    """
    count = workers or min(os.cpu_count() or 1, 8)

    def run(function: Callable[[list[Any]], Any], targets: list[Any]) -> list[Any]:
        global _job, _chunks
        if count < 2 or len(targets) < EVALUATE_FROM or not _can_fork():
            return [function(targets)]
        pieces = count * 2  # more pieces than workers evens out uneven targets
        size = -(-len(targets) // pieces)
        _job, _chunks = function, [targets[i : i + size] for i in range(0, len(targets), size)]
        try:
            with _pool(count) as pool:
                return list(pool.map(_run_chunk, range(len(_chunks))))
        finally:
            _job, _chunks = None, []

    return run
