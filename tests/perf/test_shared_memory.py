"""What large portfolios share to stay small must never leak between objects."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pydantic
import pytest

from policy_engine import parsecache
from policy_engine.digest import version_digest
from policy_engine.loading import load_portfolio
from policy_engine.models.report import Finding, Location
from policy_engine.sources import DirectorySource

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "acme-portfolio"


def _versions() -> list[object]:
    parsecache.configure(None)
    portfolio = load_portfolio(DirectorySource(EXAMPLE))
    return [version for entry in portfolio.models for version in entry.model.versions]


def test_models_written_alike_share_one_fields_set_and_cannot_change_it() -> None:
    versions = _versions()
    replicas = [d.replicas for v in versions for d in v.deployments]  # type: ignore[attr-defined]
    assert len(replicas) > 2
    assert len({id(r.__pydantic_fields_set__) for r in replicas}) < len(replicas)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        replicas[0].min = 5
    before = set(replicas[1].__pydantic_fields_set__)
    original = replicas[0].min
    copy = replicas[0].model_copy(update={"min": original + 1})
    assert copy.min == original + 1
    assert replicas[0].min == original
    assert copy.__pydantic_fields_set__ is not replicas[0].__pydantic_fields_set__
    assert set(replicas[1].__pydantic_fields_set__) == before


def test_digests_still_count_only_the_fields_a_file_wrote() -> None:
    versions = _versions()
    digests = [version_digest(v) for v in versions]  # type: ignore[arg-type]
    assert digests == [version_digest(v) for v in _versions()]  # type: ignore[arg-type]
    assert len(set(digests)) == len(digests)


def _finding(target: str) -> Finding:
    return Finding(
        fingerprint="0" * 16,
        policy_id="p.x",
        validation="v",
        target=target,
        status="fail",
        severity="error",
        enforcement="hard",
        blocking=True,
        message=f"on {target}",
        location=Location(file="models/a.yaml", line=1),
    )


def test_findings_share_their_fields_set_also_after_a_trip_between_processes() -> None:
    first, second = _finding("a@1"), _finding("a@2")
    assert first.__pydantic_fields_set__ is second.__pydantic_fields_set__
    back = pickle.loads(pickle.dumps([first, second]))
    assert back == [first, second]
    assert back[0].__pydantic_fields_set__ is first.__pydantic_fields_set__
    changed = first.model_copy(update={"status": "pre_existing"})
    assert changed.status == "pre_existing"
    assert first.status == "fail"
    assert changed.__pydantic_fields_set__ is not first.__pydantic_fields_set__


def test_short_strings_of_a_parsed_file_are_shared() -> None:
    versions = _versions()
    stages = [v.stage for v in versions]  # type: ignore[attr-defined]
    production = [s for s in stages if s == "production"]
    assert len(production) > 1
    assert all(s is sys.intern("production") for s in production)
