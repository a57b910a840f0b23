"""Prometheus HTTP API (``/api/v1/query_range``, ``/api/v1/query``) → native records.

Two kinds of query, each configurable (``--queries FILE``; defaults in ``DEFAULT_QUERIES``):

- *gauges* (``gpu_requests``, ``ready_replicas``, ``gpu_util``) are read with ``query_range``
  at a fixed step and integrated here: GPU-hours = Σ value × step. A gauge is never fed to
  ``increase()``.
- *counters* (``requests``, ``requests_failed``, ``tokens_in``, ``tokens_out``) are
  ``increase(…[${window}])`` evaluated at each window's end (a range query with a one-day step);
  the point at time ``t`` is the window ``[t - 1d, t)``.

Templates: ``${label}`` is the kube-state-metrics name of the deployment label
(``label_`` + sanitised key, e.g. ``label_portfolio_acme_io_deployment``), ``${window}`` the
window length (``86400s``). A series is attributed through that label, else through the
deployments' ``selectors.prometheus`` matchers (anchored regexes, as PromQL ``=~``); what neither
attributes becomes an unattributed record (``prometheus:unlabelled`` / ``prometheus:ambiguous``).

Sample values arrive as strings (``"1"``, ``"NaN"``); NaN/Inf points are missing data, reported
and never counted as zero. Response ``warnings`` and ``infos`` are printed and kept in
``provenance``.
"""

from __future__ import annotations

import bisect
import itertools
import math
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from policy_engine.errors import InputError
from policy_engine.residency.http import Client
from policy_engine.residency.inputs import DAY, JsonInput, Result, day_windows, midnight, number
from policy_engine.residency.join import DeploymentIndex, ksm_label
from policy_engine.residency.records import ResidencyRecord
from policy_engine.yamlsource import YamlError, decode, parse

Kind = Literal["gauge", "counter"]
MAX_POINTS = 10_000  # Prometheus refuses ranges of more than 11,000 points per series
DAY_SECONDS = 86400

_ATTACH = """\
  * on (namespace, pod) group_left (${label})
    max by (namespace, pod, ${label}) (kube_pod_labels)"""
_GPU_PODS = """\
max by (namespace, pod) (
      kube_pod_container_resource_requests{resource="nvidia_com_gpu"}
    )"""


@dataclass(frozen=True, slots=True)
class QuerySpec:
    name: str
    kind: Kind
    expr: str
    scale: float = 1.0
    fields: str = ""

    def render(self, label_name: str, window_seconds: int) -> str:
        template = string.Template(self.expr)
        return template.safe_substitute(label=label_name, window=f"{window_seconds}s")


def _serving(metric: str) -> str:
    return f"""\
sum by (namespace, pod, model_name, model, version, ${{label}}) (
  ({metric})
{_ATTACH}
)"""


GPU_REQUESTS = f"""\
sum by (namespace, pod, ${{label}}) (
  (
    sum by (namespace, pod) (
      max by (namespace, pod, container) (
        kube_pod_container_resource_requests{{resource="nvidia_com_gpu"}}
      )
    )
    * on (namespace, pod)
      (max by (namespace, pod) (kube_pod_status_phase{{phase="Running"}}) == 1)
  )
{_ATTACH}
)"""
READY_REPLICAS = f"""\
sum by (namespace, pod, ${{label}}) (
  (
    (max by (namespace, pod) (kube_pod_status_ready{{condition="true"}}) == 1)
    and on (namespace, pod)
    ({_GPU_PODS} > 0)
  )
{_ATTACH}
)"""
GPU_UTIL = f"""\
avg by (namespace, pod, ${{label}}) (
  label_replace(
    label_replace(DCGM_FI_DEV_GPU_UTIL, "namespace", "$1", "exported_namespace", "(.+)"),
    "pod", "$1", "exported_pod", "(.+)"
  )
{_ATTACH}
)"""

DEFAULT_QUERIES: dict[str, QuerySpec] = {
    "gpu_requests": QuerySpec("gpu_requests", "gauge", GPU_REQUESTS, fields="gpu_hours, gpu_count_avg"),
    "ready_replicas": QuerySpec(
        "ready_replicas",
        "gauge",
        READY_REPLICAS,
        fields="warm_replica_hours, replicas_min_observed, replicas_max_observed",
    ),
    "gpu_util": QuerySpec("gpu_util", "gauge", GPU_UTIL, scale=0.01, fields="gpu_util_avg, gpu_util_p95"),
    "requests": QuerySpec(
        "requests",
        "counter",
        _serving(
            "increase(vllm:request_success_total[${window}])\n"
            "   or increase(nv_inference_request_success[${window}])"
        ),
        fields="requests",
    ),
    "requests_failed": QuerySpec(
        "requests_failed",
        "counter",
        _serving("increase(nv_inference_request_failure[${window}])"),
        fields="requests_failed",
    ),
    "tokens_in": QuerySpec(
        "tokens_in", "counter", _serving("increase(vllm:prompt_tokens_total[${window}])"), fields="tokens_in"
    ),
    "tokens_out": QuerySpec(
        "tokens_out",
        "counter",
        _serving("increase(vllm:generation_tokens_total[${window}])"),
        fields="tokens_out",
    ),
}
GAUGE_FIELDS = ("gpu_requests", "ready_replicas")


