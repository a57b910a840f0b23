"""A large residency history read on all cores gives exactly what reading it in one process
gives: the same records in the same order, and on any problem the same errors."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policy_engine.errors import InputErrors
from policy_engine.residency import native, spread
from policy_engine.residency.aggregate import in_window
from policy_engine.residency.native import dumps_jsonl, load_residency
from policy_engine.residency.records import ResidencyRecord
from policy_engine.sources import DirectorySource
from tests.conftest import next_run

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from generate import generate  # noqa: E402

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three monthly CSV files and one JSON Lines file of the same kind of records."""
    root = tmp_path_factory.mktemp("spread") / "portfolio"
    generate(root, 60, seed=5, residency_days=90)
    files = sorted((root / "residency").glob("*.csv"))
    records, _ = native.parse_csv(files[0].read_text(encoding="utf-8"), "x.csv")
    files[0].unlink()
    (root / "residency" / "first.jsonl").write_text(dumps_jsonl(records), encoding="utf-8")
    return root


@pytest.fixture
def cut_small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file of the small history is cut into many parts, read by forked workers."""
    monkeypatch.setattr(spread, "SPREAD_FROM", 1)
    monkeypatch.setattr(spread, "PARTS_PER_WORKER", 5)


def _serial(root: Path, monkeypatch: pytest.MonkeyPatch, keep: bool = True) -> list[ResidencyRecord]:
    with monkeypatch.context() as patch:
        patch.setattr(spread, "read_spread", lambda *args: None)
        return load_residency(DirectorySource(root), "", in_window(AS_OF) if keep else None)


def _seen(records: list[ResidencyRecord]) -> list[tuple[object, ...]]:
    return [
        (r.model_dump_json(), r.origin, r.source_kind, r.model_fields_set, r.cost and r.cost.model_fields_set)
        for r in records
    ]


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.usefixtures("cut_small")
def test_spread_reading_gives_the_serial_records(
    history: Path, monkeypatch: pytest.MonkeyPatch, keep: bool
) -> None:
    serial = _serial(history, monkeypatch, keep)
    spread_read = spread.read_spread(DirectorySource(history), "", in_window(AS_OF) if keep else None)
    assert spread_read is not None
    assert len(spread_read) == len(serial) > 1000
    assert spread_read == serial
    assert _seen(spread_read) == _seen(serial)
    assert load_residency(DirectorySource(history), "", in_window(AS_OF) if keep else None) == serial


def _break(root: Path, change: str) -> None:
    path = sorted((root / "residency").glob("*.csv"))[-1]
    lines = path.read_text(encoding="utf-8").split("\n")
    middle = len(lines) // 2
    if change == "bad cell":
        lines[middle] = lines[middle].replace(",1.0,", ",-1.0,", 1)
    elif change == "duplicate far away":  # a window repeated in another part of the file
        lines.append(lines[2])
    elif change == "currency":
        lines[middle] = lines[middle].replace(",USD,", ",EUR,")
    path.write_text("\n".join(lines), encoding="utf-8")


@pytest.mark.parametrize("change", ["bad cell", "duplicate far away", "currency"])
@pytest.mark.usefixtures("cut_small")
def test_any_problem_is_reported_as_the_serial_reader_reports_it(
    history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    import shutil

    root = tmp_path / "broken"
    shutil.copytree(history, root)
    _break(root, change)
    assert spread.read_spread(DirectorySource(root), "", None) is None
    with pytest.raises(InputErrors) as spread_errors:
        load_residency(DirectorySource(root))
    with pytest.raises(InputErrors) as serial_errors:
        _serial(root, monkeypatch, keep=False)
    rendered = [e.render() for e in spread_errors.value.errors]
    assert rendered == [e.render() for e in serial_errors.value.errors]
    assert rendered


def test_a_csv_with_quotes_is_not_cut() -> None:
    assert spread._cut('a,b\n"x\ny",1\n', is_csv=True, count=4) == []
    text = "h\n" + "".join(f"{i}\n" for i in range(10))
    cuts = spread._cut(text, is_csv=True, count=3)
    assert [text[start:end] for start, end, _ in cuts] == ["0\n1\n2\n3\n", "4\n5\n6\n7\n", "8\n9\n"]
    assert [line for _, _, line in cuts] == [2, 6, 10]


@pytest.mark.parametrize("spread_files", [False, True])
def test_kept_records_share_their_sets_of_given_fields(
    history: Path, monkeypatch: pytest.MonkeyPatch, spread_files: bool
) -> None:
    """Records are validated without sharing (most are dropped once checked); those kept, read
    here or by workers, share one set per combination of given fields, as other models do."""
    if spread_files:
        monkeypatch.setattr(spread, "SPREAD_FROM", 1)
        records = load_residency(DirectorySource(history), "", in_window(AS_OF))
    else:
        records = _serial(history, monkeypatch)
    assert len({id(r.__pydantic_fields_set__) for r in records}) <= 4 < len(records)
    costs = [r.cost for r in records if r.cost is not None]
    assert len({id(c.__pydantic_fields_set__) for c in costs}) <= 2 < len(costs)


def _lines_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the lines each read of a file or part parses (workers count in their own copy:
    used on reads in this process)."""
    counted: list[int] = []
    original = spread._read

    def counting(shown: str, text: str, *args: Any, **kwargs: Any) -> Any:
        counted.append(text.count("\n"))
        return original(shown, text, *args, **kwargs)

    monkeypatch.setattr(spread, "_read", counting)
    return counted


