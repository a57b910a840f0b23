"""The fast ways of making targets give exactly what the general ones give."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from policy_engine import parsecache
from policy_engine.loading import load_portfolio
from policy_engine.sources import DirectorySource
from policy_engine.targets import build_targets, plain, plain_model

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from generate import generate  # noqa: E402


def _portfolio(tmp_path: Path, synthetic: bool, seed: int) -> Path:
    """The example portfolio, or a generated one of 200 versions; read without the parse cache."""
    parsecache.configure(None)
    if not synthetic:
        return ROOT / "examples" / "acme-portfolio"
    generate(tmp_path / "portfolio", 200, seed=seed, residency_days=0)
    return tmp_path / "portfolio"


@pytest.mark.parametrize("synthetic", [False, True])
def test_plain_model_equals_plain(tmp_path: Path, synthetic: bool) -> None:
    root = _portfolio(tmp_path, synthetic, seed=3)
    models = [entry.model for entry in load_portfolio(DirectorySource(root)).models]
    assert models
    for model in models:
        assert plain_model(model) == plain(model)


@pytest.mark.parametrize("synthetic", [False, True])
def test_targets_made_consuming_the_models_are_the_same_targets(tmp_path: Path, synthetic: bool) -> None:
    root = _portfolio(tmp_path, synthetic, seed=5)
    kept = build_targets(load_portfolio(DirectorySource(root)))
    portfolio = load_portfolio(DirectorySource(root))
    consumed = build_targets(portfolio, consume=True)
    assert portfolio.models == []
    assert consumed.shared == kept.shared
    assert consumed.by_scope.keys() == kept.by_scope.keys()
    for scope, targets in kept.by_scope.items():
        assert [(t.id, t.data, t.path, t.position) for t in consumed.by_scope[scope]] == [
            (t.id, t.data, t.path, t.position) for t in targets
        ], scope