def load_queries(path: Path | None) -> tuple[dict[str, QuerySpec], list[InputError]]:
    """The default queries, overridden by a YAML/JSON file ``{queries: {name: {expr, scale} | null}}``."""
    queries = dict(DEFAULT_QUERIES)
    if path is None:
        return queries, []
    shown = path.as_posix()
    try:
        data, source = parse(decode(path.read_bytes(), shown), shown)
    except YamlError as exc:
        return queries, [exc.error]
    except OSError as exc:
        return queries, [InputError(shown, 1, 1, f"cannot read: {exc.strerror}", "", "a readable file")]
    errors: list[InputError] = []
    table = data.get("queries") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        return queries, [source.error((), "no 'queries' mapping", "queries: {<name>: {expr: <PromQL>}}")]
    for name, spec in table.items():
        where: tuple[str | int, ...] = ("queries", name)
        if name not in DEFAULT_QUERIES:
            errors.append(
                source.error(where, f"unknown query {name!r}", "one of " + ", ".join(DEFAULT_QUERIES))
            )
            continue
        if spec is None:
            del queries[name]
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("expr"), str) or not spec["expr"].strip():
            errors.append(source.error(where, f"query {name!r} needs an 'expr' string", "expr: <PromQL>"))
            continue
        unknown = sorted(set(spec) - {"expr", "scale"})
        if unknown:
            errors.append(source.error((*where, unknown[0]), f"unknown key {unknown[0]!r}", "expr, scale"))
            continue
        scale = spec.get("scale", DEFAULT_QUERIES[name].scale)
        if (
            isinstance(scale, bool)
            or not isinstance(scale, int | float)
            or not math.isfinite(scale)
            or scale <= 0
        ):
            errors.append(
                source.error((*where, "scale"), f"scale {scale!r} is not a positive number", "e.g. 0.01")
            )
            continue
        default = DEFAULT_QUERIES[name]
        queries[name] = QuerySpec(name, default.kind, spec["expr"], float(scale), default.fields)
    return queries, errors


# ---------------------------------------------------------------------------- responses


@dataclass
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]


@dataclass
class QueryData:
    """One query's answer: its series, the step it was read at, and what the server warned."""

    name: str
    where: JsonInput
    series: list[Series] = field(default_factory=list)
    step: float | None = None
    warnings: list[str] = field(default_factory=list)


def parse_response(name: str, document: JsonInput, errors: list[InputError]) -> QueryData | None:
    """A Prometheus API envelope: ``{status, data: {resultType, result}, warnings?, infos?}``."""
    data = document.data
    if not isinstance(data, dict) or "status" not in data:
        errors.append(document.error((), "not a Prometheus API response", '{"status": "success", "data": …}'))
        return None
    if data.get("status") != "success":
        kind = data.get("errorType", "error")
        errors.append(
            document.error(("status",), f"Prometheus answered {kind}: {data.get('error', '')}", "success")
        )
        return None
    body = data.get("data")
    if not isinstance(body, dict):
        errors.append(document.error(("data",), "no 'data' object", "data: {resultType, result}"))
        return None
    result_type = body.get("resultType")
    result = body.get("result")
    if result_type not in ("matrix", "vector") or not isinstance(result, list):
        errors.append(
            document.error(
                ("data", "resultType"), f"result type {result_type!r} cannot be used", "matrix or vector"
            )
        )
        return None
    out = QueryData(name, document)
    for key in ("warnings", "infos"):
        notes = data.get(key)
        if isinstance(notes, list):
            out.warnings.extend(f"{name}: {note}" for note in notes if isinstance(note, str))
    skipped = 0
    for i, item in enumerate(result):
        path: tuple[str | int, ...] = ("data", "result", i)
        if not isinstance(item, dict) or not isinstance(item.get("metric"), dict):
            errors.append(document.error(path, "a result has no 'metric' object", "{metric, values}"))
            continue
        labels = {str(k): str(v) for k, v in item["metric"].items()}
        if result_type == "matrix":
            raw = item.get("values")
            pairs = raw if isinstance(raw, list) else None
            base: tuple[str | int, ...] = (*path, "values")
        else:
            raw = item.get("value")
            pairs = [raw] if isinstance(raw, list) else None
            base = (*path, "value")
        if pairs is None:
            errors.append(document.error(path, "a result has no samples", 'values: [[<time>, "<value>"], …]'))
            continue
        points: list[tuple[float, float]] = []
        for j, pair in enumerate(pairs):
            where = (*base, j) if result_type == "matrix" else base
            if not isinstance(pair, list) or len(pair) != 2:
                errors.append(
                    document.error(where, 'a sample is not [<time>, "<value>"]', '[1751155200, "1"]')
                )
                continue
            when = number(pair[0], document, where, errors)
            if when is None:
                continue
            if isinstance(pair[1], str) and pair[1].strip().lower() in ("nan", "+inf", "-inf", "inf"):
                skipped += 1
                continue
            value = number(pair[1], document, (*where, 1) if result_type == "matrix" else base, errors)
            if value is not None:
                points.append((when, value))
        out.series.append(Series(labels, points))
    if skipped:
        out.warnings.append(f"{name}: {skipped} NaN/Inf sample(s) treated as missing data")
    out.step = _infer_step(out.series)
    return out


