"""Evaluating on forked workers gives the same report as evaluating in-process."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from policy_engine import parallel, parsecache
from policy_engine.commands.check import CheckOptions, LoadOptions, build_check_report, ledger_rules, load_all
from policy_engine.engine import Facts, Runner, Settings, evaluate
from policy_engine.targets import MODEL_FILE_SCOPES, Target, build_targets

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "acme-portfolio"


@pytest.mark.parametrize("as_of", ["2025-06-30T00:00:00Z", "2025-09-12T00:00:00Z"])
def test_forked_evaluation_matches_in_process(monkeypatch: pytest.MonkeyPatch, as_of: str) -> None:
    parsecache.configure(None)
    moment = datetime.fromisoformat(as_of)
    options = CheckOptions(
        load=LoadOptions(path=EXAMPLE), as_of=moment.astimezone(UTC), context="audit", show_all=True
    )
    loaded = load_all(options.load)
    monkeypatch.setattr(parallel, "EVALUATE_FROM", 10**9)
    serial = build_check_report(options, loaded).model_dump_json()
    monkeypatch.setattr(parallel, "EVALUATE_FROM", 2)
    forked = build_check_report(options, loaded).model_dump_json()
    assert forked == serial
    monkeypatch.setattr(parallel, "can_fork", lambda: False)  # in this process, piece by piece
    assert build_check_report(options, loaded).model_dump_json() == serial
    assert '"waived"' in serial or as_of.startswith("2025-09")  # the ledger saw the waiver counts


def test_deferred_model_files_make_the_same_targets() -> None:
    parsecache.configure(None)
    loaded = load_all(LoadOptions(path=EXAMPLE))
    made = build_targets(loaded.portfolio).all()
    deferred = build_targets(loaded.portfolio, defer=True)
    assert deferred.deferred
    assert set(deferred.by_scope).isdisjoint(MODEL_FILE_SCOPES)
    assert _by_id(deferred.all()) == _by_id(made)


def _by_id(targets: list[Target]) -> dict[str, tuple[object, ...]]:
    return {t.id: (t.scope, t.data, t.source and t.source.file, t.path, t.position) for t in targets}


@pytest.mark.parametrize(
    ("weights", "count", "expected"),
    [
        ([1] * 10, 3, [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]),
        ([9, 1, 1, 1, 1, 1, 1, 1], 2, [[0], [1, 2, 3, 4, 5, 6, 7]]),  # by weight, not by count
        ([1, 1], 5, [[0], [1]]),  # never an empty piece
        ([], 4, []),
    ],
)
def test_pieces_are_of_about_equal_weight(weights: list[int], count: int, expected: list[list[int]]) -> None:
    assert parallel.pieces(list(range(len(weights))), weights, count) == expected


COUNT_WAIVERS = """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: t.waived-count, severity: info}
spec:
  scope: exception
  validations:
    - expression: "false"
      messageExpression: "exception.id + ' waived ' + string(exception.waived_count)"
      message: never shown
"""


def test_waivers_are_counted_once_however_the_work_is_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each piece reports only what it waived: pieces run one after another in one process
    (a worker's, or this one without fork) must not count an earlier piece's waivers again."""
    parsecache.configure(None)
    (tmp_path / "count.yaml").write_text(COUNT_WAIVERS, encoding="utf-8")
    loaded = load_all(LoadOptions(path=EXAMPLE, policy_dirs=(tmp_path,)))
    settings = Settings(datetime(2025, 6, 30, tzinfo=UTC), "audit", keep_all=True)

    def counted(runner: Runner | None) -> tuple[list[str], dict[str, int]]:
        result = evaluate(
            build_targets(loaded.portfolio, defer=True),
            loaded.policies,
            loaded.backend,
            settings,
            Facts(),
            loaded.portfolio.exceptions.exceptions,
            ledger_rules(loaded, "audit"),
            loaded.matchers,
            runner=runner,
        )
        shown = [f.message for f in result.findings if f.policy_id == "t.waived-count"]
        return shown, dict(result.waived_by)

    def one_unit_per_piece(function: Any, units: list[Any], weights: list[int]) -> list[Any]:
        return [function([unit]) for unit in units]

    expected = (["EXC-2025-007 waived 1"], {"EXC-2025-007": 1})
    assert counted(None) == expected
    assert counted(one_unit_per_piece) == expected
    monkeypatch.setattr(parallel, "EVALUATE_FROM", 2)
    assert counted(parallel.fork_runner(2)) == expected  # two workers, many pieces each


