"""The one serialisable report every reporter renders (DESIGN §9, ``schemas/report.schema.json``)."""

from __future__ import annotations

import marshal
from collections.abc import Callable
from functools import cache
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from policy_engine.models.types import share_fields_set, shared_fields_set

Status = Literal["pass", "fail", "error", "skip", "waived", "pre_existing"]
STATUSES: tuple[Status, ...] = ("fail", "error", "waived", "pre_existing", "skip", "pass")
SCHEMA_VERSION = 1


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # A large run has hundreds of thousands of findings, made here or unpickled from workers.
    def model_post_init(self, context: Any, /) -> None:
        share_fields_set(self)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        share_fields_set(self)

    @classmethod
    def made(cls, **given: Any) -> Self:
        """``cls(**given)`` for values this package made itself, of the declared types, built
        without validating them: a large run makes tens of thousands of findings, and
        validation was two thirds of each one's cost (the tests check reports against their
        schema). Unknown and missing fields are still refused."""
        defaults, required, factories = _construction(cls)
        values = {**defaults, **given}  # every field, in field order
        if len(values) != len(defaults) or not given.keys() >= required:
            unknown = sorted(given.keys() - defaults.keys())
            missing = sorted(required - given.keys())
            raise TypeError(f"{cls.__name__}: unknown fields {unknown}, missing fields {missing}")
        for name, factory in factories:
            if name not in given:
                values[name] = factory()
        return _assemble(cls, values, shared_fields_set(frozenset(given)))

    def __reduce__(self) -> Any:
        # Findings travel from worker processes by the ten thousand: their values alone, in
        # field order, pickle in half the time and unpickle in a quarter (no per-object state
        # dict to rebuild and hand to ``__setstate__``).
        values = self.__dict__
        if tuple(values) != _field_names(type(self)):  # cannot be, short of editing ``__dict__``
            return (_restore, (type(self), self.__getstate__()))
        return (_rebuild, (type(self), tuple(values.values()), self.__pydantic_fields_set__))


_Made = TypeVar("_Made", bound=_Out)