def _infer_step(series: Iterable[Series]) -> float | None:
    step: float | None = None
    for item in series:
        times = sorted(t for t, _ in item.points)
        for a, b in itertools.pairwise(times):
            gap = round(b - a, 3)
            if gap > 0 and (step is None or gap < step):
                step = gap
    return step


# ---------------------------------------------------------------------------- live


def fetch(
    client: Client,
    queries: dict[str, QuerySpec],
    windows: list[tuple[datetime, datetime]],
    *,
    label: str,
    step: int,
    errors: list[InputError],
) -> list[QueryData]:
    """Run every query over ``windows`` (whole UTC days) and parse the answers."""
    label_name = ksm_label(label)
    out: list[QueryData] = []
    gauge = queries.get("gpu_requests")
    if gauge is not None and "kube_pod_labels" in gauge.expr:
        _preflight(client, label, label_name, windows, errors)
        if errors:
            return out
    for spec in queries.values():
        if spec.kind == "gauge":
            expr = spec.render(label_name, DAY_SECONDS)
            for start, end in _chunks(windows, step):
                form = {
                    "query": expr,
                    "start": _ts(start),
                    "end": _ts(end - timedelta(seconds=step)),
                    "step": f"{step}s",
                }
                out.extend(_answer(client, spec.name, form, errors))
        else:
            expr = spec.render(label_name, DAY_SECONDS)
            ends = [end for _, end in windows]
            for i in range(0, len(ends), MAX_POINTS):
                part = ends[i : i + MAX_POINTS]
                form = {"query": expr, "start": _ts(part[0]), "end": _ts(part[-1]), "step": f"{DAY_SECONDS}s"}
                out.extend(_answer(client, spec.name, form, errors))
    for data in out:
        if data.name in DEFAULT_QUERIES and DEFAULT_QUERIES[data.name].kind == "gauge":
            data.step = float(step)
    return out


def _ts(moment: datetime) -> str:
    return f"{moment.timestamp():.3f}".rstrip("0").rstrip(".")


def _chunks(windows: list[tuple[datetime, datetime]], step: int) -> list[tuple[datetime, datetime]]:
    """Consecutive windows grouped so that no range query exceeds ``MAX_POINTS`` steps."""
    chunks: list[tuple[datetime, datetime]] = []
    for start, end in windows:
        if chunks and chunks[-1][1] == start and (end - chunks[-1][0]).total_seconds() / step <= MAX_POINTS:
            chunks[-1] = (chunks[-1][0], end)
        else:
            chunks.append((start, end))
    return chunks


def _answer(client: Client, name: str, form: dict[str, str], errors: list[InputError]) -> list[QueryData]:
    document = JsonInput(
        client.url("api/v1/query_range") + f" [{name}]", client.post_form("api/v1/query_range", form)
    )
    parsed = parse_response(name, document, errors)
    return [parsed] if parsed is not None else []


