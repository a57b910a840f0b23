"""A model file's facts remembered by its content: the same summary, material and findings as
when computed, a file validated again only when its content is new, and the material made in
forked workers handed to the process that writes the cache."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policy_engine import digest, filefacts, loading, parallel, parsecache
from policy_engine.commands.check import CheckOptions, LoadOptions, build_check_report, load_all
from policy_engine.errors import InputErrors
from policy_engine.factcache import cached_material
from policy_engine.loading import ModelEntry, load_portfolio
from policy_engine.pullrequest import merge
from policy_engine.sources import DirectorySource
from policy_engine.targets import Target, build_targets, computed_material
from policy_engine.yamlsource import Unread

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "acme-portfolio"
EDITED = "models/assistant-llm.yaml"


@pytest.fixture
def portfolio(tmp_path: Path) -> Path:
    root = tmp_path / "portfolio"
    shutil.copytree(EXAMPLE, root)
    return root


def _targets(root: Path, **options: Any) -> dict[str, tuple[object, ...]]:
    """Each target as a finding sees it: its data and where it is (known when made, or located)."""
    made = build_targets(load_portfolio(DirectorySource(root)), **options).all()
    return {t.id: (t.scope, t.data, t.source and t.source.file, t.path, _where(t)) for t in made}


def _where(target: Target) -> object:
    if target.source is None:
        return None
    return target.position or target.source.locate(target.path)


def _validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The model files ``loading`` validates from now on."""
    seen: list[str] = []
    original = loading.validate

    def counting(model: Any, data: Any, source: Any) -> Any:
        if model is loading.ModelFile:
            seen.append(source.file)
        return original(model, data, source)

    monkeypatch.setattr(loading, "validate", counting)
    return seen


def _never(*args: object) -> Any:
    raise AssertionError("computed again for unchanged content")


def test_remembered_facts_make_the_computed_targets(
    portfolio: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsecache.configure(None)
    expected = _targets(portfolio)  # nothing cached: everything computed
    parsecache.configure(portfolio.parent / "cache")
    assert _targets(portfolio, materials=cached_material) == expected  # computed and stored
    parsecache.flush()

    validated = _validations(monkeypatch)
    with monkeypatch.context() as patch:
        patch.setattr(filefacts, "material", _never)
        patch.setattr(digest, "version_digest", _never)
        patch.setattr(filefacts, "summarize", _never)
        assert _targets(portfolio, materials=cached_material) == expected  # read back
    assert validated == []  # every file was known valid

    # Endpoints, made from the files' summaries, know where they are without decoding a file.
    entries = load_portfolio(DirectorySource(portfolio)).models
    assert all(e.traffic_positions is not None for e in entries)
    endpoints = build_targets(load_portfolio(DirectorySource(portfolio))).by_scope["endpoint"]
    assert endpoints
    assert all(t.position is not None for t in endpoints)


def test_an_edited_file_is_validated_and_converted_again(
    portfolio: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _targets(portfolio, materials=cached_material)
    parsecache.flush()
    edited = portfolio / EDITED
    text = edited.read_text(encoding="utf-8")
    edited.write_text(text.replace("stage: production", "stage: deprecated", 1), encoding="utf-8")
    validated = _validations(monkeypatch)
    after = _targets(portfolio, materials=cached_material)
    assert validated == [EDITED]
    parsecache.configure(None)
    assert after == _targets(portfolio)
    assert after["assistant-llm@2"] != before["assistant-llm@2"]

    # An invalid edit is never answered from the cache: it is validated, and located.
    parsecache.configure(portfolio.parent / "cache")
    edited.write_text(text.replace("stage: production", "stage: prodution", 1), encoding="utf-8")
    with pytest.raises(InputErrors) as raised:
        load_portfolio(DirectorySource(portfolio))
    [error] = raised.value.errors
    assert error.file == EDITED
    assert "prodution" in error.message
    assert error.line > 1


def test_a_model_known_valid_is_validated_when_asked_for(portfolio: Path, cache: Path) -> None:
    first = {e.source.file: e.model for e in load_portfolio(DirectorySource(portfolio)).models}
    parsecache.flush()
    entries = load_portfolio(DirectorySource(portfolio)).models
    assert all(e._model is None for e in entries)  # not validated while nothing asks
    assert {e.source.file: e.model for e in entries} == first
    assert all(e.summary == filefacts.summarize(e.model) for e in entries)


def test_a_merged_model_is_not_taken_for_its_file(portfolio: Path, cache: Path) -> None:
    """A pull request's merge keeps the head's file but the base's rules: its material is
    made from the merged model, not read back under the file's content key (a file with the
    same content at both keeps its own entry)."""
    head = load_portfolio(DirectorySource(portfolio))
    build_targets(head, materials=cached_material)  # the head files' material, cached
    base_root = portfolio.parent / "base"
    shutil.copytree(portfolio, base_root)
    edited = base_root / EDITED
    text = edited.read_text(encoding="utf-8")
    assert "entry_criteria:" in text
    edited.write_text(
        text.replace("answer_correctness, min: 0.82", "answer_correctness, min: 0.5"), encoding="utf-8"
    )
    merged = merge(load_portfolio(DirectorySource(base_root)), head)
    for entry, own in zip(merged.models, head.models, strict=True):
        assert isinstance(entry, ModelEntry)
        if entry.model.id == "assistant-llm":
            assert entry.key == ""  # the head's file with the base's rules: not its file's content
        else:
            assert entry is own  # the same content at both: the head's entry, cached facts kept
    cached = build_targets(merged, materials=cached_material).all()
    computed = build_targets(merged, materials=computed_material).all()
    assert _data(cached) == _data(computed)
    model = next(t for t in cached if t.id == "assistant-llm")
    assert model.data["model"]["entry_criteria"]["eval"][0]["min"] == 0.5


def _data(targets: list[Target]) -> dict[str, Any]:
    return {t.id: t.data for t in targets}


def test_forked_workers_hand_their_material_to_the_parent(
    portfolio: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = CheckOptions(
        load=LoadOptions(path=portfolio), as_of=datetime(2025, 6, 30, tzinfo=UTC), context="audit"
    )
    monkeypatch.setattr(parallel, "EVALUATE_FROM", 2)  # model files' targets made by the workers
    first = build_check_report(options, load_all(options.load)).model_dump_json()
    parsecache.flush()
    monkeypatch.setattr(filefacts, "material", _never)
    assert build_check_report(options, load_all(options.load)).model_dump_json() == first


def test_unchanged_files_are_not_even_decoded(
    portfolio: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A known-valid file's cached parse stays undecoded unless its model is asked for; if it
    then cannot be read, the file is named and the way out said (no traceback)."""
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 1)  # the batch path, where values come Unread
    expected = _targets(portfolio, materials=cached_material)
    parsecache.flush()
    decoded: list[str] = []
    original = Unread.value

    def recording(self: Unread) -> Any:
        decoded.append(self.file)
        return original(self)

    with monkeypatch.context() as patch:
        patch.setattr(Unread, "value", recording)
        assert _targets(portfolio, materials=cached_material) == expected
    assert not [file for file in decoded if file.startswith("models/")]
    assert decoded  # the other files (portfolio.yaml, ...) are decoded as they are read
    [entry, *_] = load_portfolio(DirectorySource(portfolio)).models
    assert isinstance(entry._data, Unread)
    entry._data._data = b"\x00not marshal"
    with pytest.raises(InputErrors) as raised:
        entry.model  # noqa: B018
    [error] = raised.value.errors
    assert error.file == entry.source.file
    assert "delete the cache directory" in error.expected