@cache
def _field_names(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(model.model_fields)


@cache
def _construction(
    model: type[BaseModel],
) -> tuple[dict[str, Any], frozenset[str], tuple[tuple[str, Callable[[], Any]], ...]]:
    """Per model: each field's default (None where required or made by a factory), the
    required fields, and the fields whose default a factory makes afresh."""
    defaults: dict[str, Any] = {}
    required: set[str] = set()
    factories: list[tuple[str, Callable[[], Any]]] = []
    for name, info in model.model_fields.items():
        defaults[name] = None
        if info.is_required():
            required.add(name)
        elif info.default_factory is not None:
            factories.append((name, info.default_factory))  # type: ignore[arg-type]
        else:
            defaults[name] = info.default
    return defaults, frozenset(required), tuple(factories)


def _restore(model: type[_Out], state: dict[Any, Any]) -> _Out:
    made = object.__new__(model)
    made.__setstate__(state)
    return made


def _rebuild(model: type[_Out], values: tuple[Any, ...], given: set[str]) -> _Out:
    """An object pickled by ``_Out.__reduce__``: it was valid where it was made."""
    made = _assemble(model, dict(zip(_field_names(model), values, strict=True)), given)
    share_fields_set(made)
    return made


def _assemble(model: type[_Made], values: dict[str, Any], given: set[str]) -> _Made:
    """An object of ``model`` from all its field values, in order, without validating them."""
    made = object.__new__(model)
    object.__setattr__(made, "__dict__", values)
    object.__setattr__(made, "__pydantic_fields_set__", given)
    object.__setattr__(made, "__pydantic_extra__", None)
    object.__setattr__(made, "__pydantic_private__", None)
    return made


class Location(_Out):
    file: str | None = None
    line: int | None = None
    column: int | None = None
    json_path: str | None = None


class Finding(_Out):
    fingerprint: str = Field(description="sha256(policy id, target id, validation key)[:16]")
    policy_id: str
    validation: str = Field(description="The validation's name, else its index as a string.")
    target: str
    model: str | None = None
    version: str | None = None
    deployment: str | None = None
    status: Status
    severity: Literal["error", "warning", "info"]
    enforcement: Literal["advisory", "soft", "hard"]
    blocking: bool
    exception_id: str | None = None
    message: str
    remediation: str | None = None
    skip_reason: str | None = None
    location: Location = Field(default_factory=Location)
    values: dict[str, Any] = Field(default_factory=dict)


def packed_findings(findings: list[Finding]) -> bytes | None:
    """Findings as one marshalled value, for a worker to send by the ten thousand: marshal
    writes it in C, where pickling calls ``__reduce__`` per finding and per location (0.27 →
    0.17 s for 39,000 findings; made again in 0.29 → 0.2 s). Each finding is its field values in
    order, its location an index into the distinct locations (still shared once made again),
    its given fields an index into the distinct sets. None when a finding cannot be written so
    (a value marshal does not know): the caller pickles them instead."""
    names, location_names = _field_names(Finding), _field_names(Location)
    at = names.index("location")
    locations: dict[int, int] = {}
    location_rows: list[tuple[tuple[Any, ...], int]] = []
    given: dict[frozenset[str], int] = {}
    rows: list[tuple[list[Any], int]] = []
    for finding in findings:
        fields = finding.__dict__
        where = fields["location"]
        if tuple(fields) != names or tuple(where.__dict__) != location_names:
            return None  # cannot be, short of editing ``__dict__``
        index = locations.get(id(where))
        if index is None:
            index = locations[id(where)] = len(location_rows)
            where_given = given.setdefault(frozenset(where.__pydantic_fields_set__), len(given))
            location_rows.append((tuple(where.__dict__.values()), where_given))
        values = list(fields.values())
        values[at] = index
        rows.append((values, given.setdefault(frozenset(finding.__pydantic_fields_set__), len(given))))
    try:
        return marshal.dumps((rows, location_rows, [sorted(fields) for fields in given]))
    except ValueError:
        return None


def unpacked_findings(packed: bytes) -> list[Finding]:
    """The findings ``packed_findings`` wrote, made again without validating (they were valid
    where they were made)."""
    rows, location_rows, given = marshal.loads(packed)
    sets = [shared_fields_set(frozenset(fields)) for fields in given]
    names, location_names = _field_names(Finding), _field_names(Location)
    at = names.index("location")
    locations = [
        _assemble(Location, dict(zip(location_names, values, strict=True)), sets[fields])
        for values, fields in location_rows
    ]
    findings = []
    for values, fields in rows:
        values[at] = locations[values[at]]
        findings.append(_assemble(Finding, dict(zip(names, values, strict=True)), sets[fields]))
    return findings


class Tool(_Out):
    name: str = "policy-engine"
    version: str
    cel_backend: str
    pack_version: str


class Summary(_Out):
    by_status: dict[str, int]
    by_severity: dict[str, int]
    blocking: int
    exit_code: int


class PolicyInfo(_Out):
    id: str
    title: str | None = None
    severity: Literal["error", "warning", "info"]
    scope: str
    source: str = Field(description="Policy file, or builtin:<file> for the built-in pack.")
    rationale: str | None = None
    remediation: list[str] = Field(default_factory=list)
    enforcement: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)


class Override(_Out):
    policy_id: str
    setting: str = Field(description="e.g. params.max_days, severity, enforcement.audit")
    default: Any = None
    value: Any = None
    source: str


class Report(_Out):
    schema_version: int = SCHEMA_VERSION
    tool: Tool
    as_of: str
    context: Literal["pre-commit", "pull-request", "audit"]
    base: str | None = None
    head: str | None = None
    summary: Summary
    policies: list[PolicyInfo]
    overrides: list[Override] = Field(default_factory=list)
    findings: list[Finding]
