"""The fast flattening of model files gives exactly what the general one gives."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from policy_engine import parsecache
from policy_engine.loading import load_portfolio
from policy_engine.sources import DirectorySource
from policy_engine.targets import plain, plain_model

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from generate import generate  # noqa: E402


@pytest.mark.parametrize("synthetic", [False, True])
def test_plain_model_equals_plain(tmp_path: Path, synthetic: bool) -> None:
    parsecache.configure(None)
    root = ROOT / "examples" / "acme-portfolio"
    if synthetic:
        root = tmp_path / "portfolio"
        generate(root, 200, seed=3, residency_days=0)
    models = [entry.model for entry in load_portfolio(DirectorySource(root)).models]
    assert models
    for model in models:
        assert plain_model(model) == plain(model)
