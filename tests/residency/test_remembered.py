"""``check``'s measured facts remembered by their inputs: a run on unchanged inputs reads no
residency record and reports exactly what measuring again reports; any change the aggregation
reads (a record, a model's deployments or floors, the records the window keeps, the portfolio's
currency) measures again; changes it does not read keep the facts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from policy_engine import parsecache
from policy_engine.commands.check import (
    CheckOptions,
    Loaded,
    LoadOptions,
    build_check_report,
    load_all,
    with_measured,
)
from policy_engine.errors import InputErrors
from policy_engine.residency import native
from tests.conftest import next_run

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from generate import generate  # noqa: E402

AS_OF = datetime(2026, 3, 1, 6, tzinfo=UTC)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("remembered") / "portfolio"
    generate(root, 30, seed=11, residency_days=90)
    return root


@pytest.fixture
def portfolio(generated: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(generated, tmp_path / "portfolio"))


def _check(root: Path, as_of: datetime = AS_OF) -> tuple[str, Loaded]:
    """The report of ``check`` (with the measured facts it saw), and what it loaded."""
    options = CheckOptions(load=LoadOptions(path=root, measured_as_of=as_of), as_of=as_of, context="audit")
    loaded = load_all(options.load)
    facts = with_measured(None, loaded, as_of)
    assert facts is not None
    report = build_check_report(options, loaded, facts).model_dump_json()
    return json.dumps(facts.measured, sort_keys=True) + report, loaded


def _found(loaded: Loaded) -> dict[str, Any] | None:
    """The measured facts the run found remembered (per target), if it did."""
    remembered = loaded.remembered
    found = remembered.of(loaded.portfolio) if remembered is not None else None
    return found.by_target if found is not None else None


def _measured_afresh(root: Path, cache: Path, as_of: datetime = AS_OF) -> str:
    """The report with nothing cached at all."""
    parsecache.configure(None)
    try:
        report, loaded = _check(root, as_of)
    finally:
        parsecache.configure(cache)
    assert loaded.remembered is None
    return report


def _model_file(root: Path) -> Path:
    return sorted((root / "models").glob("*.yaml"))[0]


def _edit_model(root: Path, change: Callable[[dict], None]) -> None:
    path = _model_file(root)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _edit_portfolio(root: Path, old: str, new: str) -> None:
    path = root / "portfolio.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")


def _edit_a_record(root: Path) -> None:
    """One more GPU-hour in the first record of the last month (in the window)."""
    path = sorted((root / "residency").glob("*.csv"))[-1]
    lines = path.read_text(encoding="utf-8").split("\n")
    column = lines[0].split(",").index("gpu_hours")
    cells = lines[1].split(",")
    cells[column] = str(float(cells[column]) + 1.0)
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines), encoding="utf-8")


def test_a_run_on_unchanged_inputs_reads_no_record(
    portfolio: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, loaded = _check(portfolio)
    assert not _found(loaded)
    assert loaded.residency
    assert loaded.remembered is not None
    assert loaded.remembered.key(loaded.portfolio)
    next_run(cache)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a residency file was read again")

    with monkeypatch.context() as patch:
        patch.setattr(native, "parse_csv", never)
        patch.setattr(native, "parse_jsonl", never)
        again, loaded = _check(portfolio)
    assert _found(loaded)
    assert loaded.residency is None
    assert _found(loaded)["portfolio"]["cost"] > 0
    assert again == first == _measured_afresh(portfolio, cache)


def _stage(data: dict) -> None:
    version = data["versions"][0]
    version["stage"] = "shadow" if version["stage"] != "shadow" else "canary"


def _selector(data: dict) -> None:
    data["versions"][0]["deployments"][0]["selectors"] = {"k8s_labels": {"app": "elsewhere"}}


def _floor(data: dict) -> None:
    data["exit_criteria_defaults"] = {"idle_util_floor": 0.9, "min_traffic_share": 0.5}


def _endpoint(data: dict) -> None:
    data["versions"][0]["deployments"][0]["endpoint"] = "another-endpoint"


MEASURED_AGAIN: dict[str, Callable[[Path], None]] = {
    "a record in the window": _edit_a_record,
    "a version's stage": lambda root: _edit_model(root, _stage),
    "a deployment's selectors": lambda root: _edit_model(root, _selector),
    "a model's floors": lambda root: _edit_model(root, _floor),
    "a deployment's endpoint": lambda root: _edit_model(root, _endpoint),
    "a file gone": lambda root: sorted((root / "residency").glob("*.csv"))[0].unlink(),
    "the hours per month": lambda root: _edit_portfolio(
        root, "currency:", "hours_per_month: 720\n  currency:"
    ),
}


CHANGED_REPORT = ("a record in the window", "a version's stage", "a model's floors", "the hours per month")


@pytest.mark.parametrize("change", sorted(MEASURED_AGAIN))
def test_a_change_the_aggregation_reads_measures_again(portfolio: Path, cache: Path, change: str) -> None:
    before, _ = _check(portfolio)
    next_run(cache)
    MEASURED_AGAIN[change](portfolio)
    after, loaded = _check(portfolio)
    assert not _found(loaded), "the facts of other inputs were taken"
    assert after == _measured_afresh(portfolio, cache)
    if change in CHANGED_REPORT:  # (the others leave these records' facts as they were)
        assert after != before
    next_run(cache)
    again, loaded = _check(portfolio)
    assert _found(loaded)
    assert again == after


def test_the_window_keeping_other_records_measures_again(portfolio: Path, cache: Path) -> None:
    _check(portfolio)
    next_run(cache)
    later = AS_OF + timedelta(days=1)
    report, loaded = _check(portfolio, later)
    assert not _found(loaded)
    assert report == _measured_afresh(portfolio, cache, later)


def _cost_center(data: dict) -> None:
    data["versions"][0]["deployments"][0]["cost_center"] = "CC-0001"


def _replicas(data: dict) -> None:
    data["versions"][0]["deployments"][0]["replicas"]["max"] += 1


@pytest.mark.parametrize("change", [_cost_center, _replicas], ids=["a cost center", "a replica cap"])
def test_a_change_the_aggregation_does_not_read_keeps_the_facts(
    portfolio: Path, cache: Path, change: Callable[[dict], None]
) -> None:
    _check(portfolio)
    next_run(cache)
    _edit_model(portfolio, change)
    report, loaded = _check(portfolio)
    assert _found(loaded)
    assert report == _measured_afresh(portfolio, cache)


def test_a_later_instant_keeping_the_same_records_finds_the_facts(portfolio: Path, cache: Path) -> None:
    _check(portfolio)
    next_run(cache)
    later = AS_OF + timedelta(hours=12)  # daily records: the window keeps the same days
    report, loaded = _check(portfolio, later)
    assert _found(loaded)
    assert report == _measured_afresh(portfolio, cache, later)


def test_facts_that_could_not_be_measured_are_not_remembered(portfolio: Path, cache: Path) -> None:
    """Fail closed: records in another currency than the portfolio's are an input error on
    every run, never a remembered pass."""
    text = (portfolio / "portfolio.yaml").read_text(encoding="utf-8")
    (portfolio / "portfolio.yaml").write_text(
        text.replace("currency: USD", "currency: EUR"), encoding="utf-8"
    )
    for _ in range(2):
        with pytest.raises(InputErrors) as raised:
            _check(portfolio)
        assert "the portfolio's currency is EUR" in raised.value.errors[0].message
        next_run(cache)


def test_a_broken_file_is_reported_not_hidden_by_remembered_facts(portfolio: Path, cache: Path) -> None:
    _check(portfolio)
    next_run(cache)
    path = sorted((portfolio / "residency").glob("*.csv"))[-1]
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(",USD,", ",US,", 1), encoding="utf-8")
    with pytest.raises(InputErrors) as raised:
        _check(portfolio)
    [error] = raised.value.errors
    assert (error.file, error.line) == ("residency/" + path.name, 2)
    assert error.json_path == "$.cost.currency"


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


# The CLI in a fresh process, as pull-request mode runs; with ``no_reads``, reading any
# residency file fails it. (In this test process, ``import git`` finds the tests' own package.)
_DRIVER = """
import sys
from policy_engine import cli
from policy_engine.residency import native
if sys.argv.pop(1) == "no-reads":
    def never(*args, **kwargs):
        raise SystemExit("a residency file was read again")
    native.parse_csv = native.parse_jsonl = never
