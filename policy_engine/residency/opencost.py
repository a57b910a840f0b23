"""OpenCost ``/allocation`` → native records.

Input: the API's JSON, ``{"code": 200, "data": [{<key>: {Allocation}, …}, …]}`` with one map
per step, aggregated by the deployment label (``aggregate=label:<key>``; the key comes back
sanitised, e.g. ``portfolio_acme_io_deployment``). Field names are those of OpenCost's
``allocation_json.go``. A response aggregated by ``label:<key>,pod`` (keys ``<value>/<pod>``)
adds warm replica-hours (running minutes per pod).

Mapping: key → deployment (through each deployment's ``k8s_labels`` selector, else the key is
the id); ``window.start/end`` (else ``start/end``) → window; ``minutes`` / window minutes →
coverage; ``gpuHours``, ``gpuCount``; ``totalCost`` → cost.total, ``gpuCost +
gpuCostAdjustment`` → cost.gpu, the rest → cost.other, basis ``list``; ``gpuEfficiency`` →
utilisation (a 0 without DCGM data behind it is unknown, not idle). ``__idle__``,
``__unallocated__`` (and ``__shared__``, ``__external__``, ``__unmounted__``) become
unattributed records. ``null`` (OpenCost's rendering of NaN/Inf) stays null.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from policy_engine.errors import InputError
from policy_engine.models.types import parse_timestamp
from policy_engine.residency.http import Client
from policy_engine.residency.inputs import JsonInput, Result, number
from policy_engine.residency.join import DeploymentIndex, sanitize_label
from policy_engine.residency.records import ResidencyRecord

SPECIAL_KEYS = ("__idle__", "__unallocated__", "__shared__", "__external__", "__unmounted__")
API_PATH = "allocation"


@dataclass
class _Entry:
    """What the inputs say about one deployment (or unattributed key) in one window."""

    where: JsonInput
    path: tuple[str | int, ...]
    window: tuple[datetime, datetime]
    deployment_id: str | None
    reason: str | None
    labels: dict[str, str] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    util: float | None = None
    util_note: str | None = None
    gpu_type: str | None = None
    pod_minutes: float | None = None
    pods: bool = False
    util_pods: int = 1


def fetch(client: Client, start: datetime, end: datetime, label: str) -> list[JsonInput]:
    """Daily allocation sets for ``[start, end)``, by the deployment label and by label + pod."""
    window = f"{_rfc3339(start)},{_rfc3339(end)}"
    common = {
        "window": window,
        "step": "1d",
        "accumulate": "false",
        "includeIdle": "true",
        "shareIdle": "false",
        "idleByNode": "false",
    }
    out = []
    for aggregate in (f"label:{label}", f"label:{label},pod"):
        params = {**common, "aggregate": aggregate}
        url = client.url(API_PATH, params)
        out.append(JsonInput(url, client.get_json(API_PATH, params)))
    return out


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def convert(
    documents: list[JsonInput],
    *,
    label: str,
    currency: str,
    index: DeploymentIndex | None,
    fetched_at: str | None = None,
) -> Result:
    result = Result()
    entries: dict[tuple[str, str, datetime, datetime], _Entry] = {}
    pods: dict[tuple[str, str, datetime, datetime], _Entry] = {}
    label_key = sanitize_label(label)
    for document in documents:
        _read(document, label, label_key, index, entries, pods, result)
    for key, pod_entry in pods.items():
        entry = entries.get(key)
        if entry is None:
            entries[key] = pod_entry
        elif pod_entry.pod_minutes is not None:
            entry.pod_minutes = pod_entry.pod_minutes
    for entry in entries.values():
        record = _record(entry, label, currency, fetched_at, result.errors)
        if record is not None:
            result.records.append(record)
    return result


def _read(
    document: JsonInput,
    label: str,
    label_key: str,
    index: DeploymentIndex | None,
    entries: dict[tuple[str, str, datetime, datetime], _Entry],
    pods: dict[tuple[str, str, datetime, datetime], _Entry],
    result: Result,
) -> None:
    data = document.data
    if not isinstance(data, dict):
        result.errors.append(document.error((), "not an OpenCost response", '{"code": 200, "data": [...]}'))
        return
    code = data.get("code")
    if code != 200:
        message = data.get("message") or data.get("error") or "no message"
        result.errors.append(document.error(("code",), f"OpenCost answered {code}: {message}", "code 200"))
        return
    sets = data.get("data")
    if isinstance(sets, dict):
        sets = [sets]
    if not isinstance(sets, list):
        result.errors.append(document.error(("data",), "'data' is not a list of allocation sets", "a list"))
        return
    for step, allocations in enumerate(sets):
        if allocations is None:
            continue
        if not isinstance(allocations, dict):
            result.errors.append(
                document.error(("data", step), "an allocation set is not an object", "an object")
            )
            continue
        for name, allocation in allocations.items():
            path: tuple[str | int, ...] = ("data", step, name)
            if not isinstance(allocation, dict):
                result.errors.append(document.error(path, "an allocation is not an object", "an object"))
                continue
            entry = _entry(document, path, str(name), allocation, label, label_key, index, result.errors)
            if entry is None:
                continue
            key = (entry.deployment_id or "", entry.reason or "", *entry.window)
            target = pods if entry.pods else entries
            if entry.pods and key in target:
                _add_pod(target[key], entry)
                continue
            if key in target:
                first = target[key]
                line, column = first.where.locate(first.path)
                result.errors.append(
                    document.error(
                        path,
                        f"a second allocation for {entry.deployment_id or entry.reason} in the same window "
                        f"(first at {first.where.name}:{line}:{column})",
                        "one allocation per key and step; pass each response once",
                    )
                )
                continue
            target[key] = entry


def _add_pod(total: _Entry, more: _Entry) -> None:
    """Sum one more pod of a deployment into the deployment's per-pod total."""
    for name, value in more.values.items():
        if name != "minutes":
            total.values[name] = total.values.get(name, 0.0) + value
    if "minutes" in more.values:
        total.values["minutes"] = max(total.values.get("minutes", 0.0), more.values["minutes"])
    total.pod_minutes = (total.pod_minutes or 0.0) + (more.pod_minutes or 0.0)
    if more.util is not None:
        if total.util is None:
            total.util, total.util_pods = more.util, 1
        else:
            total.util_pods += 1
            total.util += (more.util - total.util) / total.util_pods


