"""Rows made into records without pydantic equal pydantic's records, and every row the fast
reader is not sure of goes to pydantic."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from pydantic import BaseModel, field_validator

from policy_engine.residency import native
from policy_engine.residency.native import CSV_COLUMNS, dumps_csv, parse_csv
from policy_engine.residency.records import ResidencyRecord
from policy_engine.residency.rows import Cell, RowReader, _after_validators, _property, _rule
from tests.residency.test_native import IDLE, RECORD

HEADER = [*CSV_COLUMNS, "label.cluster", "provenance.cost"]


def _record(data: dict[str, Any]) -> ResidencyRecord:
    return ResidencyRecord.model_validate_json(json.dumps(data))


def _row(**cells: str) -> list[str]:
    base = dumps_csv([_record(RECORD)]).split("\n")
    header = base[0].split(",")
    values = dict(zip(header, base[1].split(","), strict=True))
    values.update(cells)
    return [values.get(name, "") for name in HEADER]


def _reader() -> RowReader:
    return RowReader(native._cells(HEADER), native._COST_AMOUNTS)


def _pydantic(row: list[str]) -> ResidencyRecord | None:
    errors: list[Any] = []
    return native._csv_record(HEADER, row, "x.csv", 2, [1] * len(row), errors)


def _shape(record: ResidencyRecord) -> tuple[Any, ...]:
    cost = record.cost
    return (
        record.model_dump_json(),
        list(record.__dict__),
        record.model_fields_set,
        record.source_kind,
        cost and (list(cost.__dict__), cost.model_fields_set),
    )


CHANGES: list[dict[str, str]] = [
    {},
    {"cost_gpu": "", "cost_other": ""},
    {"cost_total": "", "cost_gpu": "", "cost_other": "", "currency": "", "cost_basis": ""},
    {"deployment_id": "", "source": "opencost:__idle__"},
    {"deployment_id": "", "unattributed_reason": "focus:untagged", "label.cluster": "prod-use1"},
    {"schema_version": "1", "replicas_max_observed": "", "traffic_share": " 0.5 "},
    {"window_start": "2025-06-29T02:00:00+02:00", "window_end": "2025-06-29T23:00:00Z"},
    {"gpu_type": "  nvidia-l4  ", "team": "", "provenance.cost": "focus:EffectiveCost"},
    {"coverage": "1", "gpu_util_avg": "0", "gpu_hours": "1e3", "tokens_in": "12"},
]
BAD: list[dict[str, str]] = [
    {"gpu_hours": "-1"},
    {"gpu_util_avg": "55"},
    {"coverage": "nan"},
    {"cost_total": "inf"},
    {"gpu_hours": "1e309"},
    {"requests": "1.5"},
    {"requests": "-3"},
    {"gpu_hours": "lots"},
    {"currency": "usd"},
    {"currency": "USDX"},
    {"cost_basis": "invoice"},
    {"schema_version": "2"},
    {"window_start": "2025-06-29T00:00:00"},
    {"window_end": "2025-06-28T00:00:00Z"},
    {"window_end": ""},
    {"cost_total": ""},
    {"currency": ""},
    {"deployment_id": "", "source": "native"},
    {"unattributed_reason": "opencost:__idle__"},
]


@pytest.mark.parametrize("change", CHANGES)
def test_a_well_formed_row_gives_the_record_pydantic_gives(change: dict[str, str]) -> None:
    row = _row(**change)
    fast = _reader().record(row)
    slow = _pydantic(row)
    assert fast is not None
    assert slow is not None
    assert fast == slow
    assert _shape(fast) == _shape(slow)


@pytest.mark.parametrize("change", BAD)
def test_a_row_pydantic_refuses_is_left_to_it(change: dict[str, str]) -> None:
    row = _row(**change)
    assert _pydantic(row) is None, "the example must be one pydantic refuses"
    assert _reader().record(row) is None


def test_every_pair_of_changes_agrees_with_pydantic() -> None:
    reader = _reader()
    checked = 0
    for first, second in itertools.product(CHANGES + BAD, repeat=2):
        row = _row(**{**first, **second})
        fast, slow = reader.record(row), _pydantic(row)
        if fast is not None:
            assert slow is not None, (first, second)
            assert _shape(fast) == _shape(slow), (first, second)
            checked += 1
    assert checked > 50


def test_a_constraint_the_reader_does_not_know_sends_the_column_to_pydantic() -> None:
    cell = Cell(0, ("gpu_hours",), "float")
    node = _property(ResidencyRecord.model_json_schema(), cell.path)
    assert node == {**node, "type": "number", "minimum": 0}
    assert _rule(cell, node) is not None
    assert _rule(cell, {**node, "exclusiveMinimum": 0}) is None
    assert _rule(cell, {**node, "type": "integer"}) is None
    assert (
        _rule(Cell(0, ("nowhere",), "str"), _property(ResidencyRecord.model_json_schema(), ("nowhere",)))
        is None
    )


def test_a_model_with_validators_the_reader_cannot_run_is_refused() -> None:
    class Checked(BaseModel):
        name: str

        @field_validator("name")
        @classmethod
        def _upper(cls, value: str) -> str:
            return value.upper()

    with pytest.raises(TypeError, match="validators"):
        _after_validators(Checked)


def test_plain_and_quoted_files_read_alike() -> None:
    records = [_record(RECORD), _record(IDLE)]
    text = dumps_csv(records)
    quoted = text.replace(",nvidia-l4,", ',"nvidia-l4",')
    assert quoted != text
    plain_read, plain_errors = parse_csv(text + "\n\n", "x.csv")
    quoted_read, quoted_errors = parse_csv(quoted + "\n\n", "x.csv")
    assert plain_errors == quoted_errors == []
    assert [_shape(r) for r in plain_read] == [_shape(r) for r in quoted_read]
    assert [r.origin for r in plain_read] == [r.origin for r in quoted_read] == [("x.csv", 2), ("x.csv", 3)]


def test_a_bad_row_in_a_plain_file_is_located_as_before() -> None:
    text = dumps_csv([_record(RECORD)])
    bad = text + text.split("\n")[1].replace(",24.0,", ",-24.0,", 1) + "\n"
    _, errors = parse_csv(bad, "x.csv")
    assert [(e.line, e.json_path) for e in errors] == [(3, "$.gpu_hours")]
