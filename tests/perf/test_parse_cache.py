"""The parse cache: packs written whole, read back exactly, never trusted when damaged."""

from __future__ import annotations

import marshal
from pathlib import Path

import pytest

from policy_engine import parsecache
from tests.conftest import next_run

ENTRY = ({"id": "chat", "versions": [{"version": "1", "stage": "production"}]}, b"\x00positions", {})


def _packs(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.pack"))


def test_entries_of_a_run_are_written_as_one_pack_and_read_back(cache: Path) -> None:
    keys = [parsecache.key(f"file {i}".encode(), "test") for i in range(50)]
    for index, key in enumerate(keys):
        parsecache.store(key, (*ENTRY[:2], {"n": index}))
    assert parsecache.lookup(keys[0]) == (*ENTRY[:2], {"n": 0})  # before the flush, too
    assert _packs(cache) == []
    next_run(cache)
    assert len(_packs(cache)) == 1
    assert all(parsecache.contains(key) for key in keys)
    assert [parsecache.lookup(key) for key in keys] == [(*ENTRY[:2], {"n": i}) for i in range(50)]
    assert parsecache.lookup(parsecache.key(b"other", "test")) is None


def test_a_damaged_pack_is_a_miss_and_the_next_run_writes_a_good_one(cache: Path) -> None:
    key = parsecache.key(b"content", "test")
    parsecache.store(key, ENTRY)
    next_run(cache)
    (pack,) = _packs(cache)
    whole = pack.read_bytes()
    for damaged in (b"", whole[:5], whole[:-3], b"\xff" * len(whole), whole[:8] + b"\x00" * (len(whole) - 8)):
        pack.write_bytes(damaged)
        parsecache.configure(cache)
        assert parsecache.lookup(key) in (None, ENTRY)  # never an exception, never another value
    pack.write_bytes(whole[:-3])
    parsecache.configure(cache)
    assert not parsecache.contains(key)
    parsecache.store(key, ENTRY)
    next_run(cache)
    assert parsecache.lookup(key) == ENTRY


def test_the_cache_directory_can_be_deleted_at_any_time(cache: Path) -> None:
    import shutil

    first, second = parsecache.key(b"a", "test"), parsecache.key(b"b", "test")
    parsecache.store(first, ENTRY)
    next_run(cache)
    shutil.rmtree(cache)
    parsecache.store(second, ENTRY)
    parsecache.flush()  # recreates the directory
    next_run(cache)
    assert parsecache.lookup(second) == ENTRY
    assert parsecache.lookup(first) is None


def test_many_packs_are_merged_into_one_keeping_every_entry(cache: Path) -> None:
    keys = []
    for run in range(parsecache.MAX_PACKS + 1):
        key = parsecache.key(f"run {run}".encode(), "test")
        keys.append(key)
        parsecache.store(key, (run, b"", {}))
        next_run(cache)
    assert len(_packs(cache)) == 1
    assert [parsecache.lookup(key) for key in keys] == [(run, b"", {}) for run in range(len(keys))]


def test_a_merge_keeps_what_the_run_used_and_the_newest_rest_within_its_budget(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [parsecache.key(f"run {run}".encode(), "test") for run in range(parsecache.MAX_PACKS)]
    for run, key in enumerate(keys):
        parsecache.store(key, (run, b"", {}))
        next_run(cache)
    entry_size = len(marshal.dumps((0, b"", {})))
    monkeypatch.setattr(parsecache, "MERGED_BYTES", 3 * entry_size)  # the new entry and one more
    assert parsecache.lookup(keys[0]) == (0, b"", {})  # this run uses the oldest entry
    fresh = parsecache.key(b"new", "test")
    parsecache.store(fresh, ("new", b"", {}))
    next_run(cache)
    assert len(_packs(cache)) == 1
    kept = [key for key in keys if parsecache.contains(key)]
    assert keys[0] in kept  # used by the merging run
    assert parsecache.lookup(fresh) == ("new", b"", {})
    assert len(kept) == 2  # and the newest one that fitted the budget
    assert kept[1] in keys[1:]


def test_without_a_directory_nothing_is_kept(tmp_path: Path) -> None:
    parsecache.configure(None)
    key = parsecache.key(b"a", "test")
    parsecache.store(key, ENTRY)
    parsecache.flush()
    assert parsecache.lookup(key) is None
    assert not parsecache.contains(key)
    assert list(tmp_path.iterdir()) == []


def test_a_changed_parser_has_its_own_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key names the parser's own source: entries of another parser are not found."""
    from policy_engine import yamlsource

    text = "id: a\n"
    before = yamlsource.cache_key(text)
    monkeypatch.setattr(yamlsource, "_code", lambda: "another-parser")
    assert yamlsource.cache_key(text) != before
