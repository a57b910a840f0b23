"""One native residency record: a deployment (or unattributed spend) over one UTC window."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, cast

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from policy_engine.models.types import Strict, share_fields_set

SCHEMA_VERSION: Literal[1] = 1


UtcTimestamp = Annotated[
    AwareDatetime,
    Field(description="RFC 3339 timestamp with a zone; stored and written in UTC ('Z')."),
]
_ZERO = timedelta(0)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is UTC:
        return moment
    if moment.utcoffset() == _ZERO:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Ratio = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Counter = Annotated[int, Field(ge=0)]
CostBasis = Literal["effective", "billed", "list"]


class Cost(Strict):
    """Residency cost of the window in one currency."""

    # Records are validated by the million and most are dropped once checked: the set of given
    # fields is shared only for those kept (``share_fields``), not on every validation.
    model_post_init: ClassVar[Callable[[BaseModel, Any], None]] = BaseModel.model_post_init

    total: Amount = Field(
        description="Full residency cost of the window: GPU plus CPU, memory, network, load balancers."
    )
    gpu: Amount | None = Field(None, description="The GPU part of `total`.")
    other: Amount | None = Field(None, description="Everything in `total` that is not GPU.")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. USD.")
    basis: CostBasis = Field(
        description="effective = FOCUS EffectiveCost (amortised commitments); billed = FOCUS "
        "BilledCost; list = on-demand list prices (OpenCost without reconciliation)."
    )


class ResidencyRecord(Strict):
    """One deployment (or one piece of unattributed spend) over one half-open UTC window.

    A field the source does not provide is null; null is never read as zero.
    """

    schema_version: Literal[1] = Field(1, description="Format version; always 1.")
    deployment_id: str | None = Field(
        None,
        min_length=1,
        description="Deployment id from the portfolio (the join key); null for unattributed spend.",
    )
    unattributed_reason: str | None = Field(
        None,
        min_length=1,
        description="Why the spend has no deployment, e.g. 'opencost:__idle__', "
        "'opencost:__unallocated__', 'focus:untagged'. Set exactly when deployment_id is null.",
    )
    window_start: UtcTimestamp = Field(description="Start of the window (inclusive), UTC.")
    window_end: UtcTimestamp = Field(description="End of the window (exclusive), UTC.")
    coverage: Ratio | None = Field(None, description="Fraction of the window the source has data for (0-1).")
    gpu_type: str | None = Field(None, description="Accelerator type, e.g. nvidia-l4.")
    gpu_hours: Amount | None = Field(
        None, description="Allocated (requested) GPUs × hours in the window, not utilised ones."
    )
    gpu_count_avg: Amount | None = Field(None, description="Average allocated GPUs.")
    warm_replica_hours: Amount | None = Field(
        None,
        description="Replica-hours of ready replicas; divided by the window's hours = average warm replicas.",
    )
    replicas_min_observed: Counter | None = Field(None, description="Fewest ready replicas seen.")
    replicas_max_observed: Counter | None = Field(None, description="Most ready replicas seen.")
    gpu_util_avg: Ratio | None = Field(
        None, description="Average GPU utilisation as a ratio 0-1 (DCGM percent / 100)."
    )
    gpu_util_p95: Ratio | None = Field(None, description="95th percentile GPU utilisation, 0-1.")
    cost: Cost | None = Field(None, description="Cost of the window, or null when no source priced it.")
    requests: Counter | None = Field(None, description="Requests served in the window.")
    requests_failed: Counter | None = Field(None, description="Requests that failed.")
    tokens_in: Counter | None = Field(None, description="Prompt (input) tokens.")
    tokens_out: Counter | None = Field(None, description="Generated (output) tokens.")
    traffic_share: Ratio | None = Field(
        None,
        description="This deployment's requests / all requests on its endpoint and region, 0-1 "
        "(shadow: mirrored / primary).",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Attribution labels, e.g. team, cost_center."
    )
    provenance: dict[str, str] = Field(
        default_factory=dict,
        description="Per field, where the value came from (e.g. 'gpu_hours': "
        "'opencost:gpuHours'); 'source' names the adapter; 'fetched_at' when it was read.",
    )

    model_post_init: ClassVar[Callable[[BaseModel, Any], None]] = BaseModel.model_post_init  # see Cost

    # Not fields: where the record was read and its source kind, kept in slots so that they
    # cost nothing to validate, stay out of the schema, dumps and equality (a copy drops them).
    __slots__ = ("read_from_", "source_kind_")

    @model_validator(mode="after")
    def _consistent(self) -> ResidencyRecord:
        # one Python call per record (not one per field): this model is loaded by the million
        # (and with the C implementation of UTC as zone, later comparisons are several times faster)
        self.__dict__["window_start"] = _as_utc(self.window_start)
        self.__dict__["window_end"] = _as_utc(self.window_end)
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start (windows are half-open)")
        if self.deployment_id is None and self.unattributed_reason is None:
            raise ValueError(
                "a record without deployment_id is unattributed spend and needs unattributed_reason"
            )
        if self.deployment_id is not None and self.unattributed_reason is not None:
            raise ValueError("a record has either deployment_id or unattributed_reason, not both")
        object.__setattr__(self, "source_kind_", source_kind(self.provenance))
        return self

    @property
    def origin(self) -> tuple[str, int] | None:
        """(file, line) the record was read from, when it was read from a file."""
        return cast("tuple[str, int] | None", getattr(self, "read_from_", None))

    def located(self, file: str, line: int) -> ResidencyRecord:
        """Remember where the record was read; returns the record."""
        object.__setattr__(self, "read_from_", (file, line))
        return self

    @property
    def source_kind(self) -> str:
        """The adapter that made the record: provenance 'source', else the common prefix."""
        kind = getattr(self, "source_kind_", None)
        return kind if isinstance(kind, str) else source_kind(self.provenance)

    def share_fields(self) -> ResidencyRecord:
        """Share the sets of given fields with records written alike (for records kept in
        memory, see Cost); returns the record."""
        share_fields_set(self)
        if self.cost is not None:
            share_fields_set(self.cost)
        return self

    @property
    def hours(self) -> float:
        return (self.window_end - self.window_start).total_seconds() / 3600.0


@dataclass(frozen=True, slots=True)
class Window:
    """Which records count: those whose window lies inside ``[start, end)``. Called on a record;
    ``holds`` asks the same of a window alone (a remembered one, see ``spread``)."""

    start: datetime
    end: datetime

    def __call__(self, record: ResidencyRecord) -> bool:
        return record.window_start >= self.start and record.window_end <= self.end

    def holds(self, start: datetime, end: datetime) -> bool:
        return start >= self.start and end <= self.end


def source_kind(provenance: dict[str, str]) -> str:
    explicit = provenance.get("source")
    if explicit:
        return explicit
    kinds = {
        value.split(":", 1)[0] for key, value in provenance.items() if key != "fetched_at" and ":" in value
    }
    if len(kinds) == 1:
        return kinds.pop()
    return "native"
