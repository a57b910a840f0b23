"""Well-formed CSV rows made into residency records without pydantic.

Validating a record with pydantic costs about 7 µs, and 90 days of daily records for 15,000
deployments are 1.4 million rows. A row whose cells all convert and meet the record's own
constraints, read from ``ResidencyRecord.model_json_schema()`` so that the model stays their
one definition, is made here directly and then checked by the model's own after-validator.
Anything else returns None: a cell that does not convert, a value out of range or not finite,
a missing required field, a constraint this module does not know, a row the model's validator
refuses. The caller then validates that row with pydantic, which finds and words every
problem. A record made here equals pydantic's, with the same given fields (tested).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from policy_engine.models.types import parse_timestamp, shared_fields_set
from policy_engine.residency.records import Cost, ResidencyRecord

# Where a cell goes: the record itself, its cost block, its labels or its provenance.
TOP, COST, LABELS, PROVENANCE = range(4)
_DESTINATIONS = {"cost": COST, "labels": LABELS, "provenance": PROVENANCE}
# The JSON schema type each kind of cell must have for its value to be checked here.
_SCHEMA_TYPES = {"str": "string", "float": "number", "int": "integer", "timestamp": "string"}
_UNDERSTOOD = frozenset({"type", "minimum", "maximum", "minLength", "pattern", "enum", "const", "format"})
_ANNOTATIONS = frozenset({"title", "description", "default", "examples"})
_LARGEST = sys.float_info.max  # a finite bound: infinities and NaN fail every range check
_KNOWN_VALUES = 10_000  # per column: strings already checked (ids, teams, currencies repeat)
_KNOWN_MOMENTS = 100_000  # timestamps already parsed (windows repeat across records)


class Cell(NamedTuple):
    """One column of a header: its index, where its value goes and what kind of value it is."""

    column: int
    path: tuple[str, ...]  # ("gpu_hours",), ("cost", "total"), ("labels", "team"), ...
    kind: str  # str, float, int or timestamp


class _Rule(NamedTuple):
    """A column's place and the constraints its values must meet."""

    column: int
    into: int
    key: str
    low: float
    high: float
    min_length: int
    pattern: re.Pattern[str] | None
    allowed: frozenset[Any] | None


def assembled(data: dict[str, Any], cost: dict[str, Any], cost_present: bool) -> dict[str, Any]:
    """A row's fields as a record: the cost block when a cost column is set, and the source as
    the reason for spend without a deployment."""
    if cost_present:
        data["cost"] = cost
    if data.get("deployment_id") is None and data.get("unattributed_reason") is None:
        source = data["provenance"].get("source")
        if source and ":" in source:  # e.g. "opencost:__idle__", as the format reference writes it
            data["unattributed_reason"] = source
    return data