def test_findings_travel_whole_and_keep_their_shared_location() -> None:
    """Findings come back from workers pickled by value (``_Out.__reduce__``): equal, with the
    fields they were given, the same class, and one location object per target still shared."""
    import pickle

    from policy_engine.models.report import Finding, Location

    where = Location(file="models/a.yaml", line=3, column=5, json_path="$.versions[0]")
    common = {
        "policy_id": "p",
        "target": "a@1",
        "severity": "error",
        "enforcement": "soft",
        "location": where,
    }
    failed = {"status": "fail", "blocking": True, "message": "m", "values": {"days": 3.5, "k": [1, "x"]}}
    skipped = {"status": "skip", "blocking": False, "message": "s", "skip_reason": "why"}
    findings = [
        Finding(fingerprint=str(index) * 16, validation=str(index), **common, **fields)
        for index, fields in enumerate((failed, skipped))
    ]
    back = pickle.loads(pickle.dumps(findings, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == findings
    assert [f.model_dump_json() for f in back] == [f.model_dump_json() for f in findings]
    assert [f.model_fields_set for f in back] == [f.model_fields_set for f in findings]
    assert back[0].location is back[1].location
    assert type(back[0]) is Finding
    assert type(back[0].location) is Location


@pytest.mark.parametrize("odd_value", [None, Decimal("1.5")])
def test_an_outcome_travels_whole_with_its_findings_marshalled(odd_value: Decimal | None) -> None:
    """An outcome sends its findings marshalled in one go (``packed_findings``), or pickled one
    by one when a value is not marshal's (a ``Decimal`` here): either way the same findings,
    given fields, class and shared locations."""
    import pickle

    from policy_engine.engine import Outcome
    from policy_engine.models.report import Finding, Location, packed_findings

    where = Location(file="models/a.yaml", line=3, column=5, json_path="$.versions[0]")
    nowhere = Location()
    common = {"policy_id": "p", "severity": "error", "enforcement": "soft", "status": "fail"}
    findings = [
        Finding.made(
            fingerprint=f"{index:016d}",
            validation=str(index),
            target=f"a@{index % 2}",
            blocking=index % 3 == 0,
            message=f"m{index}",
            location=where if index % 2 else nowhere,
            values={"days": index + 0.5, "list": [index, "x"], "odd": odd_value} if index % 4 else {},
            **({"remediation": "fix it"} if index % 5 == 0 else {}),
            **common,
        )
        for index in range(12)
    ]
    outcome = Outcome(findings, Counter(fail=12, passed=3), Counter(error=12), Counter({"EXC-1": 2}))
    assert (packed_findings(findings) is None) == (odd_value is not None)
    back = pickle.loads(pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))
    assert back.findings == findings
    assert [f.model_dump_json() for f in back.findings] == [f.model_dump_json() for f in findings]
    assert [f.model_fields_set for f in back.findings] == [f.model_fields_set for f in findings]
    assert [f.location.model_fields_set for f in back.findings] == [
        f.location.model_fields_set for f in findings
    ]
    assert back.findings[1].location is back.findings[3].location
    assert back.findings[0].location is back.findings[2].location
    assert {type(f) for f in back.findings} == {Finding}
    assert (back.by_status, back.by_severity, back.waived_by) == (
        outcome.by_status,
        outcome.by_severity,
        outcome.waived_by,
    )
