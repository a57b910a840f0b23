"""The Prometheus adapter against a real server, checked against values worked out by hand.

The server is backfilled with the samples of ``promdata``; the expected values below are
computed from that same table with plain arithmetic (integrals of the gauges over the 5-minute
grid, counter differences with Prometheus' reset rule), not with the adapter's code.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from policy_engine.commands.residency import import_residency
from tests.residency import promdata
from tests.residency.promdata import PODS, STEP, T0, Pod

DAY = 86400


def grid(day: int) -> range:
    """Evaluation instants of day ``day``: start, start + step, …, end − step."""
    start = T0 + day * DAY
    return range(start, start + DAY, STEP)


def pods_of(deployment: str) -> list[Pod]:
    return [p for p in PODS if p.deployment == deployment]


def gpu_hours(pods: list[Pod], day: int) -> float:
    return sum(p.gpus for t in grid(day) for p in pods if p.is_running(t)) * STEP / 3600


def ready_counts(pods: list[Pod], day: int) -> list[int]:
    return [sum(1 for p in pods if p.is_running(t)) for t in grid(day)]


def util(pods: list[Pod], day: int) -> tuple[float, float]:
    """Mean over steps of the mean over pods of each pod's mean GPU utilisation, and its p95."""
    per_step = []
    for t in grid(day):
        per_pod = [sum(promdata.util_percent(p, g, t) for g in range(p.gpus)) / p.gpus for p in pods]
        per_step.append(sum(per_pod) / len(per_pod) / 100)
    ordered = sorted(per_step)
    p95 = ordered[-(-95 * len(ordered) // 100) - 1]
    return sum(per_step) / len(per_step), p95


def increase(metric: str, pods: list[Pod], day: int) -> float:
    """Sum over pods of the counter's increase over [day start, day end], resets handled."""
    counters = promdata.counters()
    total = 0.0
    start, end = T0 + day * DAY, T0 + (day + 1) * DAY
    for pod in pods:
        values = counters[(metric, pod.namespace, pod.name)].values
        times = [t for t in sorted(values) if start <= t <= end]
        for a, b in itertools.pairwise(times):
            total += values[b] - values[a] if values[b] >= values[a] else values[b]
    return total


@pytest.fixture(scope="module")
def imported(prometheus_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict]:
    out = tmp_path_factory.mktemp("import") / "residency" / "2025-06.jsonl"
    code = import_residency(
        "prometheus",
        [],
        out,
        portfolio_root=Path(__file__).resolve().parents[2] / "examples" / "acme-portfolio",
        url=prometheus_server,
        window_start="2025-06-01T00:00:00Z",
        window_end="2025-06-03T00:00:00Z",
        label=promdata.LABEL,
        environ={},
    )
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return {(r["deployment_id"] or r["unattributed_reason"], r["window_start"][:10]): r for r in records}


DEPLOYMENTS = {
    "sic-v7-use1": pods_of("sic-v7-use1"),
    "rr-v3-use1": pods_of("rr-v3-use1"),
    "asst-v2-use1": pods_of("asst-v2-use1"),
    # no deployment label: found through the canary's prometheus selector (pod regex)
    "sic-v8-use1-canary": [p for p in PODS if p.name.startswith("support-intent-classifier-predictor-00008")],
    "prometheus:unlabelled": [p for p in PODS if p.namespace == "misc"],
}


@pytest.mark.parametrize("day", [0, 1])
@pytest.mark.parametrize("key", sorted(DEPLOYMENTS))
def test_gauges_are_integrated_over_time(imported: dict, key: str, day: int) -> None:
    pods = DEPLOYMENTS[key]
    record = imported[(key, f"2025-06-0{day + 1}")]
    assert record["gpu_hours"] == pytest.approx(gpu_hours(pods, day), abs=1e-6)
    counts = ready_counts(pods, day)
    assert record["warm_replica_hours"] == pytest.approx(sum(counts) * STEP / 3600, abs=1e-6)
    assert record["replicas_min_observed"] == min(counts)
    assert record["replicas_max_observed"] == max(counts)
    average, p95 = util(pods, day)
    assert record["gpu_util_avg"] == pytest.approx(average, abs=1e-6)
    assert record["gpu_util_p95"] == pytest.approx(p95, abs=1e-6)
    assert record["coverage"] == 1.0
    assert record["provenance"]["source"] == "prometheus"


def test_a_pending_pod_holds_no_resident_gpu(imported: dict) -> None:
    # reranker-2 is Pending for the first 4 hours of day 2: 3 GPUs × 24 h − 4 GPU-hours
    assert imported[("rr-v3-use1", "2025-06-02")]["gpu_hours"] == pytest.approx(68.0)
    assert imported[("rr-v3-use1", "2025-06-01")]["gpu_hours"] == pytest.approx(72.0)


@pytest.mark.parametrize("day", [0, 1])
def test_counters_are_increases_per_window(imported: dict, day: int) -> None:
    date = f"2025-06-0{day + 1}"
    asst = imported[("asst-v2-use1", date)]
    pods = DEPLOYMENTS["asst-v2-use1"]
    assert asst["requests"] == round(increase("vllm:request_success_total", pods, day))
    assert asst["tokens_in"] == round(increase("vllm:prompt_tokens_total", pods, day))
    assert asst["tokens_out"] == round(increase("vllm:generation_tokens_total", pods, day))
    reranker = imported[("rr-v3-use1", date)]
    pods = DEPLOYMENTS["rr-v3-use1"]
    assert reranker["requests"] == round(increase("nv_inference_request_success", pods, day))
    assert reranker["requests_failed"] == round(increase("nv_inference_request_failure", pods, day))
    assert reranker["tokens_in"] is None  # Triton reports no tokens: null, not 0


def test_the_counter_reset_is_not_a_loss(imported: dict) -> None:
    # the vLLM counter restarts at 12:00 on day 2; the increase still covers the whole day
    day1 = imported[("asst-v2-use1", "2025-06-01")]["requests"]
    day2 = imported[("asst-v2-use1", "2025-06-02")]["requests"]
    assert day2 == pytest.approx(day1, rel=0.01)


def test_unlabelled_gpus_are_kept_as_unattributed(imported: dict) -> None:
    record = imported[("prometheus:unlabelled", "2025-06-01")]
    assert record["deployment_id"] is None
    assert record["gpu_hours"] == pytest.approx(24.0)
