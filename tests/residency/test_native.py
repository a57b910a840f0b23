"""The native format: round trips, the CSV projection, and every kind of bad data, located."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from policy_engine.errors import InputErrors
from policy_engine.residency.native import (
    dumps_csv,
    dumps_jsonl,
    load_residency,
    parse_csv,
    parse_jsonl,
    write_records,
)
from policy_engine.residency.records import ResidencyRecord
from policy_engine.sources import DirectorySource

RECORD = {
    "schema_version": 1,
    "deployment_id": "sic-v8-use1-canary",
    "window_start": "2025-06-29T00:00:00Z",
    "window_end": "2025-06-30T00:00:00Z",
    "coverage": 1.0,
    "gpu_type": "nvidia-l4",
    "gpu_hours": 24.0,
    "gpu_count_avg": 1.0,
    "warm_replica_hours": 24.0,
    "replicas_min_observed": 1,
    "replicas_max_observed": 1,
    "gpu_util_avg": 0.06,
    "gpu_util_p95": 0.11,
    "cost": {"total": 19.2, "gpu": 17.04, "other": 2.16, "currency": "USD", "basis": "effective"},
    "requests": 24110,
    "requests_failed": 3,
    "tokens_in": None,
    "tokens_out": None,
    "traffic_share": 0.031,
    "labels": {"team": "app-support", "cost_center": "CC-6100"},
    "provenance": {
        "gpu_hours": "opencost:/allocation aggregate=label:portfolio_acme_io_deployment",
        "cost": "focus:EffectiveCost",
        "gpu_util_avg": "prometheus:DCGM_FI_DEV_GPU_UTIL/100",
        "requests": "prometheus:revision_app_request_count",
        "fetched_at": "2025-06-30T02:10:00Z",
    },
}
IDLE = {
    "deployment_id": None,
    "unattributed_reason": "opencost:__idle__",
    "window_start": "2025-06-29T00:00:00Z",
    "window_end": "2025-06-30T00:00:00Z",
    "gpu_hours": 31.0,
    "cost": {"total": 114.2, "gpu": 96.1, "other": 18.1, "currency": "USD", "basis": "list"},
    "labels": {"cluster": "prod-use1"},
}

# The CSV projection exactly as the format reference shows it.
DOMAIN_CSV = """\
deployment_id,window_start,window_end,coverage,gpu_type,gpu_hours,gpu_count_avg,warm_replica_hours,replicas_min_observed,gpu_util_avg,gpu_util_p95,cost_total,cost_gpu,cost_other,currency,cost_basis,requests,requests_failed,tokens_in,tokens_out,traffic_share,team,cost_center,source
sic-v7-use1,2025-06-29T00:00:00Z,2025-06-30T00:00:00Z,1.0,nvidia-l4,52.5,2.19,52.5,2,0.41,0.77,42.00,37.28,4.72,USD,effective,751230,41,,,0.969,app-support,CC-6100,opencost+prom+focus
fraud-v11-usc1,2025-06-29T00:00:00Z,2025-06-30T00:00:00Z,1.0,nvidia-t4,24.0,1.0,24.0,1,0.00,0.01,10.56,8.40,2.16,USD,effective,0,0,,,0.0,app-payments,CC-6300,opencost+prom+focus
,2025-06-29T00:00:00Z,2025-06-30T00:00:00Z,1.0,,31.0,,,,,,114.20,96.10,18.10,USD,effective,,,,,,,,opencost:__idle__
"""


def jsonl(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def errors_of(text: str, file: str = "residency/x.jsonl") -> list[str]:
    parse = parse_csv if file.endswith(".csv") else parse_jsonl
    _records, errors = parse(text, file)
    return [e.render() for e in errors]


# ---------------------------------------------------------------------------- round trips


def test_jsonl_round_trip_keeps_every_field_and_null() -> None:
    records, errors = parse_jsonl(jsonl(RECORD, IDLE), "r.jsonl")
    assert errors == []
    again, errors = parse_jsonl(dumps_jsonl(records), "r.jsonl")
    assert errors == []
    assert again == records
    first = json.loads(dumps_jsonl(records).splitlines()[0])
    assert first["tokens_in"] is None  # null stays null, never 0
    assert first["window_start"] == "2025-06-29T00:00:00Z"
    assert first == {**RECORD, "unattributed_reason": None}


def test_csv_round_trip_and_jsonl_to_csv_to_jsonl() -> None:
    records, errors = parse_jsonl(jsonl(RECORD, IDLE), "r.jsonl")
    assert errors == []
    text = dumps_csv(records)
    back, errors = parse_csv(text, "r.csv")
    assert errors == []
    assert [r.model_dump() for r in back] == [r.model_dump() for r in records]
    assert dumps_csv(back) == text


def test_the_documented_csv_projection_reads() -> None:
    records, errors = parse_csv(DOMAIN_CSV, "residency/june.csv")
    assert errors == []
    assert [r.deployment_id for r in records] == ["sic-v7-use1", "fraud-v11-usc1", None]
    sic = records[0]
    assert sic.cost is not None
    assert sic.cost.total == 42.0
    assert sic.cost.basis == "effective"
    assert sic.tokens_in is None
    assert sic.requests == 751230
    assert sic.labels == {"team": "app-support", "cost_center": "CC-6100"}
    assert records[2].unattributed_reason == "opencost:__idle__"
    assert records[1].origin == ("residency/june.csv", 3)


def test_timestamps_are_normalised_to_utc() -> None:
    record = ResidencyRecord.model_validate_json(
        json.dumps({**RECORD, "window_start": "2025-06-29T02:00:00+02:00"})
    )
    assert record.window_start == datetime(2025, 6, 29, tzinfo=UTC)
    assert '"window_start":"2025-06-29T00:00:00Z"' in record.model_dump_json()


def test_write_records_is_atomic_and_sorted(tmp_path: Path) -> None:
    records, _ = parse_jsonl(jsonl(IDLE, RECORD), "r.jsonl")
    target = tmp_path / "residency" / "2025-06.jsonl"
    write_records(records, target)
    lines = target.read_text().splitlines()
    assert json.loads(lines[0])["deployment_id"] == "sic-v8-use1-canary"  # deployments before unattributed
    assert [p.name for p in target.parent.iterdir()] == ["2025-06.jsonl"]  # no temporary left behind
    write_records(records, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().startswith("deployment_id,window_start,")


def test_load_residency_reads_every_native_file(tmp_path: Path) -> None:
    (tmp_path / "residency" / "2025").mkdir(parents=True)
    (tmp_path / "residency" / "2025" / "06.jsonl").write_text(jsonl(RECORD))
    (tmp_path / "residency" / "june.csv").write_text(DOMAIN_CSV)
    # a FOCUS export kept next to them as an adapter input is not a native file
    (tmp_path / "residency" / "focus-export.csv").write_text(
        "ChargePeriodStart,ChargePeriodEnd,BillingCurrency,EffectiveCost\n"
    )
    records = load_residency(DirectorySource(tmp_path), "portfolio/")
    assert len(records) == 4
    assert records[0].origin == ("portfolio/residency/2025/06.jsonl", 1)


def test_the_schema_describes_every_field() -> None:
    schema = ResidencyRecord.model_json_schema()
    assert set(schema["properties"]) >= {"deployment_id", "window_start", "cost", "provenance"}
    for name, spec in schema["properties"].items():
        assert spec.get("description"), name
    assert schema["properties"]["window_start"]["format"] == "date-time"


# ---------------------------------------------------------------------------- bad data


def test_missing_columns_are_named() -> None:
    text = "deployment_id,window_start,gpu_hours,cost_total\nx,2025-06-29T00:00:00Z,1,2\n"
    errors = errors_of(text, "residency/bad.csv")
    assert "residency/bad.csv:1:1: missing column 'window_end' [$.window_end]" in errors[0]
    assert any("missing column 'currency' (cost columns are present)" in e for e in errors)
    assert any("missing column 'cost_basis'" in e for e in errors)


def test_unknown_csv_column_gets_a_hint() -> None:
    text = "deployment_id,window_start,window_end,gpu_hour\n"
    (error,) = errors_of(text, "residency/bad.csv")
    assert error.startswith("residency/bad.csv:1:39: unknown column 'gpu_hour'; did you mean 'gpu_hours'?")


def test_missing_jsonl_field_is_located() -> None:
    record = {k: v for k, v in RECORD.items() if k != "window_end"}
    (error,) = errors_of(jsonl(RECORD, record))
    assert error.startswith("residency/x.jsonl:2:1: missing required field 'window_end' [$.window_end]")


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_inf_in_jsonl(token: str) -> None:
    line = json.dumps(RECORD).replace('"gpu_hours": 24.0', f'"gpu_hours": {token}')
    (error,) = errors_of(line + "\n")
    column = line.index('"gpu_hours"') + 1
    assert error.startswith(f"residency/x.jsonl:1:{column}: gpu_hours is ")
    assert "NaN and Inf are not allowed [$.gpu_hours] (expected a finite number)" in error


@pytest.mark.parametrize("cell", ["NaN", "inf", "-Infinity", "nan"])
def test_nan_and_inf_in_csv(cell: str) -> None:
    text = DOMAIN_CSV.replace(",52.5,2.19,", f",{cell},2.19,", 1)
    (error,) = errors_of(text, "residency/june.csv")
    column = text.splitlines()[1].index(cell) + 1
    assert error.startswith(f"residency/june.csv:2:{column}: column 'gpu_hours': '{cell}': NaN and Inf")
    assert "[$.gpu_hours] (expected a finite number)" in error


def test_negative_values_are_refused() -> None:
    line = json.dumps({**RECORD, "cost": {**RECORD["cost"], "total": -19.2}})
    (error,) = errors_of(line)
    column = line.index('"total"') + 1
    assert error == (
        f"residency/x.jsonl:1:{column}: negative value -19.2 for cost.total [$.cost.total] "
        "(expected a number ≥ 0)"
    )
    text = DOMAIN_CSV.replace(",751230,", ",-5,")
    (error,) = errors_of(text, "residency/june.csv")
    assert "residency/june.csv:2:" in error
    assert "negative value -5 for column 'requests' [$.requests]" in error


def test_percent_utilisation_is_not_a_ratio() -> None:
    (error,) = errors_of(json.dumps({**RECORD, "gpu_util_avg": 41.0}))
    assert "gpu_util_avg is 41.0, above 1 [$.gpu_util_avg]" in error
    assert "divided by 100" in error


def test_timestamps_without_a_zone() -> None:
    (error,) = errors_of(json.dumps({**RECORD, "window_start": "2025-06-29T00:00:00"}))
    assert "timestamp '2025-06-29T00:00:00' in window_start has no time zone [$.window_start]" in error
    text = DOMAIN_CSV.replace("sic-v7-use1,2025-06-29T00:00:00Z", "sic-v7-use1,2025-06-29 00:00:00")
    (error,) = errors_of(text, "residency/june.csv")
    assert error.startswith(
        "residency/june.csv:2:13: column 'window_start': timestamp '2025-06-29 00:00:00' has no"
    )


def test_window_must_move_forward_and_need_an_owner() -> None:
    (error,) = errors_of(json.dumps({**RECORD, "window_end": RECORD["window_start"]}))
    assert "window_end must be after window_start" in error
    (error,) = errors_of(json.dumps({**IDLE, "unattributed_reason": None}))
    assert "needs unattributed_reason" in error


def test_unknown_field_and_bad_json() -> None:
    (error,) = errors_of(json.dumps({**RECORD, "gpu_hour": 1.0}))
    assert "unknown field 'gpu_hour'; did you mean 'gpu_hours'?" in error
    (error,) = errors_of('{"deployment_id": "x",\n')
    assert error.startswith("residency/x.jsonl:1:")
    assert "invalid JSON" in error
    (error,) = errors_of(json.dumps({**RECORD, "requests": 24110.5}))
    assert "requests is 24110.5, not a whole number" in error


def _load(tmp_path: Path, **files: str) -> list[str]:
    for name, text in files.items():
        path = tmp_path / "residency" / name.replace("__", ".")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    with pytest.raises(InputErrors) as caught:
        load_residency(DirectorySource(tmp_path))
    return [e.render() for e in caught.value.errors]


def test_duplicate_records_name_both_places(tmp_path: Path) -> None:
    errors = _load(tmp_path, a__jsonl=jsonl(RECORD), b__jsonl=jsonl(IDLE, RECORD))
    assert errors == [
        "residency/b.jsonl:2:1: duplicate record for sic-v8-use1-canary "
        "[2025-06-29T00:00:00Z, 2025-06-30T00:00:00Z) from source 'native' (also residency/a.jsonl:1) "
        "[$.window_start] (expected one record per deployment, window and source)"
    ]


def test_overlapping_windows(tmp_path: Path) -> None:
    shifted = {**RECORD, "window_start": "2025-06-29T12:00:00Z", "window_end": "2025-06-30T12:00:00Z"}
    (error,) = _load(tmp_path, a__jsonl=jsonl(RECORD, shifted))
    assert error.startswith("residency/a.jsonl:2:1: window [2025-06-29T12:00:00Z, 2025-06-30T12:00:00Z) of ")
    assert "overlaps [2025-06-29T00:00:00Z, 2025-06-30T00:00:00Z) at residency/a.jsonl:1" in error


def test_same_window_from_two_sources_is_not_a_duplicate(tmp_path: Path) -> None:
    from_opencost = {**RECORD, "provenance": {"source": "opencost"}}
    from_focus = {**RECORD, "provenance": {"source": "focus"}}
    (tmp_path / "residency").mkdir()
    (tmp_path / "residency" / "a.jsonl").write_text(jsonl(from_opencost, from_focus))
    assert len(load_residency(DirectorySource(tmp_path))) == 2


def test_mixed_currencies(tmp_path: Path) -> None:
    euro = {**IDLE, "cost": {**IDLE["cost"], "currency": "EUR"}}
    (error,) = _load(tmp_path, a__jsonl=jsonl(RECORD), b__csv=DOMAIN_CSV, c__jsonl=jsonl(euro))
    assert error.startswith("residency/c.jsonl:1:1: mixed currencies: EUR here, USD in residency/a.jsonl:1")
    assert "[$.cost.currency] (expected one currency (USD); convert before import)" in error


def test_every_problem_of_every_file_is_reported(tmp_path: Path) -> None:
    errors = _load(
        tmp_path,
        a__jsonl=jsonl({**RECORD, "gpu_hours": -1}) + "\n" + jsonl({**RECORD, "coverage": 2}),
        b__csv="deployment_id,window_start\n",
    )
    assert [e.split(":")[0] + ":" + e.split(":")[1] for e in errors] == [
        "residency/a.jsonl:1",
        "residency/a.jsonl:3",
        "residency/b.csv:1",
    ]


def test_records_match_the_published_schema(tmp_path: Path) -> None:
    import jsonschema

    from policy_engine import schema

    published = json.loads(schema.generate()["residency.schema.json"])
    validator = jsonschema.Draft202012Validator(published, format_checker=jsonschema.FormatChecker())
    records, _ = parse_jsonl(jsonl(RECORD, IDLE), "r.jsonl")
    for line in dumps_jsonl(records).splitlines():
        assert list(validator.iter_errors(json.loads(line))) == []
    example = Path(__file__).resolve().parents[2] / "examples" / "acme-portfolio" / "residency"
    for path in sorted(example.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            assert list(validator.iter_errors(json.loads(line))) == [], path


def _day(day: int) -> dict:
    """RECORD moved to June ``day``, 2025."""
    return {
        **RECORD,
        "window_start": f"2025-06-{day:02d}T00:00:00Z",
        "window_end": f"2025-06-{day + 1:02d}T00:00:00Z",
    }


def test_only_the_records_kept_are_returned_and_every_one_is_checked(tmp_path: Path) -> None:
    """``check`` keeps the records its window needs; the others are still read and checked."""
    (tmp_path / "residency").mkdir()
    (tmp_path / "residency" / "a.jsonl").write_text(jsonl(_day(1), _day(2), _day(28), _day(29)))
    since = datetime(2025, 6, 28, tzinfo=UTC)
    kept = load_residency(DirectorySource(tmp_path), keep=lambda r: r.window_start >= since)
    assert [r.window_start.day for r in kept] == [28, 29]
    # A duplicate among the dropped ones, and a bad record among them, are errors all the same.
    (tmp_path / "residency" / "b.jsonl").write_text(jsonl(_day(1), {**_day(3), "gpu_hours": -1}))
    with pytest.raises(InputErrors) as caught:
        load_residency(DirectorySource(tmp_path), keep=lambda r: r.window_start >= since)
    by_line = {e.line: e.render() for e in caught.value.errors if e.file == "residency/b.jsonl"}
    assert len(caught.value.errors) == len(by_line) == 2
    assert "duplicate record for sic-v8-use1-canary" in by_line[1]
    assert "(also residency/a.jsonl:1)" in by_line[1]
    assert "gpu_hours" in by_line[2]
