"""Parsing on several cores gives exactly what parsing in-process gives, errors included."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from policy_engine import parallel, parsecache
from policy_engine.errors import InputErrors
from policy_engine.loading import load_portfolio
from policy_engine.sources import DirectorySource

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "acme-portfolio"


def _load(root: Path) -> list[tuple[str, str, bytes]]:
    portfolio = load_portfolio(DirectorySource(root))
    return [(e.source.file, e.model.model_dump_json(), e.source.packed) for e in portfolio.models]


def test_parallel_and_serial_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parsecache.configure(None)
    root = tmp_path / "portfolio"
    shutil.copytree(EXAMPLE, root)
    serial = _load(root)
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 2)
    assert _load(root) == serial


def test_parallel_reports_every_error_with_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parsecache.configure(None)
    root = tmp_path / "portfolio"
    shutil.copytree(EXAMPLE, root)
    (root / "models" / "broken.yaml").write_text("id: x\nid: y\n")
    (root / "models" / "bad-utf8.yaml").write_bytes(b"id: \xff\n")
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 2)
    with pytest.raises(InputErrors) as caught:
        load_portfolio(DirectorySource(root))
    rendered = sorted(error.render() for error in caught.value.errors)
    assert rendered == [
        "models/bad-utf8.yaml:1:5: invalid UTF-8 byte 0xff (expected UTF-8 text)",
        "models/broken.yaml:2:1: duplicate key 'id' (first defined on line 1) [$.id] "
        "(expected each key once per mapping)",
    ]


def test_cached_parse_is_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "portfolio"
    shutil.copytree(EXAMPLE, root)
    parsecache.configure(tmp_path / "cache")
    try:
        first = _load(root)
        parsecache.flush()  # as the CLI does at the end of a run
        assert any((tmp_path / "cache").rglob("*.pack")), "the first load writes the cache"
        parsecache.configure(tmp_path / "cache")  # a new run: it reads the pack from disk
        monkeypatch.setattr(parallel, "PARALLEL_FROM", 2)
        assert _load(root) == first  # served from the cache, in the parallel path too
    finally:
        parsecache.configure(None)