def test_a_file_read_before_is_read_again_only_where_windows_are_kept(
    history: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = _serial(history, monkeypatch)
    counted = _lines_read(monkeypatch)
    first = spread.read_spread(DirectorySource(history), "", in_window(AS_OF))
    whole = sum(counted)
    next_run(cache)
    counted.clear()
    again = spread.read_spread(DirectorySource(history), "", in_window(AS_OF))
    assert first == again == serial
    assert _seen(again) == _seen(serial)
    # Only the newest month and a day or two of the one before hold the last 30 days.
    assert 0 < sum(counted) < whole * 0.45
    assert spread.read_spread(DirectorySource(history), "", None) == _serial(history, monkeypatch, keep=False)


@pytest.mark.usefixtures("cut_small")
def test_spread_parts_of_a_known_file_give_the_serial_records(
    history: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert spread.read_spread(DirectorySource(history), "", in_window(AS_OF)) is not None
    next_run(cache)
    again = spread.read_spread(DirectorySource(history), "", in_window(AS_OF))
    serial = _serial(history, monkeypatch)
    assert again == serial
    assert _seen(again) == _seen(serial)


@pytest.mark.parametrize("change", ["bad cell", "duplicate far away", "currency"])
def test_a_file_changed_since_it_was_remembered_is_checked_whole(
    history: Path, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    import shutil

    root = tmp_path / "changed"
    shutil.copytree(history, root)
    assert spread.read_spread(DirectorySource(root), "", in_window(AS_OF)) is not None
    next_run(cache)
    _break(root, change)
    assert spread.read_spread(DirectorySource(root), "", in_window(AS_OF)) is None
    with pytest.raises(InputErrors):
        load_residency(DirectorySource(root), "", in_window(AS_OF))


def test_a_new_file_repeating_a_remembered_window_outside_the_kept_one_is_refused(
    history: Path, tmp_path: Path, cache: Path
) -> None:
    import shutil

    root = tmp_path / "repeated"
    shutil.copytree(history, root)
    assert spread.read_spread(DirectorySource(root), "", in_window(AS_OF)) is not None
    next_run(cache)
    oldest = sorted((root / "residency").glob("*.csv"))[0]
    header, first_row = oldest.read_text(encoding="utf-8").split("\n")[:2]
    (root / "residency" / "zz-late.csv").write_text(f"{header}\n{first_row}\n", encoding="utf-8")
    assert spread.read_spread(DirectorySource(root), "", in_window(AS_OF)) is None
    with pytest.raises(InputErrors) as raised:
        load_residency(DirectorySource(root), "", in_window(AS_OF))
    assert "duplicate record" in raised.value.errors[0].render()