def _preflight(
    client: Client,
    label: str,
    label_name: str,
    windows: list[tuple[datetime, datetime]],
    errors: list[InputError],
) -> None:
    """Fail loudly when no pod carries the deployment label in ``kube_pod_labels``."""
    start, end = windows[0][0], windows[-1][1]
    seconds = int((end - start).total_seconds())
    query = f'count(last_over_time(kube_pod_labels{{{label_name}!=""}}[{seconds}s]))'
    answer = client.post_form("api/v1/query", {"query": query, "time": _ts(end)})
    result = (answer.get("data") or {}).get("result") if isinstance(answer, dict) else None
    if not result:
        errors.append(
            InputError(
                client.url("api/v1/query"),
                1,
                1,
                f"no pod carries the label {label!r} in kube_pod_labels ({label_name}) between "
                f"{start:%Y-%m-%dT%H:%M:%SZ} and {end:%Y-%m-%dT%H:%M:%SZ}",
                "",
                "kube-state-metrics started with "
                f"--metric-labels-allowlist=pods=[{label}] (v2 exports no pod labels otherwise)",
            )
        )


# ---------------------------------------------------------------------------- conversion


@dataclass
class _Cell:
    """One deployment (or unattributed reason) in one window: what each query said."""

    sums: dict[str, dict[float, float]] = field(default_factory=dict)  # gauge -> ts -> Σ value
    util: dict[float, list[float]] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)


def convert(
    answers: list[QueryData],
    *,
    queries: dict[str, QuerySpec],
    label: str,
    index: DeploymentIndex | None,
    windows: list[tuple[datetime, datetime]] | None,
    default_step: int,
    fetched_at: str | None = None,
) -> Result:
    result = Result()
    label_name = ksm_label(label)
    for answer in answers:
        result.warnings.extend(answer.warnings)
    if windows is None:
        windows = _infer_windows(answers, queries)
    if not windows:
        result.warnings.append("the Prometheus answers hold no samples; nothing to import")
        return result
    starts = [start.timestamp() for start, _ in windows]
    ends = {end.timestamp(): i for i, (_, end) in enumerate(windows)}
    cells: dict[tuple[str, str, int], _Cell] = {}
    present: dict[str, dict[int, set[float]]] = {}  # gauge -> window -> timestamps with any data
    steps: dict[str, float] = {}
    attributed: dict[str, int] = {}
    ambiguous: set[str] = set()
    outside = 0
    for answer in answers:
        spec = queries.get(answer.name)
        if spec is None:
            continue
        steps.setdefault(answer.name, answer.step or float(default_step))
        for series in answer.series:
            dep_id, reason = _attribute(series.labels, label, label_name, index, ambiguous)
            key = ("d", dep_id) if dep_id is not None else ("u", reason or "prometheus:unlabelled")
            if dep_id is not None:
                attributed[answer.name] = attributed.get(answer.name, 0) + 1
            for when, value in series.points:
                if spec.kind == "counter":
                    i = ends.get(when)
                    if i is None:
                        outside += 1
                        continue
                    cell = cells.setdefault((*key, i), _Cell())
                    cell.counters[spec.name] = cell.counters.get(spec.name, 0.0) + value * spec.scale
                    continue
                i = bisect.bisect_right(starts, when) - 1
                if i < 0 or when >= windows[i][1].timestamp():
                    outside += 1
                    continue
                present.setdefault(spec.name, {}).setdefault(i, set()).add(when)
                cell = cells.setdefault((*key, i), _Cell())
                if spec.name == "gpu_util":
                    cell.util.setdefault(when, []).append(value * spec.scale)
                else:
                    sums = cell.sums.setdefault(spec.name, {})
                    sums[when] = sums.get(when, 0.0) + value * spec.scale
    if outside:
        result.warnings.append(f"{outside} sample(s) fall outside the import window and were not used")
    for name in sorted(ambiguous):
        result.warnings.append(name)
    for name in GAUGE_FIELDS:
        had = any(answer.series for answer in answers if answer.name == name)
        if had and not attributed.get(name):
            result.errors.append(
                InputError(
                    next(a.where.name for a in answers if a.name == name),
                    1,
                    1,
                    f"no series of {name} carries {label_name} or matches a deployment's prometheus selector",
                    "$.data.result",
                    "kube-state-metrics started with "
                    f"--metric-labels-allowlist=pods=[{label}] (v2 exports no pod labels otherwise)",
                )
            )
    if result.errors:
        return result
    warnings_note = "; ".join(w for answer in answers for w in answer.warnings)  # the server's own
    for (kind, name, i), cell in sorted(cells.items(), key=lambda item: (item[0][2], item[0][0], item[0][1])):
        start, end = windows[i]
        record = _record(
            kind, name, start, end, cell, present, steps, queries, fetched_at, warnings_note, i, result.errors
        )
        if record is not None:
            result.records.append(record)
    return result