class RowReader:
    """The records of one header's well-formed rows; None for any other row."""

    def __init__(self, cells: Sequence[Cell], cost_amounts: frozenset[str]) -> None:
        schema = _schema()
        strings: list[_Rule] = []
        floats: list[_Rule] = []
        ints: list[_Rule] = []
        moments: list[_Rule] = []
        slow: list[int] = []
        by_kind = {"str": strings, "float": floats, "int": ints, "timestamp": moments}
        for cell in cells:
            rule = _rule(cell, _property(schema, cell.path))
            if rule is None:
                slow.append(cell.column)  # a set cell here always goes to pydantic
            else:
                by_kind[cell.kind].append(rule)
        # Plain tuples, unpacked in the loops: a named field read per cell would cost more
        # than the cell's own check. Strings carry a dict of the values already checked.
        self._strings: tuple[tuple[int, int, str, dict[str, str], _Rule], ...] = tuple(
            (r.column, r.into, r.key, {}, r) for r in strings
        )
        self._floats = tuple((r.column, r.into, r.key, r.low, r.high) for r in floats)
        self._ints = tuple((r.column, r.into, r.key, r.low, r.high, r.allowed) for r in ints)
        self._moments = tuple((r.column, r.into, r.key) for r in moments)
        self._slow = tuple(slow)
        self._cost_amounts = cost_amounts
        self._required = frozenset(schema.get("required", ()))
        self._cost_required = frozenset(schema["$defs"]["Cost"].get("required", ()))
        self._moment_of: dict[str, datetime] = {}
        self._defaults, self._factories = _defaults(ResidencyRecord)
        self._cost_defaults, self._cost_factories = _defaults(Cost)
        self._given: dict[tuple[str, ...], set[str]] = {}
        self._cost_after = _after_validators(Cost)
        self._record_after = _after_validators(ResidencyRecord)

    def record(self, row: list[str]) -> ResidencyRecord | None:
        """The record of ``row`` (one cell per header column), or None to let pydantic decide.
        (A loop per kind of cell, not a branch per cell: this runs for every row of a history.)"""
        for column in self._slow:
            if row[column].strip():
                return None
        top: dict[str, Any] = {}
        cost: dict[str, Any] = {}
        into: tuple[dict[str, Any], ...] = (top, cost, {}, {})
        try:
            for column, where, key, known, rule in self._strings:
                value = row[column].strip()
                if value:
                    checked = known.get(value)
                    if checked is None:
                        if not _meets(rule, value):
                            return None
                        checked = value
                        if len(known) < _KNOWN_VALUES:
                            known[value] = value
                    into[where][key] = checked
            for column, where, key, low, high in self._floats:
                text = row[column]
                if text and not text.isspace():  # float() itself ignores surrounding blanks
                    number = float(text)
                    if not low <= number <= high:  # also false for NaN
                        return None
                    into[where][key] = number
            for column, where, key, low, high, allowed in self._ints:
                text = row[column]
                if text and not text.isspace():
                    whole = int(text)
                    if not low <= whole <= high or (allowed is not None and whole not in allowed):
                        return None
                    into[where][key] = whole
            moment_of = self._moment_of
            for column, where, key in self._moments:
                text = row[column].strip()
                if text:
                    moment = moment_of.get(text)
                    if moment is None:
                        moment = parse_timestamp(text)
                        if len(moment_of) < _KNOWN_MOMENTS:
                            moment_of[text] = moment
                    into[where][key] = moment
        except ValueError:
            return None
        top["labels"], top["provenance"] = into[LABELS], into[PROVENANCE]
        assembled(top, cost, not self._cost_amounts.isdisjoint(cost))
        if not self._required.issubset(top):
            return None
        try:
            if "cost" in top:
                if not self._cost_required.issubset(cost):
                    return None
                top["cost"] = self._made(Cost, self._cost_defaults, self._cost_factories, cost)
                for validate in self._cost_after:
                    validate(top["cost"])
            record: ResidencyRecord = self._made(ResidencyRecord, self._defaults, self._factories, top)
            for validate in self._record_after:
                validate(record)
        except ValueError:
            return None
        return record

    def _made(
        self,
        model: type[Any],
        defaults: dict[str, Any],
        factories: tuple[tuple[str, Callable[[], Any]], ...],
        given: dict[str, Any],
    ) -> Any:
        """A model object of checked values, as pydantic would have made it from ``given``."""
        keys = tuple(given)
        fields = defaults.copy()  # in the model's field order, as pydantic keeps them
        fields.update(given)
        for name, factory in factories:
            if name not in given:
                fields[name] = factory()  # a fresh value per object, never a shared one
        fields_set = self._given.get(keys)
        if fields_set is None:
            fields_set = self._given[keys] = shared_fields_set(frozenset(keys))
        made = object.__new__(model)
        assign = object.__setattr__
        assign(made, "__dict__", fields)
        assign(made, "__pydantic_fields_set__", fields_set)
        assign(made, "__pydantic_extra__", None)
        assign(made, "__pydantic_private__", None)
        return made


@cache
def _schema() -> dict[str, Any]:
    return ResidencyRecord.model_json_schema()


