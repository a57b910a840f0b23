"""FOCUS billing export (CSV) → native records, one per deployment and UTC day.

Columns as the FOCUS specification names them. Rows counted: ``ChargeCategory`` ``Usage``,
and ``Purchase`` rows whose cost is not zero; ``Tax``, ``Credit``, ``Adjustment`` and
``ChargeClass = Correction`` rows are reconciliation, not residency, and are reported as
skipped. Cost = ``EffectiveCost`` (amortised commitments; a commitment-covered row has
``BilledCost`` 0 and ``EffectiveCost`` > 0), or ``BilledCost`` / ``ListCost`` on request.

Attribution: a deployment's ``selectors.focus_tags`` (all must match the row's ``Tags`` JSON)
or ``selectors.focus_resource_ids`` (``ResourceId``), else the deployment label in ``Tags``
(exactly, or behind a provider prefix such as ``user:``), else unattributed
(``focus:untagged``; only rows of the ``AI and Machine Learning`` and ``Compute`` service
categories). GPU-hours: ``ConsumedQuantity`` in hours × GPUs of the instance type
(``x_InstanceType``, else the part of ``x_UsageType`` after ``:``, else ``ResourceType`` or
``SkuId``) from ``INSTANCE_TYPES`` or ``--instance-types``. Token rows (``ConsumedUnit``
mentioning tokens) count as input or output tokens when the SKU or description says which.
Charge periods that span days are split pro rata. Date/times must carry a zone (FOCUS: UTC).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from policy_engine.errors import InputError
from policy_engine.models.types import parse_timestamp
from policy_engine.residency.inputs import Result, midnight
from policy_engine.residency.join import DeploymentIndex, tag_value
from policy_engine.residency.records import CostBasis, ResidencyRecord
from policy_engine.yamlsource import YamlError, decode, parse

COST_COLUMNS: dict[str, CostBasis] = {
    "EffectiveCost": "effective",
    "BilledCost": "billed",
    "ListCost": "list",
}
REQUIRED = ("ChargePeriodStart", "ChargePeriodEnd", "BillingCurrency", "ChargeCategory")
UNTAGGED_CATEGORIES = ("AI and Machine Learning", "Compute")
SKIPPED_CATEGORIES = ("Tax", "Credit", "Adjustment")
Fail = Callable[[str, str, str], None]


def _family(prefix: str, gpu: str, sizes: dict[str, int]) -> dict[str, tuple[str, int]]:
    return {f"{prefix}{size}": (gpu, count) for size, count in sizes.items()}


_SINGLE = {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1}
# instance type -> (gpu type, GPUs per instance). SageMaker's "ml." prefix is ignored.
INSTANCE_TYPES: dict[str, tuple[str, int]] = {
    **_family("g4dn.", "nvidia-t4", {**_SINGLE, "12xlarge": 4, "metal": 8}),
    **_family("g5.", "nvidia-a10g", {**_SINGLE, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    **_family("g6.", "nvidia-l4", {**_SINGLE, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    **_family("g6e.", "nvidia-l40s", {**_SINGLE, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    "p4d.24xlarge": ("nvidia-a100-40gb", 8),
    "p4de.24xlarge": ("nvidia-a100-80gb", 8),
    "p5.48xlarge": ("nvidia-h100-80gb", 8),
    **_family(
        "g2-standard-", "nvidia-l4", {"4": 1, "8": 1, "12": 1, "16": 1, "32": 1, "24": 2, "48": 4, "96": 8}
    ),
    **_family("a2-highgpu-", "nvidia-a100-40gb", {"1g": 1, "2g": 2, "4g": 4, "8g": 8}),
    **_family("a2-ultragpu-", "nvidia-a100-80gb", {"1g": 1, "2g": 2, "4g": 4, "8g": 8}),
    "a3-highgpu-8g": ("nvidia-h100-80gb", 8),
    "Standard_NC4as_T4_v3": ("nvidia-t4", 1),
    "Standard_NC8as_T4_v3": ("nvidia-t4", 1),
    "Standard_NC16as_T4_v3": ("nvidia-t4", 1),
    "Standard_NC64as_T4_v3": ("nvidia-t4", 4),
    "Standard_NV36ads_A10_v5": ("nvidia-a10", 1),
    "Standard_NC24ads_A100_v4": ("nvidia-a100-80gb", 1),
    "Standard_NC48ads_A100_v4": ("nvidia-a100-80gb", 2),
    "Standard_NC96ads_A100_v4": ("nvidia-a100-80gb", 4),
    "Standard_ND96isr_H100_v5": ("nvidia-h100-80gb", 8),
}


def load_instance_types(path: Path | None) -> tuple[dict[str, tuple[str, int]], list[InputError]]:
    """Built-in table, extended by a YAML/JSON file ``{<instance type>: {gpu_type, gpus}}``."""
    table = dict(INSTANCE_TYPES)
    if path is None:
        return table, []
    shown = path.as_posix()
    try:
        data, source = parse(decode(path.read_bytes(), shown), shown)
    except YamlError as exc:
        return table, [exc.error]
    except OSError as exc:
        return table, [InputError(shown, 1, 1, f"cannot read: {exc.strerror}", "", "a readable file")]
    if not isinstance(data, dict):
        return table, [source.error((), "not a mapping", "{<instance type>: {gpu_type: …, gpus: …}}")]
    errors = []
    for name, spec in data.items():
        gpus = spec.get("gpus") if isinstance(spec, dict) else None
        gpu_type = spec.get("gpu_type") if isinstance(spec, dict) else None
        if not isinstance(gpu_type, str) or isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
            errors.append(
                source.error(
                    (name,), f"{name!r} needs gpu_type and gpus ≥ 1", "{gpu_type: nvidia-l4, gpus: 1}"
                )
            )
            continue
        table[str(name)] = (gpu_type, gpus)
    return table, errors


@dataclass
class _Day:
    """Everything attributed to one deployment (or left unattributed) on one UTC day."""

    where: tuple[str, int]
    cost: float = 0.0
    cost_gpu: float = 0.0
    gpu_hours: float | None = None
    gpu_types: set[str] = field(default_factory=set)
    tokens_in: float | None = None
    tokens_out: float | None = None
    periods: list[tuple[float, float]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)


def convert(
    files: list[tuple[str, bytes]],
    *,
    label: str,
    index: DeploymentIndex | None,
    cost_column: str = "EffectiveCost",
    instance_types: dict[str, tuple[str, int]] | None = None,
    currency: str | None = None,
) -> Result:
    result = Result()
    if cost_column not in COST_COLUMNS:
        result.errors.append(
            InputError("<options>", 1, 1, f"unknown cost column {cost_column!r}", "", ", ".join(COST_COLUMNS))
        )
        return result
    table = instance_types if instance_types is not None else INSTANCE_TYPES
    days: dict[tuple[str | None, str | None, datetime], _Day] = {}
    state = _State(currency)
    for name, raw in files:
        _read(name, raw, label, index, cost_column, table, days, state, result)
    for why, count in sorted(state.skipped.items()):
        result.warnings.append(f"{count} FOCUS row(s) skipped: {why}")
    basis = COST_COLUMNS[cost_column]
    for (dep_id, reason, day), bucket in sorted(
        days.items(), key=lambda item: (item[0][2], item[0][0] or "", item[0][1] or "")
    ):
        record = _record(
            dep_id, reason, day, bucket, basis, cost_column, state.currency or "USD", result.errors
        )
        if record is not None:
            result.records.append(record)
    return result


@dataclass
class _State:
    currency: str | None
    currency_at: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def _read(
    name: str,
    raw: bytes,
    label: str,
    index: DeploymentIndex | None,
    cost_column: str,
    table: dict[str, tuple[str, int]],
    days: dict[tuple[str | None, str | None, datetime], _Day],
    state: _State,
    result: Result,
) -> None:
    errors = result.errors
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        errors.append(InputError(name, 1, exc.start + 1, "invalid UTF-8", "", "a UTF-8 FOCUS CSV"))
        return
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [c for c in (*REQUIRED, cost_column) if c not in header]
    if missing:
        for column in missing:
            errors.append(
                InputError(
                    name,
                    1,
                    1,
                    f"missing column {column!r}",
                    f"$.{column}",
                    "a FOCUS export header (" + ", ".join((*REQUIRED, cost_column)) + ")",
                )
            )
        return
    column_of = {c: i + 1 for i, c in enumerate(header)}
    previous = reader.line_num
    try:
        for row in reader:
            number = previous + 1
            previous = reader.line_num
            _row(name, number, row, column_of, label, index, cost_column, table, days, state, errors)
    except csv.Error as exc:
        errors.append(InputError(name, reader.line_num, 1, f"invalid CSV: {exc}", "", "RFC 4180 CSV"))


def _row(
    name: str,
    number: int,
    row: dict[str, Any],
    column_of: dict[str, int],
    label: str,
    index: DeploymentIndex | None,
    cost_column: str,
    table: dict[str, tuple[str, int]],
    days: dict[tuple[str | None, str | None, datetime], _Day],
    state: _State,
    errors: list[InputError],
) -> None:
    def cell(column: str) -> str:
        value = row.get(column)
        return value.strip() if isinstance(value, str) else ""

    def fail(column: str, message: str, expected: str) -> None:
        errors.append(InputError(name, number, column_of.get(column, 1), message, f"$.{column}", expected))

    if None in row:
        fail(REQUIRED[0], "row has more cells than the header", "one cell per column")
        return
    category = cell("ChargeCategory")
    if category in SKIPPED_CATEGORIES:
        state.skip(f"ChargeCategory {category} (reconciliation, not residency)")
        return
    if cell("ChargeClass") == "Correction":
        state.skip("ChargeClass Correction (corrects an earlier period)")
        return
    if category not in ("Usage", "Purchase"):
        fail(
            "ChargeCategory",
            f"unknown ChargeCategory {category!r}",
            "Usage, Purchase, Tax, Credit or Adjustment",
        )
        return
    cost = _number(cell(cost_column), cost_column, fail)
    if cost is None:
        return
    if category == "Purchase" and cost == 0:
        state.skip("Purchase rows with zero cost (amortised into usage)")
        return
    if cost < 0:
        fail(
            cost_column,
            f"negative {cost_column} {cost:g} on a {category} row",
            "a cost ≥ 0 (credits are Credit rows)",
        )
        return
    try:
        start = parse_timestamp(cell("ChargePeriodStart"))
    except ValueError as exc:
        fail("ChargePeriodStart", str(exc), "an RFC 3339 UTC timestamp (FOCUS date/times are UTC)")
        return
    try:
        end = parse_timestamp(cell("ChargePeriodEnd"))
    except ValueError as exc:
        fail("ChargePeriodEnd", str(exc), "an RFC 3339 UTC timestamp (FOCUS date/times are UTC)")
        return
    if end <= start:
        fail(
            "ChargePeriodEnd",
            "ChargePeriodEnd is not after ChargePeriodStart",
            "a half-open period [start, end)",
        )
        return
    row_currency = cell("BillingCurrency")
    if state.currency is None:
        state.currency, state.currency_at = row_currency, f"{name}:{number}"
    elif row_currency != state.currency:
        where = f"at {state.currency_at}" if state.currency_at else "(the portfolio's currency)"
        fail(
            "BillingCurrency",
            f"mixed currencies: {row_currency} here, {state.currency} {where}",
            f"one currency ({state.currency}); convert before import",
        )
        return
    tags = _tags(cell("Tags"), fail)
    if tags is None:
        return
    resource_id = cell("ResourceId") or None
    dep_id: str | None = None
    if index is not None:
        matches = index.match_focus(tags, resource_id)
        if len(matches) > 1:
            fail(
                "Tags",
                f"row matches the FOCUS selectors of {', '.join(matches)}",
                "selectors that pick one deployment",
            )
            return
        dep_id = matches[0] if matches else None
    labels: dict[str, str] = {}
    if dep_id is None:
        dep_id = tag_value(tags, label) or None
        if dep_id is not None:
            labels[label] = dep_id  # lets a later join find it through focus_tags selectors
    reason = None
    if dep_id is None:
        service = cell("ServiceCategory")
        if "ServiceCategory" in column_of and service not in UNTAGGED_CATEGORIES:
            state.skip(f"untagged rows outside {' / '.join(UNTAGGED_CATEGORIES)}")
            return
        reason = "focus:untagged"
    gpu = _gpu(row, table)
    hours = _hours(cell("ConsumedQuantity"), cell("ConsumedUnit"), "ConsumedQuantity", fail)
    if hours is False:
        return
    tokens = _tokens(row, cell("ConsumedQuantity"), cell("ConsumedUnit"))
    if tokens == "unknown":
        state.skip("token rows whose SKU does not say input or output (cost kept, tokens not counted)")
    for key, target in (("team", "team"), ("cost-center", "cost_center"), ("cost_center", "cost_center")):
        value = tag_value(tags, key)
        if value:
            labels.setdefault(target, value)
    span = (end - start).total_seconds()
    cursor = start
    while cursor < end:
        day = midnight(cursor)
        upper = min(day + timedelta(days=1), end)
        fraction = (upper - cursor).total_seconds() / span
        bucket = days.setdefault((dep_id, reason, day), _Day((name, number)))
        bucket.cost += cost * fraction
        bucket.periods.append((cursor.timestamp(), upper.timestamp()))
        for key, value in labels.items():
            bucket.labels.setdefault(key, value)
        if gpu is not None and isinstance(hours, float):
            bucket.gpu_hours = (bucket.gpu_hours or 0.0) + hours * gpu[1] * fraction
            bucket.gpu_types.add(gpu[0])
            bucket.cost_gpu += cost * fraction
        if isinstance(tokens, tuple):
            direction, count = tokens
            if direction == "in":
                bucket.tokens_in = (bucket.tokens_in or 0.0) + count * fraction
            else:
                bucket.tokens_out = (bucket.tokens_out or 0.0) + count * fraction
        cursor = upper


def _number(text: str, column: str, fail: Fail) -> float | None:
    if not text:
        fail(column, f"{column} is empty", "a number")
        return None
    try:
        value = float(text)
    except ValueError:
        fail(column, f"{column} {text!r} is not a number", "a number")
        return None
    if value != value or value in (float("inf"), float("-inf")):
        fail(column, f"{column} is {text!r}: NaN and Inf are not allowed", "a finite number")
        return None
    return value


def _tags(text: str, fail: Fail) -> dict[str, object] | None:
    if not text:
        return {}
    try:
        tags = json.loads(text)
    except ValueError as exc:
        fail("Tags", f"Tags is not JSON: {exc}", 'a JSON object such as {"team": "ml-genai"}')
        return None
    if not isinstance(tags, dict):
        fail("Tags", "Tags is not a JSON object", "FOCUS Key-Value Format (a JSON object)")
        return None
    return tags


def _gpu(row: dict[str, Any], table: dict[str, tuple[str, int]]) -> tuple[str, int] | None:
    candidates = [row.get("x_InstanceType"), row.get("ResourceType"), row.get("SkuId")]
    usage = row.get("x_UsageType")
    if isinstance(usage, str) and ":" in usage:
        candidates.insert(1, usage.rsplit(":", 1)[1])
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            name = candidate.strip().removeprefix("ml.")
            if name in table:
                return table[name]
    return None


def _hours(quantity: str, unit: str, column: str, fail: Fail) -> float | bool | None:
    """Hours consumed, None when the row is not metered in hours, False after an error."""
    if not quantity or not unit.lower().startswith(("hour", "hr")):
        return None
    value = _number(quantity, column, fail)
    if value is None:
        return False
    if value < 0:
        fail(column, f"negative {column} {value:g}", "a quantity ≥ 0")
        return False
    return value


def _tokens(row: dict[str, Any], quantity: str, unit: str) -> tuple[str, float] | str | None:
    if "token" not in unit.lower() or not quantity:
        return None
    try:
        count = float(quantity)
    except ValueError:
        return None
    if count != count or count < 0:
        return None
    text = " ".join(
        str(row.get(c) or "") for c in ("SkuId", "ChargeDescription", "x_UsageType", "SkuPriceDetails")
    )
    text = text.lower()
    if "input" in text or "prompt" in text:
        return ("in", count)
    if "output" in text or "completion" in text or "generat" in text:
        return ("out", count)
    return "unknown"


def _record(
    dep_id: str | None,
    reason: str | None,
    day: datetime,
    bucket: _Day,
    basis: CostBasis,
    cost_column: str,
    currency: str,
    errors: list[InputError],
) -> ResidencyRecord | None:
    covered = _union(bucket.periods)
    gpu_type = next(iter(bucket.gpu_types)) if len(bucket.gpu_types) == 1 else None
    provenance = {"source": "focus", "cost": f"focus:{cost_column}", "coverage": "focus:ChargePeriod"}
    data: dict[str, Any] = {
        "deployment_id": dep_id,
        "unattributed_reason": reason,
        "window_start": day,
        "window_end": day + timedelta(days=1),
        "coverage": round(min(covered / 86400.0, 1.0), 6),
        "gpu_type": gpu_type,
        "cost": {
            "total": round(bucket.cost, 6),
            "gpu": round(bucket.cost_gpu, 6) if bucket.gpu_hours is not None else None,
            "other": round(bucket.cost - bucket.cost_gpu, 6) if bucket.gpu_hours is not None else None,
            "currency": currency,
            "basis": basis,
        },
        "labels": bucket.labels,
    }
    if bucket.gpu_hours is not None:
        data["gpu_hours"] = round(bucket.gpu_hours, 6)
        provenance["gpu_hours"] = "focus:ConsumedQuantity × GPUs per instance type"
    if bucket.tokens_in is not None:
        data["tokens_in"] = round(bucket.tokens_in)
        provenance["tokens_in"] = "focus:ConsumedQuantity (tokens)"
    if bucket.tokens_out is not None:
        data["tokens_out"] = round(bucket.tokens_out)
        provenance["tokens_out"] = "focus:ConsumedQuantity (tokens)"
    data["provenance"] = provenance
    try:
        return ResidencyRecord.model_validate(data)
    except ValidationError as exc:
        file, line = bucket.where
        for error in exc.errors():
            loc = ".".join(str(p) for p in error["loc"])
            errors.append(InputError(file, line, 1, f"cannot make a record: {loc}: {error['msg']}"))
        return None


def _union(periods: list[tuple[float, float]]) -> float:
    total = 0.0
    end = float("-inf")
    for a, b in sorted(periods):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total
