"""Each adapter on files shaped like the real sources' output."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from policy_engine.commands.residency import import_residency


def run(
    source: Any, inputs: list[Path], out: Path, **options: Any
) -> tuple[int, str, dict[tuple[str, str], dict]]:
    err = io.StringIO()
    code = import_residency(source, inputs, out, stderr=err, environ={}, **options)
    records: dict[tuple[str, str], dict] = {}
    if code == 0:
        text = out.read_text()
        lines = text.splitlines() if out.suffix == ".jsonl" else []
        for line in lines:
            record = json.loads(line)
            records[
                (record["deployment_id"] or record["unattributed_reason"], record["window_start"][:10])
            ] = record
    return code, err.getvalue(), records


# ---------------------------------------------------------------------------- OpenCost


def test_opencost_allocation(tmp_path: Path, data_dir: Path, acme_root: Path) -> None:
    code, err, records = run(
        "opencost",
        [data_dir / "opencost" / "allocation.json", data_dir / "opencost" / "allocation-by-pod.json"],
        tmp_path / "residency" / "2025-06.jsonl",
        portfolio_root=acme_root,
    )
    assert code == 0, err
    canary = records[("sic-v8-use1-canary", "2025-06-28")]
    assert canary["gpu_hours"] == 24.0
    assert canary["coverage"] == 1.0
    assert canary["cost"] == {
        "total": 19.2,
        "gpu": 17.04,
        "other": pytest.approx(2.16),
        "currency": "USD",
        "basis": "list",
    }
    assert canary["gpu_util_avg"] == 0.06
    assert canary["warm_replica_hours"] == 24.0  # from the label,pod breakdown
    assert canary["labels"] == {
        "portfolio_acme_io_deployment": "sic-v8-use1-canary",
        "team": "app-support",
        "cost_center": "CC-6100",
        "cluster": "prod-use1",
    }
    assert canary["provenance"]["source"] == "opencost"
    reranker = records[("rr-v3-use1", "2025-06-29")]
    assert reranker["cost"]["gpu"] == pytest.approx(118.78 - 1.2)  # gpuCost + gpuCostAdjustment
    assert reranker["warm_replica_hours"] == pytest.approx(4 * 24 + 1296 / 60)
    assert reranker["gpu_type"] == "nvidia-a10g"
    # gpuEfficiency 0 without DCGM data behind it is unknown, not idle; null (NaN) stays null
    assert records[("fraud-v11-usc1", "2025-06-28")]["gpu_util_avg"] is None
    assert records[("enc-v2-use1", "2025-06-28")]["gpu_util_avg"] is None
    assert records[("enc-v2-use1", "2025-06-28")]["coverage"] == 0.5
    idle = records[("opencost:__idle__", "2025-06-29")]
    assert idle["deployment_id"] is None
    assert idle["cost"]["total"] == 114.2
    assert records[("opencost:__unallocated__", "2025-06-28")]["gpu_hours"] == 3.0
    # a key that names no declared deployment is kept and reported, not dropped
    assert ("legacy-batch-scorer", "2025-06-28") in records
    assert "not in the portfolio" in err
    assert "legacy-batch-scorer" in err


def test_opencost_bad_values_are_located(tmp_path: Path, data_dir: Path) -> None:
    document = json.loads((data_dir / "opencost" / "allocation.json").read_text())
    document["data"][1]["rr-v3-use1"]["gpuHours"] = -3
    del document["data"][0]["fraud-v11-usc1"]["window"]
    del document["data"][0]["fraud-v11-usc1"]["start"]
    bad = tmp_path / "allocation.json"
    bad.write_text(json.dumps(document, indent=1))
    code, err, _ = run(
        "opencost", [bad], tmp_path / "out.jsonl", label="portfolio.acme.io/deployment", currency="USD"
    )
    assert code == 2
    lines = bad.read_text().splitlines()
    gpu_line = next(i for i, line in enumerate(lines, 1) if '"gpuHours": -3' in line)
    assert f"allocation.json:{gpu_line}:" in err
    assert "negative value -3 [$.data[1]['rr-v3-use1'].gpuHours] (expected a number ≥ 0)" in err
    assert "allocation has no window [$.data[0]['fraud-v11-usc1']]" in err
    assert not (tmp_path / "out.jsonl").exists()


def test_opencost_error_response(tmp_path: Path) -> None:
    bad = tmp_path / "allocation.json"
    bad.write_text('{"code": 400, "message": "error parsing window"}')
    code, err, _ = run("opencost", [bad], tmp_path / "out.jsonl", label="app", currency="USD")
    assert code == 2
    assert "allocation.json:1:2: OpenCost answered 400: error parsing window [$.code]" in err


# ---------------------------------------------------------------------------- Prometheus (files)


def test_prometheus_matrix_files(tmp_path: Path, data_dir: Path, acme_root: Path) -> None:
    code, err, records = run(
        "prometheus", [data_dir / "prometheus"], tmp_path / "out.jsonl", portfolio_root=acme_root
    )
    assert code == 0, err
    sic = records[("sic-v7-use1", "2025-06-28")]
    assert sic["gpu_hours"] == 36.0  # 24 h of pod a + 12 h of pod b, at the inferred 1 h step
    assert sic["warm_replica_hours"] == 36.0
    assert (sic["replicas_min_observed"], sic["replicas_max_observed"]) == (1, 2)
    assert sic["gpu_util_avg"] == 0.4  # percent → ratio
    assert "gpu_util: 1 NaN/Inf sample(s) treated as missing data" in err
    # warnings and infos of the envelope are printed and kept
    assert "partial data: remote read from prometheus-shard-2 timed out" in err
    assert "partial data" in sic["provenance"]["warnings"]
    assert "ignored metric name in label_replace" in sic["provenance"]["warnings"]
    # no deployment label: the canary's selector (namespace + pod regex) attributes the series
    assert records[("sic-v8-use1-canary", "2025-06-29")]["gpu_util_avg"] == 0.06
    # vLLM counters carry model_name only: the selector finds asst-v2-use1
    assert records[("asst-v2-use1", "2025-06-28")]["requests"] == 253800
    assert records[("asst-v2-use1", "2025-06-29")]["requests"] == 252945
    assert records[("asst-v2-use1", "2025-06-28")]["gpu_hours"] is None  # no GPU data: null, not 0
    assert records[("rr-v3-use1", "2025-06-29")]["requests"] == 30455012
    # two deployments declare the same selector: ambiguous, so unattributed and said so
    assert records[("prometheus:ambiguous", "2025-06-28")]["requests"] == 5100000
    assert "enc-v2-use1, enc-v2-euw1" in err
    assert records[("prometheus:unlabelled", "2025-06-28")]["gpu_hours"] == 48.0


def test_prometheus_without_the_label_allow_listed(tmp_path: Path) -> None:
    series = [
        {"metric": {"namespace": "genai", "pod": "p-0"}, "values": [[1751068800, "1"], [1751072400, "1"]]}
    ]
    (tmp_path / "gpu_requests.json").write_text(
        json.dumps({"status": "success", "data": {"resultType": "matrix", "result": series}})
    )
    code, err, _ = run(
        "prometheus", [tmp_path / "gpu_requests.json"], tmp_path / "out.jsonl", label="team.io/deployment"
    )
    assert code == 2
    assert "no series of gpu_requests carries label_team_io_deployment" in err
    assert "--metric-labels-allowlist=pods=[team.io/deployment]" in err


def test_prometheus_error_envelope_and_bad_samples(tmp_path: Path) -> None:
    (tmp_path / "requests.json").write_text(
        '{"status": "error", "errorType": "bad_data", "error": "1:13: parse error: unexpected \\"]\\""}'
    )
    (tmp_path / "gpu_requests.json").write_text(
        '{"status": "success",\n "data": {"resultType": "matrix", "result": [\n'
        '  {"metric": {"label_app": "x"}, "values": [[1751068800, "-1"], [1751072400, "abc"]]}]}}'
    )
    (tmp_path / "mystery.json").write_text("{}")
    code, err, _ = run("prometheus", [tmp_path], tmp_path / "out.jsonl", label="app")
    assert code == 2
    assert "requests.json:1:2: Prometheus answered bad_data: 1:13: parse error" in err
    assert "gpu_requests.json:3:" in err
    assert "negative value -1.0 [$.data.result[0].values[0][1]]" in err
    assert "'abc' is not a number [$.data.result[0].values[1][1]]" in err
    assert "cannot tell which query 'mystery.json' answers" in err


# ---------------------------------------------------------------------------- FOCUS


def test_focus_export(tmp_path: Path, data_dir: Path, acme_root: Path) -> None:
    code, err, records = run(
        "focus", [data_dir / "focus" / "export.csv"], tmp_path / "out.jsonl", portfolio_root=acme_root
    )
    assert code == 0, err
    canary = records[("sic-v8-use1-canary", "2025-06-29")]
    # commitment-covered usage: BilledCost 0, EffectiveCost 17.04 → residency costs 17.04
    assert canary["cost"] == {
        "total": 17.04,
        "gpu": 17.04,
        "other": 0.0,
        "currency": "USD",
        "basis": "effective",
    }
    assert canary["gpu_hours"] == 24.0
    assert canary["gpu_type"] == "nvidia-l4"
    assert canary["labels"] == {
        "portfolio.acme.io/deployment": "sic-v8-use1-canary",
        "team": "app-support",
        "cost_center": "CC-6100",
    }
    sic = records[("sic-v7-use1", "2025-06-29")]  # provider-prefixed tag ("user:") and x_UsageType
    assert sic["cost"]["total"] == pytest.approx(17.04 + 8.52 + 2.10)
    assert sic["cost"]["other"] == pytest.approx(2.10)
    assert sic["gpu_hours"] == 36.0
    assert sic["coverage"] == 1.0
    untagged = records[("focus:untagged", "2025-06-29")]
    assert untagged["cost"]["total"] == pytest.approx(4.12 + 6.24)
    assert untagged["tokens_in"] == 1830000
    assert untagged["gpu_hours"] == 6.0  # ml.g5.xlarge → 1 A10G for 6 hours
    assert "1 FOCUS row(s) skipped: ChargeCategory Tax" in err
    assert "Purchase rows with zero cost" in err
    assert "untagged rows outside" in err  # the S3 row
    assert len(records) == 3


def test_focus_billed_cost_and_resource_ids(tmp_path: Path, data_dir: Path) -> None:
    root = tmp_path / "portfolio"
    (root / "models").mkdir(parents=True)
    (root / "portfolio.yaml").write_text(
        "schema_version: 1\nkind: InferencePortfolio\nportfolio: {id: p, name: P, currency: USD}\n"
        "rates: {gpu_hour: {nvidia-a10g: 1.01}}\n"
    )
    (root / "models" / "fraud.yaml").write_text(
        "id: fraud-scorer\nowner_team: ml-risk\nversions:\n"
        '  - version: "12"\n    stage: production\n    deployments:\n'
        "      - id: fraud-v12-sm\n        endpoint: fraud\n        region: us-east-1\n"
        "        replicas: {min: 1, max: 2}\n        accelerator: {type: nvidia-a10g, count: 1}\n"
        "        selectors:\n          focus_resource_ids:\n"
        "            - arn:aws:sagemaker:us-east-1:111122223333:endpoint/fraud-v12\n"
    )
    code, err, records = run(
        "focus",
        [data_dir / "focus" / "export.csv"],
        tmp_path / "out.jsonl",
        portfolio_root=root,
        cost_column="BilledCost",
        label="portfolio.acme.io/deployment",
    )
    assert code == 0, err
    assert records[("fraud-v12-sm", "2025-06-29")]["cost"]["total"] == 6.24
    assert records[("sic-v8-use1-canary", "2025-06-29")]["cost"]["basis"] == "billed"
    assert records[("sic-v8-use1-canary", "2025-06-29")]["cost"]["total"] == 0.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            (
                "2025-06-29T00:00:00Z,2025-06-30T00:00:00Z,USD,0.00",
                "2025-06-29T00:00:00,2025-06-30T00:00:00Z,USD,0.00",
            ),
            "export.csv:2:1: timestamp '2025-06-29T00:00:00' has no time zone; add Z for UTC "
            "[$.ChargePeriodStart]",
        ),
        (("USD,19.20,17.04", "EUR,19.20,17.04"), "export.csv:3:3: mixed currencies: EUR here, USD at "),
        (
            ("USD,9.60,8.52,9.60", "USD,9.60,-8.52,9.60"),
            "export.csv:4:5: negative EffectiveCost -8.52 on a Usage row [$.EffectiveCost]",
        ),
        (
            ("USD,2.10,2.10,2.10", "USD,2.10,NaN,2.10"),
            "export.csv:5:5: EffectiveCost is 'NaN': NaN and Inf are not allowed",
        ),
        (('"{""team"":""app-support""}"', '"{team: app-support}"'), "export.csv:6:21: Tags is not JSON"),
    ],
)
def test_focus_bad_rows(tmp_path: Path, data_dir: Path, change: tuple[str, str], message: str) -> None:
    text = (data_dir / "focus" / "export.csv").read_text()
    assert change[0] in text
    bad = tmp_path / "export.csv"
    bad.write_text(text.replace(change[0], change[1], 1))
    code, err, _ = run("focus", [bad], tmp_path / "out.jsonl", label="portfolio.acme.io/deployment")
    assert code == 2
    assert message in err.replace(bad.as_posix(), "export.csv")


def test_focus_missing_columns(tmp_path: Path) -> None:
    bad = tmp_path / "export.csv"
    bad.write_text("ChargePeriodStart,ChargePeriodEnd,BillingCurrency,BilledCost\n")
    code, err, _ = run("focus", [bad], tmp_path / "out.jsonl", label="x")
    assert code == 2
    assert "export.csv:1:1: missing column 'ChargeCategory' [$.ChargeCategory]" in err
    assert "missing column 'EffectiveCost'" in err


def test_prometheus_queries_are_configurable(tmp_path: Path) -> None:
    from policy_engine.residency.prometheus import DEFAULT_QUERIES, load_queries

    config = tmp_path / "queries.yaml"
    config.write_text(
        "queries:\n"
        "  gpu_util:\n"
        "    expr: avg by (namespace, pod, ${label}) (DCGM_FI_PROF_GR_ENGINE_ACTIVE)\n"
        "    scale: 1\n"
        "  requests_failed: null\n"
    )
    queries, errors = load_queries(config)
    assert errors == []
    assert "requests_failed" not in queries
    assert queries["gpu_util"].scale == 1.0
    assert queries["gpu_util"].render("label_app", 86400) == (
        "avg by (namespace, pod, label_app) (DCGM_FI_PROF_GR_ENGINE_ACTIVE)"
    )
    assert queries["gpu_requests"] == DEFAULT_QUERIES["gpu_requests"]
    # the default counters integrate nothing: they are increases over the window
    assert "increase(vllm:request_success_total[86400s])" in queries["requests"].render("label_app", 86400)
    assert "increase(" not in queries["gpu_requests"].expr
    config.write_text("queries:\n  gpu_utilisation: {expr: x}\n  gpu_util: {expr: y, scale: -1}\n")
    _, errors = load_queries(config)
    assert [e.render() for e in errors] == [
        f"{config.as_posix()}:2:3: unknown query 'gpu_utilisation' [$.queries.gpu_utilisation] "
        "(expected one of gpu_requests, ready_replicas, gpu_util, requests, requests_failed, "
        "tokens_in, tokens_out)",
        f"{config.as_posix()}:3:23: scale -1 is not a positive number [$.queries.gpu_util.scale] "
        "(expected e.g. 0.01)",
    ]


def test_focus_instance_types_are_extensible(tmp_path: Path) -> None:
    from policy_engine.residency.focus import load_instance_types

    table_file = tmp_path / "types.yaml"
    table_file.write_text("x9.huge: {gpu_type: nvidia-b200, gpus: 8}\nbad.one: {gpu_type: nvidia-l4}\n")
    table, errors = load_instance_types(table_file)
    assert table["x9.huge"] == ("nvidia-b200", 8)
    assert table["g6.xlarge"] == ("nvidia-l4", 1)
    assert [e.render().split(" [")[0] for e in errors] == [
        f"{table_file.as_posix()}:2:1: 'bad.one' needs gpu_type and gpus ≥ 1"
    ]