def _property(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    """The JSON schema of the value at ``path`` in a record, without its null alternative."""
    node: dict[str, Any] | None = {"properties": schema["properties"]}
    for part in path:
        if node is None:
            return None
        node = _not_null(node)
        if node is None:
            return None
        if "$ref" in node:
            node = schema["$defs"].get(node["$ref"].rpartition("/")[2])
            if node is None:
                return None
        properties = node.get("properties", {})
        if part in properties:
            node = properties[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    return _not_null(node) if node is not None else None


def _not_null(node: dict[str, Any]) -> dict[str, Any] | None:
    """A schema without a ``{"type": "null"}`` alternative (None when other alternatives remain)."""
    options = node.get("anyOf")
    if options is None:
        return node
    rest = [option for option in options if option != {"type": "null"}]
    if len(rest) != 1:
        return None
    return {**{k: v for k, v in node.items() if k != "anyOf"}, **rest[0]}


def _rule(cell: Cell, node: dict[str, Any] | None) -> _Rule | None:
    """The checks for one column, or None when its schema says more than this module checks."""
    if node is None or node.get("type") != _SCHEMA_TYPES[cell.kind]:
        return None
    if not set(node) <= _UNDERSTOOD | _ANNOTATIONS:
        return None
    if (cell.kind == "timestamp") != (node.get("format") == "date-time"):
        return None
    if "format" in node and cell.kind != "timestamp":
        return None
    numeric = cell.kind in ("float", "int")
    if not numeric and ("minimum" in node or "maximum" in node):
        return None
    allowed = node.get("enum", [node["const"]] if "const" in node else None)
    if cell.kind == "float" and allowed is not None:
        return None
    into = TOP if len(cell.path) == 1 else _DESTINATIONS[cell.path[0]]
    return _Rule(
        column=cell.column,
        into=into,
        key=cell.path[-1],
        low=float(node.get("minimum", -_LARGEST if cell.kind == "float" else -math.inf)),
        high=float(node.get("maximum", _LARGEST if cell.kind == "float" else math.inf)),
        min_length=int(node.get("minLength", 0)),
        pattern=re.compile(node["pattern"]) if "pattern" in node else None,
        allowed=frozenset(allowed) if allowed is not None else None,
    )


def _meets(rule: _Rule, value: str) -> bool:
    """A string cell's value against its column's constraints (as pydantic checks them: a
    pattern is searched for, so it holds anywhere unless anchored)."""
    if len(value) < rule.min_length:
        return False
    if rule.pattern is not None and rule.pattern.search(value) is None:
        return False
    return rule.allowed is None or value in rule.allowed


def _defaults(model: type[Any]) -> tuple[dict[str, Any], tuple[tuple[str, Callable[[], Any]], ...]]:
    """Each field's default in field order (a required field's place is kept by a None that a
    given value always replaces: required fields are checked first), and the fields whose
    default is made by a factory."""
    defaults: dict[str, Any] = {}
    factories: list[tuple[str, Callable[[], Any]]] = []
    for name, field in model.model_fields.items():
        defaults[name] = None
        if field.default_factory is not None:
            factories.append((name, field.default_factory))
        elif not field.is_required():
            defaults[name] = field.default
    return defaults, tuple(factories)


def _after_validators(model: type[Any]) -> tuple[Callable[[Any], Any], ...]:
    """The model's own ``mode="after"`` validators; a model with any other kind would need
    pydantic for every row, which ``RowReader`` users do not expect: refused here."""
    decorators = model.__pydantic_decorators__
    if decorators.validators or decorators.field_validators or decorators.root_validators:
        raise TypeError(f"{model.__name__} has validators that RowReader cannot run")
    after = []
    for decorator in decorators.model_validators.values():
        if decorator.info.mode != "after":
            raise TypeError(f"{model.__name__} has a {decorator.info.mode} validator")
        after.append(decorator.func)
    return tuple(after)