def _attribute(
    labels: dict[str, str], label: str, label_name: str, index: DeploymentIndex | None, ambiguous: set[str]
) -> tuple[str | None, str | None]:
    value = labels.get(label_name)
    if value:
        found = index.by_label(label, value) if index is not None else None
        return found or value, None
    if index is None:
        return None, "prometheus:unlabelled"
    matches = index.match_prometheus(labels)
    if len(matches) == 1:
        return matches[0], None
    if len(matches) > 1:
        shown = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        ambiguous.add(
            f"series {{{shown}}} matches the prometheus selectors of {', '.join(matches)}; not attributed"
        )
        return None, "prometheus:ambiguous"
    return None, "prometheus:unlabelled"


def _infer_windows(
    answers: list[QueryData], queries: dict[str, QuerySpec]
) -> list[tuple[datetime, datetime]]:
    """Whole UTC days that hold gauge samples, plus the days counter samples close."""
    days: set[datetime] = set()
    for answer in answers:
        spec = queries.get(answer.name)
        if spec is None:
            continue
        for series in answer.series:
            for when, _ in series.points:
                moment = datetime.fromtimestamp(when, UTC)
                days.add(midnight(moment) if spec.kind == "gauge" else midnight(moment - DAY))
    if not days:
        return []
    windows: list[tuple[datetime, datetime]] = []
    for day in sorted(days):
        windows.extend(day_windows(day, day + DAY))
    return windows


def _record(
    kind: str,
    name: str,
    start: datetime,
    end: datetime,
    cell: _Cell,
    present: dict[str, dict[int, set[float]]],
    steps: dict[str, float],
    queries: dict[str, QuerySpec],
    fetched_at: str | None,
    warnings_note: str,
    i: int,
    errors: list[InputError],
) -> ResidencyRecord | None:
    window_seconds = (end - start).total_seconds()
    provenance: dict[str, str] = {"source": "prometheus"}
    data: dict[str, Any] = {
        "deployment_id": name if kind == "d" else None,
        "unattributed_reason": name if kind == "u" else None,
        "window_start": start,
        "window_end": end,
    }
    covered: set[float] = set()
    gpu = cell.sums.get("gpu_requests")
    if gpu:
        step = steps["gpu_requests"]
        data["gpu_hours"] = sum(gpu.values()) * step / 3600.0
        data["gpu_count_avg"] = sum(gpu.values()) / len(gpu)
        provenance["gpu_hours"] = f"prometheus:gpu_requests integrated at step={step:g}s"
        covered.update(gpu)
    ready = cell.sums.get("ready_replicas")
    if ready:
        step = steps["ready_replicas"]
        data["warm_replica_hours"] = sum(ready.values()) * step / 3600.0
        seen = present.get("ready_replicas", {}).get(i, set())
        counts = [ready.get(when, 0.0) for when in seen]
        data["replicas_min_observed"] = round(min(counts))
        data["replicas_max_observed"] = round(max(counts))
        provenance["warm_replica_hours"] = f"prometheus:ready_replicas integrated at step={step:g}s"
        covered.update(ready)
    if cell.util:
        per_step = sorted(sum(values) / len(values) for values in cell.util.values())
        data["gpu_util_avg"] = min(sum(per_step) / len(per_step), 1.0)
        data["gpu_util_p95"] = min(per_step[max(0, math.ceil(0.95 * len(per_step)) - 1)], 1.0)
        scale = queries["gpu_util"].scale if "gpu_util" in queries else 1.0
        provenance["gpu_util_avg"] = f"prometheus:gpu_util ×{scale:g}"
    for counter in ("requests", "requests_failed", "tokens_in", "tokens_out"):
        if counter in cell.counters:
            data[counter] = round(cell.counters[counter])
            provenance[counter] = f"prometheus:{counter} increase over the window"
    if covered:
        step = min(steps.get(n, 0.0) or math.inf for n in GAUGE_FIELDS if n in cell.sums)
        data["coverage"] = min(len(covered) * step / window_seconds, 1.0)
        provenance["coverage"] = "prometheus:steps with gpu_requests or ready_replicas samples"
    elif cell.util:
        step = steps.get("gpu_util", 0.0)
        if step:
            data["coverage"] = min(len(cell.util) * step / window_seconds, 1.0)
    if warnings_note:
        provenance["warnings"] = warnings_note
    if fetched_at:
        provenance["fetched_at"] = fetched_at
    data["provenance"] = provenance
    for key, value in data.items():
        if isinstance(value, float):
            data[key] = round(value, 6)
    try:
        return ResidencyRecord.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = ".".join(str(p) for p in error["loc"])
            errors.append(
                InputError("<prometheus>", 1, 1, f"cannot make a record for {name}: {loc}: {error['msg']}")
            )
        return None