def _entry(
    document: JsonInput,
    path: tuple[str | int, ...],
    name: str,
    allocation: dict[str, Any],
    label: str,
    label_key: str,
    index: DeploymentIndex | None,
    errors: list[InputError],
) -> _Entry | None:
    window = _window(document, path, allocation, errors)
    if window is None:
        return None
    properties = _mapping(allocation.get("properties"))
    labels_in = _mapping(properties.get("labels"))  # absent when the aggregated pods disagree
    pod = properties.get("pod") if isinstance(properties.get("pod"), str) else None
    is_pod = bool(pod) and name.endswith("/" + str(pod))
    key = name[: -len(str(pod)) - 1] if is_pod else name
    cluster_prefix, _, special = key.rpartition("/")
    labels: dict[str, str] = {}
    cluster = properties.get("cluster")
    deployment_id: str | None = None
    reason: str | None = None
    if special in SPECIAL_KEYS:
        reason = f"opencost:{special}"
        cluster = cluster or cluster_prefix or None
    else:
        labels[label_key] = key
        deployment_id = index.by_label(label, key) if index is not None else None
        deployment_id = deployment_id or key
        for source_key, target_key in (("team", "team"), ("cost_center", "cost_center")):
            value = labels_in.get(source_key)
            if isinstance(value, str) and value:
                labels[target_key] = value
    if isinstance(cluster, str) and cluster:
        labels["cluster"] = cluster
    entry = _Entry(document, path, window, deployment_id, reason, labels, pods=is_pod)
    for source_name in ("minutes", "gpuHours", "gpuCount", "totalCost", "gpuCost"):
        value = number(allocation.get(source_name), document, (*path, source_name), errors)
        if value is not None:
            entry.values[source_name] = value
    adjustment = number(
        allocation.get("gpuCostAdjustment"), document, (*path, "gpuCostAdjustment"), errors, negative_ok=True
    )
    if adjustment is not None:
        entry.values["gpuCostAdjustment"] = adjustment
    if is_pod and "minutes" in entry.values:
        entry.pod_minutes = entry.values["minutes"]
    gpu_allocation = allocation.get("gpuAllocation")
    dcgm = isinstance(gpu_allocation, dict) and gpu_allocation.get("gpuUsageAverage") is not None
    if isinstance(gpu_allocation, dict) and isinstance(gpu_allocation.get("gpuModel"), str):
        entry.gpu_type = gpu_allocation["gpuModel"] or None
    efficiency = number(allocation.get("gpuEfficiency"), document, (*path, "gpuEfficiency"), errors)
    if efficiency is not None and (efficiency > 0 or dcgm):
        if efficiency > 1.0:
            entry.util_note = f"opencost:gpuEfficiency (clamped from {efficiency:g})"
            efficiency = 1.0
        entry.util = efficiency
    return entry


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _window(
    document: JsonInput, path: tuple[str | int, ...], allocation: dict[str, Any], errors: list[InputError]
) -> tuple[datetime, datetime] | None:
    window = allocation.get("window")
    if isinstance(window, dict) and window.get("start") and window.get("end"):
        start, end, where = window.get("start"), window.get("end"), (*path, "window")
    else:
        start, end, where = allocation.get("start"), allocation.get("end"), path
    if not isinstance(start, str) or not isinstance(end, str):
        errors.append(document.error(where, "allocation has no window", "window.start and window.end"))
        return None
    try:
        return parse_timestamp(start), parse_timestamp(end)
    except ValueError as exc:
        errors.append(document.error(where, str(exc), "RFC 3339 timestamps with a zone"))
        return None


