"""The pure part of history: splitting model files into cached pieces, and the stage walk."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from policy_engine import parsecache
from policy_engine.gitrepo import CommitInfo, FileChange, LogEntry
from policy_engine.history import Summaries, overlay, split_versions, stage_history
from policy_engine.loading import load_portfolio
from policy_engine.sources import DirectorySource
from policy_engine.yamlsource import parse
from tests.conftest import next_run
from tests.git.conftest import REPO_ROOT

MODEL_FILES = sorted((REPO_ROOT / "examples" / "acme-portfolio" / "models").glob("*.yaml"))


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.name)
def test_pieces_parse_to_the_same_document(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    split = split_versions(text)
    assert split is not None
    rest, items = split
    assert {**yaml.safe_load(rest), "versions": [yaml.safe_load(i)[0] for i in items]} == yaml.safe_load(text)


@pytest.mark.parametrize(
    ("text", "versions"),
    [
        ("id: a\nversions:\n- version: '1'\n  stage: x\nowner_team: z\n", {"1": "x"}),
        (
            "id: a\nversions:\n  - {version: '1', stage: x}\n  - version: '2'\n    stage: y\n",
            {"1": "x", "2": "y"},
        ),
        ("id: a\nversions: [{version: '1', stage: x}]\n", {"1": "x"}),  # flow style: parsed whole
        ("id: a\nversions:\n  - &v {version: '1', stage: x}\n  - *v\n", {"1": "x"}),  # alias across pieces
    ],
)
def test_summaries_fall_back_to_a_whole_parse(text: str, versions: dict[str, str]) -> None:
    summary = Summaries(lambda _: text.encode())("blob")
    assert summary is not None
    assert summary.stages == versions


def _entry(sha: str, when: str, *changes: tuple[str, str | None]) -> LogEntry:
    return LogEntry(CommitInfo(sha, when, "A", "a@x"), tuple(FileChange(p, b) for p, b in changes))


def test_stage_walk_follows_models_across_files_and_gaps() -> None:
    blobs = {
        "b1": b"id: m\nversions:\n  - {version: '1', stage: canary}\n",
        "b2": b"id: m\nversions:\n  - {version: '1', stage: production}\n",
        "b3": b"id: other\nversions: []\n",
    }
    summaries = Summaries(blobs.__getitem__)
    entries = [
        _entry("c1", "2025-01-01T00:00:00Z", ("models/m.yaml", "b1")),
        _entry("c2", "2025-01-02T00:00:00Z", ("models/m.yaml", None), ("models/x/m2.yaml", "b1")),  # move
        _entry("c3", "2025-01-03T00:00:00Z", ("models/x/m2.yaml", "b2"), ("README.md", "b3")),
        _entry("c4", "2025-01-04T00:00:00Z", ("models/x/m2.yaml", None)),  # removed
        _entry("c5", "2025-01-05T00:00:00Z", ("models/m.yaml", "b2")),  # back again
    ]
    final, at_base = stage_history(entries, summaries, "models/", newer_than_base={"c3", "c4", "c5"})
    assert at_base is not None
    assert at_base[("m", "1")].stage_since == "2025-01-01T00:00:00Z"  # the move changed nothing
    again = final[("m", "1")]
    assert (again.first_seen, again.stage, again.stage_since, again.stage_since_commit) == (
        "2025-01-01T00:00:00Z",
        "production",
        "2025-01-05T00:00:00Z",
        "c5",
    )
    now = "2025-02-01T00:00:00Z"
    current = overlay(final, {("m", "1"): "deprecated", ("m", "2"): "proposed"}, now)
    assert (current[("m", "1")].stage_since, current[("m", "1")].stage_since_commit) == (now, "")
    assert current[("m", "2")].first_seen == now


def test_summaries_are_remembered_by_blob_id(cache: Path) -> None:
    """A blob id names its content: a later run takes its summary from the parse cache and
    never reads the blob again; a blob that is not a model file is remembered as such too."""
    model = MODEL_FILES[0].read_bytes()
    blobs = {"a" * 40: model, "b" * 40: b"not: [a model"}
    reads: list[str] = []

    def read(blob: str) -> bytes:
        reads.append(blob)
        return blobs[blob]

    first = Summaries(read)
    made = [first("a" * 40), first("b" * 40)]
    assert made[0] is not None
    assert made[1] is None
    assert first.parsed == 2
    next_run(cache)
    again = Summaries(read)
    assert [again("a" * 40), again("b" * 40)] == made
    assert again.parsed == 0
    assert reads == ["a" * 40, "b" * 40]


def test_a_loaded_files_parse_gives_the_summary_a_plain_parse_gives(tmp_path: Path, cache: Path) -> None:
    """History takes a blob's value from the loader's cached parse of the same content when
    there is one: every model file of the example and of a generated portfolio, and a file with
    an integer version and an unquoted date, summarise exactly as ``load_plain`` makes them."""
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    from generate import generate

    generated = tmp_path / "generated"
    generate(generated, 40, seed=3, residency_days=0)
    roots = [REPO_ROOT / "examples" / "acme-portfolio", generated]
    paths = [path for root in roots for path in sorted((root / "models").glob("*.yaml"))]
    blobs = {f"{index:040x}": path.read_bytes() for index, path in enumerate(paths)}
    odd = (
        b"id: a\nversions:\n- version: 1\n  stage: canary\n"
        b"  signoffs:\n  - {role: ml, by: x, at: 2025-01-02}\n"
    )
    blobs["f" * 40] = odd
    parsecache.configure(None)
    expected = {blob: Summaries(blobs.__getitem__)(blob) for blob in blobs}  # parsed as before
    parsecache.configure(cache)
    for root in roots:
        load_portfolio(DirectorySource(root))  # the loader's parses, cached
    parse(odd.decode(), "odd.yaml")
    taken = Summaries(blobs.__getitem__)
    assert {blob: taken(blob) for blob in blobs} == expected
    assert taken.parsed == 0  # each one's value came from the loader's parse
