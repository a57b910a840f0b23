"""Version digests remembered by file content: the same digests, computed once per content,
and handed back by forked workers to the process that writes the cache."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from policy_engine import digest, digestcache, parallel, parsecache
from policy_engine.commands.check import CheckOptions, LoadOptions, build_check_report, load_all
from policy_engine.loading import load_portfolio
from policy_engine.sources import DirectorySource

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "acme-portfolio"


@pytest.fixture
def portfolio(tmp_path: Path) -> Path:
    root = tmp_path / "portfolio"
    shutil.copytree(EXAMPLE, root)
    return root


def _computed(root: Path) -> dict[str, list[str]]:
    models = load_portfolio(DirectorySource(root)).models
    return {e.source.file: [digest.version_digest(v) for v in e.model.versions] for e in models}


def _remembered(root: Path) -> dict[str, list[str]]:
    models = load_portfolio(DirectorySource(root)).models
    return {e.source.file: digestcache.file_digests(e.model, e.source) for e in models}


def test_remembered_digests_are_the_computed_ones_and_follow_the_content(
    portfolio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsecache.configure(tmp_path / "cache")
    expected = _computed(portfolio)
    assert _remembered(portfolio) == expected  # computed and stored
    parsecache.flush()

    def never(version: object) -> str:
        raise AssertionError("computed again for unchanged content")

    with monkeypatch.context() as patch:
        patch.setattr(digest, "version_digest", never)
        assert _remembered(portfolio) == expected  # read back

    # An edited file is a new content key: its digests are computed again, the others kept.
    edited = portfolio / "models" / "assistant-llm.yaml"
    text = edited.read_text(encoding="utf-8")
    edited.write_text(text.replace("stage: production", "stage: deprecated", 1), encoding="utf-8")
    changed = _remembered(portfolio)
    assert changed == _computed(portfolio)
    assert [f for f in changed if changed[f] != expected[f]] == ["models/assistant-llm.yaml"]
    parsecache.configure(None)


def test_forked_workers_hand_their_digests_to_the_parent(
    portfolio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    parsecache.configure(cache)
    options = CheckOptions(
        load=LoadOptions(path=portfolio), as_of=datetime(2025, 6, 30, tzinfo=UTC), context="audit"
    )
    monkeypatch.setattr(parallel, "EVALUATE_FROM", 2)  # model files' targets made by the workers
    first = build_check_report(options, load_all(options.load)).model_dump_json()
    parsecache.flush()

    def never(version: object) -> str:
        raise AssertionError("the workers' digests did not reach the cache")

    monkeypatch.setattr(digest, "version_digest", never)
    assert build_check_report(options, load_all(options.load)).model_dump_json() == first
    parsecache.configure(None)