def _record(
    entry: _Entry, label: str, currency: str, fetched_at: str | None, errors: list[InputError]
) -> ResidencyRecord | None:
    start, end = entry.window
    window_minutes = (end - start).total_seconds() / 60.0
    values = entry.values
    provenance: dict[str, str] = {"source": "opencost"}
    data: dict[str, Any] = {
        "deployment_id": entry.deployment_id,
        "unattributed_reason": entry.reason,
        "window_start": start,
        "window_end": end,
        "labels": entry.labels,
        "gpu_type": entry.gpu_type,
    }
    if "minutes" in values and window_minutes > 0:
        data["coverage"] = min(values["minutes"] / window_minutes, 1.0)
        provenance["coverage"] = "opencost:minutes"
    if "gpuHours" in values:
        data["gpu_hours"] = values["gpuHours"]
        provenance["gpu_hours"] = f"opencost:gpuHours aggregate=label:{label}"
    if "gpuCount" in values:
        data["gpu_count_avg"] = values["gpuCount"]
    if entry.pod_minutes is not None:
        data["warm_replica_hours"] = entry.pod_minutes / 60.0
        provenance["warm_replica_hours"] = f"opencost:minutes per pod aggregate=label:{label},pod"
    if entry.util is not None:
        data["gpu_util_avg"] = entry.util
        provenance["gpu_util_avg"] = entry.util_note or "opencost:gpuEfficiency"
    if "totalCost" in values:
        total = values["totalCost"]
        gpu = values.get("gpuCost")
        if gpu is not None:
            gpu += values.get("gpuCostAdjustment", 0.0)
            if gpu < 0:
                errors.append(
                    entry.where.error(
                        (*entry.path, "gpuCostAdjustment"),
                        f"gpuCost + gpuCostAdjustment is negative ({gpu:g})",
                        "a GPU cost ≥ 0",
                    )
                )
                return None
        other = None if gpu is None else total - gpu
        if other is not None and other < 0:
            if other < -0.005:
                errors.append(
                    entry.where.error(
                        (*entry.path, "totalCost"),
                        f"totalCost {total:g} is below the GPU cost {gpu:g}",
                        "totalCost ≥ gpuCost + gpuCostAdjustment",
                    )
                )
                return None
            other = 0.0
        data["cost"] = {"total": total, "gpu": gpu, "other": other, "currency": currency, "basis": "list"}
        provenance["cost"] = "opencost:totalCost"
    if fetched_at:
        provenance["fetched_at"] = fetched_at
    data["provenance"] = provenance
    try:
        return ResidencyRecord.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = ".".join(str(p) for p in error["loc"])
            errors.append(entry.where.error(entry.path, f"cannot make a record: {loc}: {error['msg']}"))
        return None
