"""A few days of kube-state-metrics, DCGM, vLLM and Triton samples for a real Prometheus.

The same ``Sample`` table is written as OpenMetrics (to backfill the server) and read back by
the tests to compute the expected values by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

START = datetime(2025, 6, 1, tzinfo=UTC)
DAYS = 2
STEP = 300  # seconds between samples; also the adapter's query step
LABEL = "portfolio.acme.io/deployment"
KSM_LABEL = "label_portfolio_acme_io_deployment"
T0 = int(START.timestamp())
T_END = T0 + DAYS * 86400  # samples run up to and including this instant


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    deployment: str | None  # value of the deployment label; None = unlabelled
    gpus: int
    running: tuple[tuple[int, int], ...] = ((T0, T_END + 1),)  # [from, to) seconds; Pending outside
    model_name: str | None = None  # vLLM --served-model-name
    triton: tuple[str, str] | None = None  # Triton (model, version)

    def is_running(self, t: int) -> bool:
        return any(a <= t < b for a, b in self.running)


PODS = [
    Pod("support-ml", "support-intent-classifier-predictor-00007-a", "sic-v7-use1", 1),
    Pod(
        "support-ml",
        "support-intent-classifier-predictor-00007-b",
        "sic-v7-use1",
        1,
        running=((T0 + 6 * 3600, T0 + 18 * 3600), (T0 + 86400 + 8 * 3600, T0 + 86400 + 20 * 3600)),
    ),
    # the canary's pod lacks the deployment label: its prometheus selector (pod regex) finds it
    Pod("support-ml", "support-intent-classifier-predictor-00008-a", None, 1),
    Pod("search-ml", "reranker-0", "rr-v3-use1", 1, triton=("search_reranker", "3")),
    Pod("search-ml", "reranker-1", "rr-v3-use1", 1, triton=("search_reranker", "3")),
    Pod(
        "search-ml",
        "reranker-2",
        "rr-v3-use1",
        1,
        running=((T0, T0 + 86400), (T0 + 86400 + 4 * 3600, T_END + 1)),
        triton=("search_reranker", "3"),
    ),
    Pod("genai", "assistant-llm-v2-0", "asst-v2-use1", 4, model_name="assistant-llm-v2"),
    Pod("misc", "notebook-7f9", None, 1),  # a GPU nobody can attribute
]


def times() -> Iterator[int]:
    yield from range(T0, T_END + 1, STEP)


def util_percent(pod: Pod, gpu: int, t: int) -> float:
    """DCGM_FI_DEV_GPU_UTIL (0-100) of one GPU; 0 while the pod is not running."""
    if not pod.is_running(t):
        return 0.0
    hour = ((t - T0) // 3600) % 24
    base = {"sic-v7-use1": 40.0, "rr-v3-use1": 70.0, "asst-v2-use1": 55.0}.get(pod.deployment or "", 6.0)
    return round(base * (1.0 + 0.3 * math.sin(hour / 24 * 2 * math.pi)) + gpu, 2)


@dataclass
class Counter:
    """A monotone counter with one reset; value at each sample time."""

    rate: float  # per second
    reset_at: int | None = None
    values: dict[int, float] = field(default_factory=dict)

    def fill(self) -> Counter:
        value = 1000.0
        for t in times():
            if self.reset_at is not None and t == self.reset_at:
                value = 7.0
            self.values[t] = value
            hour = ((t - T0) // 3600) % 24
            value += round(self.rate * STEP * (0.5 + hour / 24))
        return self


def counters() -> dict[tuple[str, str, str], Counter]:
    """(metric, namespace, pod) -> counter."""
    out: dict[tuple[str, str, str], Counter] = {}
    for pod in PODS:
        if pod.model_name:
            out[("vllm:request_success_total", pod.namespace, pod.name)] = Counter(
                3.0, reset_at=T0 + 86400 + 12 * 3600
            ).fill()
            out[("vllm:prompt_tokens_total", pod.namespace, pod.name)] = Counter(3.0 * 2400).fill()
            out[("vllm:generation_tokens_total", pod.namespace, pod.name)] = Counter(3.0 * 310).fill()
        if pod.triton:
            out[("nv_inference_request_success", pod.namespace, pod.name)] = Counter(120.0).fill()
            out[("nv_inference_request_failure", pod.namespace, pod.name)] = Counter(0.01).fill()
    return out


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def openmetrics() -> str:
    """All samples as one OpenMetrics text (families contiguous, series in time order)."""
    lines: list[str] = []

    def family(name: str, kind: str, series: list[tuple[str, dict[str, str], dict[int, float]]]) -> None:
        lines.append(f"# TYPE {name} {kind}")
        for sample_name, labels, values in series:
            for t, v in values.items():
                lines.append(f"{sample_name}{_labels(**labels)} {float(v)!r} {t}")

    grid = list(times())
    family(
        "kube_pod_container_resource_requests",
        "gauge",
        [
            (
                "kube_pod_container_resource_requests",
                {
                    "namespace": p.namespace,
                    "pod": p.name,
                    "container": "server",
                    "node": "gpu-node-1",
                    "resource": "nvidia_com_gpu",
                    "unit": "integer",
                },
                {t: float(p.gpus) for t in grid},
            )
            for p in PODS
        ],
    )
    family(
        "kube_pod_status_phase",
        "gauge",
        [
            (
                "kube_pod_status_phase",
                {"namespace": p.namespace, "pod": p.name, "phase": phase},
                {t: float(p.is_running(t) == (phase == "Running")) for t in grid},
            )
            for p in PODS
            for phase in ("Running", "Pending")
        ],
    )
    family(
        "kube_pod_status_ready",
        "gauge",
        [
            (
                "kube_pod_status_ready",
                {"namespace": p.namespace, "pod": p.name, "condition": cond},
                {t: float(p.is_running(t) == (cond == "true")) for t in grid},
            )
            for p in PODS
            for cond in ("true", "false")
        ],
    )
    family(
        "kube_pod_labels",
        "gauge",
        [
            (
                "kube_pod_labels",
                {
                    "namespace": p.namespace,
                    "pod": p.name,
                    **({KSM_LABEL: p.deployment} if p.deployment else {}),
                },
                dict.fromkeys(grid, 1.0),
            )
            for p in PODS
        ],
    )
    dcgm = []
    for index, p in enumerate(PODS):
        for gpu in range(p.gpus):
            labels = {
                "gpu": str(gpu),
                "UUID": f"GPU-{index:02d}{gpu:02d}",
                "modelName": "NVIDIA L4",
                "Hostname": "gpu-node-1",
                "namespace": "gpu-operator",
                "pod": "dcgm-exporter-x1",
                "exported_namespace": p.namespace,
                "exported_pod": p.name,
            }
            dcgm.append(("DCGM_FI_DEV_GPU_UTIL", labels, {t: util_percent(p, gpu, t) for t in grid}))
    family("DCGM_FI_DEV_GPU_UTIL", "gauge", dcgm)
    table = counters()
    for metric in (
        "vllm:request_success_total",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "nv_inference_request_success",
        "nv_inference_request_failure",
    ):
        series = []
        for (name, namespace, pod_name), counter in table.items():
            if name != metric:
                continue
            pod = next(p for p in PODS if p.name == pod_name)
            labels = {"namespace": namespace, "pod": pod_name}
            if pod.model_name:
                labels.update(model_name=pod.model_name, finished_reason="stop")
            if pod.triton:
                labels.update(model=pod.triton[0], version=pod.triton[1])
            series.append((metric, labels, counter.values))
        base = metric.removesuffix("_total")
        family(base, "counter", series)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
