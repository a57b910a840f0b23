"""Inline ``params.*`` and ``variables.*`` into an expression's text before it is compiled.

Parameters are constants for a run and variables are expressions over the same target, so
substituting them lets one activation per target serve every policy (the runtimes convert
each target's data once) and keeps Python callbacks off the hot path.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

LITERAL = (
    r"""(?P<lit>[rRbB]{0,2}(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^\\'\n])*'|"(?:\\.|[^\\"\n])*"))"""
)
_REFERENCE = (
    r"""(?<![\w.])(?P<kind>params|variables)"""
    r"""(?:\.(?P<name>[A-Za-z_]\w*)|\[\s*(?P<q>['"])(?P<key>[^'"]+)(?P=q)\s*\])?(?!\w)"""
)
# Literals are matched whole, so a reference inside a string is never rewritten.
_TOKENS = re.compile(LITERAL + "|" + _REFERENCE)


class InlineError(Exception):
    pass


# Inlining substitutes each variable's text wherever it is used, so a chain of variables that
# each use the previous one twice doubles the text at every step: refuse anything longer than
# the CEL runtimes accept (cel-expr-python's codepoint limit) before it is ever built.
MAX_INLINED_CHARS = 100_000


def literal(value: Any) -> str:
    """A CEL literal for a parameter value. Numbers become doubles (DESIGN: parameters are floats)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            raise InlineError("parameters must be finite numbers")
        text = repr(number)
        return f"({text})" if number < 0 else text
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {literal(v)}" for k, v in value.items()) + "}"
    raise InlineError(f"unsupported parameter value {value!r}")


def _scan(text: str, on_reference: Callable[[re.Match[str]], str]) -> str:
    def step(match: re.Match[str]) -> str:
        if match.group("lit") is not None:
            return match.group(0)
        return on_reference(match)

    return _TOKENS.sub(step, text)


def inline(text: str, params: Mapping[str, Any], variables: Mapping[str, str]) -> str:
    """Replace references to parameters and (already inlined) variables."""
    grown = [len(text)]  # the result's length so far, checked before anything large is built

    def one(match: re.Match[str]) -> str:
        replacement = _replacement(match)
        grown[0] += len(replacement) - len(match.group(0))
        if grown[0] > MAX_INLINED_CHARS:
            raise InlineError(_too_long(grown[0]))
        return replacement

    def _replacement(match: re.Match[str]) -> str:
        return _resolve(match, params, variables, lambda name: f"({variables[name]})")

    return _scan(text, one)


def _resolve(
    match: re.Match[str],
    params: Mapping[str, Any],
    variables: Collection[str],
    variable: Callable[[str], str],
) -> str:
    """The text standing for one reference: a parameter's literal, or ``variable(NAME)``."""
    kind, name = match.group("kind"), match.group("name") or match.group("key")
    if name is None:
        raise InlineError(f"use {kind}.NAME; '{kind}' is not a value on its own")
    if kind == "params":
        if name not in params:
            known = ", ".join(sorted(params)) or "none"
            raise InlineError(f"unknown parameter {name!r} (declared: {known})")
        return literal(params[name])
    if name not in variables:
        known = ", ".join(variables) or "none"
        raise InlineError(f"unknown or later variable {name!r} (declared before it: {known})")
    return variable(name)


def _too_long(size: int) -> str:
    return (
        f"the expression is {size:,} characters long once params and variables are inlined, above "
        f"the {MAX_INLINED_CHARS:,} limit (a variable used many times by others multiplies its size)"
    )


def referenced_params(text: str) -> list[str]:
    names: list[str] = []

    def collect(match: re.Match[str]) -> str:
        name = match.group("name") or match.group("key")
        if match.group("kind") == "params" and name and name not in names:
            names.append(name)
        return match.group(0)

    _scan(text, collect)
    return names


# ---------------------------------------------------------------------------- bound variables

# cel-expr-python evaluates ``cel.bind(NAME, VALUE, EXPR)`` lazily: VALUE once, where EXPR first
# uses it. Binding variables instead of inlining their text keeps each one to one evaluation
# however often it is used (as Kubernetes' variables), which inlining multiplies.
BOUND_PREFIX = "pe_v_"
_IDENTIFIER = re.compile(LITERAL + r"|(?P<ident>(?<![\w.])[A-Za-z_]\w*)")


def uses_reserved_names(text: str) -> bool:
    """Whether ``text`` names anything ``pe_*`` (a macro's own variable, say): a bound variable
    of that name would then be shadowed inside it."""
    return any((m.group("ident") or "").startswith("pe_") for m in _IDENTIFIER.finditer(text))


def bound(text: str, params: Mapping[str, Any], variables: Collection[str]) -> str:
    """``text`` with parameters inlined and each ``variables.NAME`` read from its binding."""
    return _scan(text, lambda match: _resolve(match, params, variables, lambda name: BOUND_PREFIX + name))


def bind_variables(text: str, variables: Sequence[tuple[str, str]]) -> str:
    """``text`` inside a lazy binding for each ``(name, bound text)`` it uses, directly or
    through another, the first outermost (a variable may use those declared before it).
    Unused ones are left out: each binding nests the text one level deeper, and the runtime
    limits nesting."""
    used = set(_bound_names(text))
    chosen: list[tuple[str, str]] = []
    for name, value in reversed(variables):
        if name in used:
            chosen.append((name, value))
            used.update(_bound_names(value))
    for name, value in chosen:
        text = f"cel.bind({BOUND_PREFIX}{name}, {value}, {text})"
    return text


def _bound_names(text: str) -> list[str]:
    return [
        m.group("ident")[len(BOUND_PREFIX) :]
        for m in _IDENTIFIER.finditer(text)
        if (m.group("ident") or "").startswith(BOUND_PREFIX)
    ]
