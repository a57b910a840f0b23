"""The change facts of a pull request, made from the base's and the head's portfolios alone:
model files whose content is the same on both sides keep their own entries in the merged
portfolio and compare equal without being dumped, exactly as dumping them would find."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from policy_engine import pullrequest
from policy_engine.loading import Portfolio, load_portfolio
from policy_engine.pullrequest import merge, target_changes, unchanged_files
from policy_engine.sources import DirectorySource
from policy_engine.targets import build_targets
from tests.conftest import EXAMPLE

EDITED = "assistant-llm"


@pytest.fixture
def sides(tmp_path: Path) -> tuple[Portfolio, Portfolio]:
    base = Path(shutil.copytree(EXAMPLE, tmp_path / "base"))
    head = Path(shutil.copytree(EXAMPLE, tmp_path / "head"))
    path = head / "models" / f"{EDITED}.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("replicas: {min: 2, max: 6}", "replicas: {min: 2, max: 7}", 1), encoding="utf-8"
    )
    return load_portfolio(DirectorySource(base)), load_portfolio(DirectorySource(head))


def _changes(base: Portfolio, head: Portfolio) -> tuple[object, object]:
    merged = merge(base, head)
    return target_changes(base, head, build_targets(base), build_targets(merged))


@pytest.mark.usefixtures("cache")
def test_unchanged_files_keep_their_entries_and_their_facts(
    sides: tuple[Portfolio, Portfolio], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, head = sides
    unchanged = unchanged_files(base, head)
    assert unchanged == {entry.model.id for entry in head.models} - {EDITED}
    merged = merge(base, head)
    for entry, own in zip(merged.models, head.models, strict=True):
        assert (entry is own) == (own.model.id in unchanged)
    old, change = _changes(base, head)
    kinds = {target: facts["kind"] for target, facts in change.items()}  # type: ignore[attr-defined]
    modified = {target for target, kind in kinds.items() if kind == "modified"}
    assert EDITED in modified
    assert all(target.partition("@")[0] == EDITED for target in modified)
    assert {kinds[target] for target in kinds if target.partition("@")[0] in unchanged} == {"unchanged"}
    # the same facts as dumping every file on both sides
    monkeypatch.setattr(pullrequest, "unchanged_files", lambda base, head: set())
    assert _changes(base, head) == (old, change)
