"""Turn pydantic validation errors into located, readable input errors."""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from policy_engine.errors import InputError, json_path
from policy_engine.yamlsource import SourceMap

M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Any, source: SourceMap) -> tuple[M | None, list[InputError]]:
    """Validate ``data`` against ``model``; errors point at the line of the offending value."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, [_convert(model, error, source, data) for error in exc.errors()]


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[str | int, ...]:
    """The parts of a pydantic error location that name keys and items of ``data``.

    The rest are pydantic's own labels (union members, ``function-after[...]``, ``[key]``);
    telling them apart by the data, not by their spelling, keeps user keys such as ``a[0]``.
    """
    path: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        is_key = isinstance(current, dict) and part in current
        is_item = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if is_key or is_item:
            path.append(part)
            current = current[part]
        elif index == len(loc) - 1 and isinstance(current, dict) and part != "[key]":
            path.append(part)  # a missing field
    return tuple(path)


def _convert(model: type[BaseModel], error: Any, source: SourceMap, data: Any = None) -> InputError:
    loc = _data_path(tuple(error["loc"]), data)
    kind = error["type"]
    message = error["msg"].removeprefix("Value error, ")
    expected = ""
    if kind == "extra_forbidden" and loc:
        name = loc[-1]
        known = sorted(_fields_at(model, loc[:-1]))
        guess = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        message = f"unknown field {name!r}"
        if guess:
            message += f"; did you mean {guess[0]!r}?"
        expected = "one of " + ", ".join(known) if known else ""
    elif kind == "missing" and loc:
        line, column = source.locate(loc[:-1])
        return InputError(source.file, line, column, f"missing required field {loc[-1]!r}", json_path(loc))
    elif kind == "literal_error":
        message = f"{error['input']!r} is not allowed"
        expected = error.get("ctx", {}).get("expected", "")
        allowed = re.findall(r"'([^']*)'", expected)
        guess = difflib.get_close_matches(str(error["input"]), allowed, n=1, cutoff=0.6)
        if guess:
            message += f"; did you mean {guess[0]!r}?"
    elif kind.endswith("_type"):
        message = f"{message.lower().replace('input should be', 'expected')}, got {_shown(error['input'])}"
    return source.error(loc, message, expected)


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> set[str]:
    """Field names (aliases where set) of the model reached by following ``loc``."""
    current: Any = model
    for part in loc:
        current = _unwrap(current, part)
        if current is None:
            return set()
    current = _unwrap(current, None)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return {info.alias or name for name, info in current.model_fields.items()}
    return set()


def _unwrap(annotation: Any, part: Any) -> Any:
    """Step from an annotation into the type of its ``part`` (field name or item index)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = options[0] if options else None
        else:
            break
    if part is None:
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, info in annotation.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    origin = typing.get_origin(annotation)
    if origin in (list, dict):
        return _unwrap(typing.get_args(annotation)[-1], None)
    return None
