"""Parse many YAML files on all cores: the cold path of a large portfolio is YAML parsing.

Files are read in the calling process (they may come from git objects) and only their bytes
travel to worker processes; results come back as plain values and positions. Small batches are
parsed in-process, where starting workers would cost more than it saves.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
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
    if len(items) < PARALLEL_FROM or workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
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
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            parsed = pool.map(_parse_one, [items[i] for i in misses], chunksize=chunk)
            for index, result in zip(misses, parsed, strict=True):
                results[index] = _wrap(items[index][1], result)
    return [r for r in results if r is not None]


def _wrap(shown: str, result: tuple[Any, dict[Any, Any]] | InputError) -> Parsed:
    if isinstance(result, InputError):
        return result
    return result[0], SourceMap(shown, result[1])