cli.main()
"""


def _pull_request(root: Path, cache: Path | None, *, no_reads: bool = False) -> str:
    out = root.parent / "pull-request.json"
    env = {**os.environ, "POLICY_ENGINE_CACHE_DIR": str(cache)} if cache else {**os.environ}
    args = ["check", str(root), "--base", "main", "--as-of", "2026-03-01T06:00:00Z"]
    args += ["--format", "json", "--output", str(out)] + ([] if cache else ["--no-cache"])
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, "no-reads" if no_reads else "reads", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr  # (failing findings, no error)
    return out.read_text(encoding="utf-8")


def test_pull_request_mode_remembers_the_base_and_the_head_facts(portfolio: Path, tmp_path: Path) -> None:
    """The base's report and the head's measure the base's residency files against different
    portfolios (here the head makes a version a shadow): each is remembered by its own."""
    _git(portfolio, "init", "-q", "-b", "main")
    _git(portfolio, "add", "-A")
    _git(portfolio, "commit", "-qm", "base")
    _git(portfolio, "checkout", "-qb", "feature")
    _edit_model(portfolio, _stage)
    _git(portfolio, "commit", "-qam", "a version becomes a shadow")
    cache = tmp_path / "cli-cache"
    first = _pull_request(portfolio, cache)
    assert _pull_request(portfolio, cache, no_reads=True) == first
    assert _pull_request(portfolio, None) == first
