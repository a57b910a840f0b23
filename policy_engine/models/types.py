"""Field types shared by every file format: timestamps, durations, quantities, counts."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|z|[+-]\d{2}:\d{2})$"
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|ns|d|h|m|s)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_MAX_DURATION_SECONDS = 315_576_000_000  # CEL's duration range: ±10,000 years


class Strict(BaseModel):
    """Base for every file model: unknown fields are errors, values are not coerced. Frozen:
    a model is what its file says; a changed copy comes from ``model_copy``."""

    # defer_build: a model's validator is built when first used; a run on files known valid
    # (see ``factcache``) never validates a model file, so never builds theirs.
    model_config = ConfigDict(
        extra="forbid", strict=True, populate_by_name=True, frozen=True, defer_build=True
    )

    def model_post_init(self, context: Any, /) -> None:
        share_fields_set(self)


# Which fields an object was given, one set per combination (see ``share_fields_set``).
_GIVEN: dict[frozenset[str], set[str]] = {}


def share_fields_set(model: BaseModel) -> None:
    """Give a frozen model the shared set of its given fields instead of its own.

    The set repeats across thousands of objects (every deployment's replicas has min and max;
    every failing finding has the same fields) and was a third of a loaded portfolio's memory.
    Nothing adds to it: the model is frozen, and ``model_copy`` gives a copy a set of its own.
    """
    given = model.__pydantic_fields_set__
    shared = _GIVEN.setdefault(frozenset(given), given)
    if shared is not given:
        object.__setattr__(model, "__pydantic_fields_set__", shared)


def shared_fields_set(fields: frozenset[str]) -> set[str]:
    """The shared set of these given fields (see ``share_fields_set``), for an object made
    without validation."""
    return _GIVEN.setdefault(fields, set(fields))


def parse_timestamp(value: str) -> datetime:
    """Parse an RFC 3339 timestamp that carries a zone; raise ValueError otherwise."""
    match = _RFC3339.match(value)
    if not match:
        if re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2})?(\.\d+)?$", value):
            raise ValueError(f"timestamp {value!r} has no time zone; add Z for UTC")
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        raise ValueError(f"{value!r} is not a real date and time") from None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00:00-05:00 is past the year 9999 in UTC
        raise ValueError(f"{value!r} is out of range (years 0001 to 9999 in UTC)") from None


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC. Not ``strftime``: its ``%Y`` writes the year 1 as "1", not "0001"."""
    moment = moment.astimezone(UTC)
    text = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment:%H:%M:%S}"
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


_CANONICAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


# Canonical timestamps already checked in this process: a portfolio repeats the same few
# thousand (sign-off and evidence dates) across its files.
_CHECKED: set[str] = set()
_CHECKED_MAX = 100_000


def _timestamp(value: Any) -> Any:
    if type(value) is str and value in _CHECKED:
        return value
    if isinstance(value, str) and len(value) == 20 and _CANONICAL.fullmatch(value):
        try:  # already canonical (the usual case): only check that the date exists
            datetime.fromisoformat(value)
        except ValueError:
            pass  # the full path explains what is wrong
        else:
            if len(_CHECKED) < _CHECKED_MAX:
                _CHECKED.add(value)
            return value
    if not isinstance(value, str):
        raise ValueError("expected a quoted RFC 3339 timestamp string such as '2025-06-30T00:00:00Z'")
    return format_timestamp(parse_timestamp(value))


def duration_hours(value: str) -> float:
    """Hours in a duration string: CEL units (h, m, s, ms, us, ns) plus ``d`` for days."""
    text = value.strip()
    pos = 0
    total = 0.0
    for part in _DURATION_PART.finditer(text):
        if part.start() != pos:
            break
        total += float(part.group(1)) * _UNIT_SECONDS[part.group(2)]
        pos = part.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration such as '336h' or '14d'")
    if not total <= _MAX_DURATION_SECONDS:  # also NaN and Inf (from absurdly long digit strings)
        raise ValueError(f"{value!r} is longer than a CEL duration can be (10,000 years)")
    return total / 3600.0


def format_hours(hours: float) -> str:
    text = f"{hours:.6f}".rstrip("0").rstrip(".")
    return f"{text}h"


def _duration(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("expected a duration string such as '336h' or '14d'")
    return format_hours(duration_hours(value))


def _quantity(value: Any) -> Any:
    if type(value) is float and math.isfinite(value):  # the usual cases, in one check each
        return value
    if type(value) is int:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a number")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise ValueError("expected a finite number (NaN and Inf are not allowed)")
    return number


def _version(value: Any) -> Any:
    if isinstance(value, bool | int | float):
        raise ValueError(f'a version is a string: quote it ("{value}"); 1.10 would read as 1.1')
    return value


Timestamp = Annotated[str, BeforeValidator(_timestamp)]
Duration = Annotated[str, BeforeValidator(_duration)]
Quantity = Annotated[float, BeforeValidator(_quantity)]
Count = Annotated[int, Field(ge=0)]
VersionId = Annotated[str, BeforeValidator(_version), Field(min_length=1)]
Name = Annotated[str, Field(min_length=1)]
