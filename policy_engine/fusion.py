"""Decide many targets' policies in one CEL call, with the exact path as the fallback.

Evaluating expression by expression costs, per target, one runtime call per match, validation,
message and reported variable (about 1.3 µs each before any work, plus the engine's own
bookkeeping), and every target's activation converts again the data it shares with others: the
portfolio and roster, and a version's map for each of its deployments and sign-offs. Here a
batch of targets of one scope is one activation and one call:

    pe_rows.map(pe_row, [P₁, P₂, ...])

where each policy's text reads the target's own variables from its row (``signoff`` becomes
``pe_row.signoff``, see ``rebind``). Shared data is converted once per batch, and a map that
several targets share once (``version`` becomes ``pe_table[pe_row.version]``). Each ``P`` is one
policy: ``[]`` when its match is false, else per validation ``[]`` when it passes or
``[message]`` when it fails (``[false]`` without a messageExpression), followed by the policy's
variable values when anything failed.

It changes no result. A batch whose call fails (an expression errors, the iteration budget runs
out, the call takes longer than one expression may) is split in halves down to single targets,
and a target that still fails, or a policy whose result has an unexpected shape, is evaluated
expression by expression as without fusion; so every error finding, message and budget is the
one the unfused engine gives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from policy_engine.cel import (
    BATCH_NAMES,
    MAX_EXPRESSION_CHARS,
    VARIABLES,
    Backend,
    CelCompileError,
    CelEvalError,
)
from policy_engine.inline import BOUND_PREFIX, LITERAL, bind_variables
from policy_engine.policies import CompiledPolicy

ROWS, TABLE = BATCH_NAMES  # declared by the backend; authored expressions cannot reach them
ROW = "pe_row"
# Variables whose value one target shares with others (a version with its deployments and
# sign-offs): passed once per batch in the table.
SHARED_BY_TARGETS = ("model", "version")
# Fewer targets than this are decided the exact way: compiling the fused programs (up to about
# 0.1 s for the version scope of the built-in pack) would cost more than it saves.
FUSE_FROM = 200
BATCH = 32  # targets per call: enough to share conversions, far from the iteration budget
# One program's text stays well under the runtime's limit on one expression.
GROUP_CHARS = MAX_EXPRESSION_CHARS // 2


_TOKEN = re.compile(
    LITERAL + r"|(?P<comment>//[^\n]*)|(?P<number>\d[\w.]*)|(?P<ident>[A-Za-z_]\w*)|(?P<other>\S)"
)


def rebind(text: str, names: dict[str, str]) -> str | None:
    """``text`` with each free reference to a variable in ``names`` replaced by its new text.

    A free reference is a name not after ``.`` (a field) nor before ``(`` (a function). None
    when a macro in the text binds one of those names itself (``xs.all(version, ...)``) or one
    of the engine's own (``pe_*``): rewriting could then change what a name refers to.
    """
    tokens = [t for t in _TOKEN.finditer(text) if t.group("comment") is None]
    words = [t.group(0) for t in tokens]
    out: list[str] = []
    position = 0
    for index, token in enumerate(tokens):
        word = token.group("ident")
        if word is None:
            continue
        before = words[index - 1] if index else ""
        following = words[index + 1] if index + 1 < len(words) else ""
        macro = index >= 3 and words[index - 1] == "(" and words[index - 3] == "."
        if macro and following == "," and (word in names or word.startswith("pe_")):
            return None
        if word in names and before != "." and following != "(":
            out.append(text[position : token.start()])
            out.append(names[word])
            position = token.end()
    out.append(text[position:])
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Decision:
    """One policy on one target, as the fused call decided it (shared between targets: never
    changed once made)."""

    applies: bool
    # Per validation: [] when it passes, else [its message] ([false] without a messageExpression).
    results: list[list[Any]]
    values: list[Any]  # the policy's variable values, when a validation failed; else []
    failed: bool = False  # any validation failed (its results not all [])


_NOT_APPLICABLE = Decision(False, [], [])


def policy_text(policy: CompiledPolicy, names: dict[str, str], *, bind: bool = True) -> str | None:
    """One policy's decision as a CEL expression over a batch row (None: it cannot be fused).

    With bound texts (``CompiledPolicy.bound``, unless ``bind`` is false) each variable is
    evaluated once per target, shared by the match, the validations, their messages and the
    reported values."""
    texts = policy.bound if bind else None
    pieces = [(texts.match if texts else policy.match_source) or "true"]
    if texts is not None:
        for expression, message in texts.validations:
            pieces += [expression, message or "false"]
        pieces += [value for _, value in texts.variables]
    else:
        for validation in policy.validations:
            pieces += [validation.source, validation.message_source or "false"]
        pieces += [variable.source for variable in policy.variables]
    rebound = [text for text in (rebind(piece, names) for piece in pieces) if text is not None]
    if len(rebound) < len(pieces):
        return None
    match, *rest = rebound
    checks = rest[: 2 * len(policy.validations)]
    variables = rest[len(checks) :]
    items = [f"({checks[i]}) ? [] : [{checks[i + 1]}]" for i in range(0, len(checks), 2)]
    body = "[" + ", ".join(items) + "]"
    if policy.variables:
        shown = [BOUND_PREFIX + name for name, _ in texts.variables] if texts else variables
        values = "[" + ", ".join(shown) + "]"
        body = f"[{body}].map(pe_r, pe_r.all(pe_x, size(pe_x) == 0) ? pe_r : dyn(pe_r) + [dyn({values})])[0]"
    if policy.match_source is not None:
        body = f"({match}) ? {body} : []"
    if texts is not None:
        body = bind_variables(
            body, [(name, value) for (name, _), value in zip(texts.variables, variables, strict=True)]
        )
    return body


class Fusion:
    """Fused programs for one scope's policies, compiled once per shape of batch."""

    def __init__(self, policies: list[CompiledPolicy], backend: Backend, base: dict[str, Any]) -> None:
        self._policies = policies
        self._backend = backend
        self._base = base
        self._fields = selected_fields(t for p in policies for t in expression_texts(p))
        self._rebound: dict[tuple[str, ...], list[str | None]] = {}
        # Per policy, the decision when every validation passes (shared: decisions are read only).
        self._passed = [Decision(True, [[] for _ in p.validations], []) for p in policies]
        # Per policy, the decision when its verdict is [] (its match is false), if it has one.
        self._empty = [
            _NOT_APPLICABLE if p.match_source is not None and p.validations else None for p in policies
        ]
        self._programs: dict[tuple[Any, ...], list[tuple[list[int], Any]]] = {}

    def decide(
        self, rows: Sequence[dict[str, Any]], runnable: tuple[bool, ...], varying: tuple[str, ...]
    ) -> list[list[Decision | None]]:
        """Per row (a target's full data), per policy: its decision, or None where the exact path
        must decide. Policies that cannot run (``runnable`` false) are left to the caller.
        ``varying``: the variables whose values differ from the shared ones in these rows."""
        out: list[list[Decision | None]] = [[None] * len(self._policies) for _ in rows]
        if rows and any(runnable):
            self._decide(list(range(len(rows))), rows, runnable, varying, out)
        return out

    def _decide(
        self,
        indices: list[int],
        rows: Sequence[dict[str, Any]],
        runnable: tuple[bool, ...],
        varying: tuple[str, ...],
        out: list[list[Decision | None]],
    ) -> None:
        batch = [rows[i] for i in indices]
        table, packed = _pack(batch, varying, self._fields)
        groups = self._compiled(runnable, varying)
        data = dict(self._base)
        data[ROWS] = packed
        data[TABLE] = table
        activation = self._backend.activation(data)
        for members, program in groups:
            if program is None:
                continue
            try:
                value = self._backend.evaluate(program, activation)
            except CelEvalError:
                value = None
            if not (isinstance(value, list) and len(value) == len(batch)):
                if len(indices) > 1:  # find the targets that fail; the others keep their speed
                    half = len(indices) // 2
                    only = _only(runnable, members)
                    self._decide(indices[:half], rows, only, varying, out)
                    self._decide(indices[half:], rows, only, varying, out)
                continue
            passed, empty = self._passed, self._empty
            for row_index, decided in zip(indices, value, strict=True):
                if not (isinstance(decided, list) and len(decided) == len(members)):
                    continue
                row = out[row_index]
                for member, result in zip(members, decided, strict=True):
                    # Most verdicts are passes or not applicable: answered without a call.
                    verdict = passed[member]
                    if result == verdict.results:
                        row[member] = verdict
                    elif result == [] and empty[member] is not None:
                        row[member] = empty[member]
                    else:
                        row[member] = self._decision(member, result)

    def _decision(self, member: int, result: Any) -> Decision | None:
        """A verdict that is neither a plain pass nor plainly not applicable (the caller
        answers those)."""
        policy = self._policies[member]
        count = len(policy.validations)
        if not isinstance(result, list):
            return None
        if not result and count:
            return _NOT_APPLICABLE if policy.match_source is not None else None
        items = result[:count]
        if len(items) != count or not all(isinstance(item, list) and len(item) <= 1 for item in items):
            return None
        values: list[Any] = []
        if any(items) and policy.variables:
            if len(result) != count + 1 or not isinstance(result[count], list):
                return None
            values = result[count]
            if len(values) != len(policy.variables):
                return None
        elif len(result) != count:
            return None
        return Decision(True, items, values, failed=any(items))

    def _compiled(self, runnable: tuple[bool, ...], varying: tuple[str, ...]) -> list[tuple[list[int], Any]]:
        key = (runnable, varying)
        groups = self._programs.get(key)
        if groups is None:
            members = [i for i, ok in enumerate(runnable) if ok]
            groups = self._programs[key] = self._group(members, varying)
        return groups

    def _group(self, members: list[int], varying: tuple[str, ...]) -> list[tuple[list[int], Any]]:
        texts = self._texts_for(varying)
        groups: list[tuple[list[int], Any]] = []
        batch: list[int] = []
        size = 0
        for member in members:
            text = texts[member]
            if text is None:
                continue  # left to the exact path
            if batch and size + len(text) + 2 > GROUP_CHARS:
                groups.extend(self._compile(batch, texts, varying))
                batch, size = [], 0
            batch.append(member)
            size += len(text) + 2
        if batch:
            groups.extend(self._compile(batch, texts, varying))
        return groups

    def _texts_for(self, varying: tuple[str, ...]) -> list[str | None]:
        """Each policy's text reading the target's own values from its row (or the table)."""
        texts = self._rebound.get(varying)
        if texts is None:
            names = _row_names(varying)
            texts = self._rebound[varying] = [policy_text(p, names) for p in self._policies]
        return texts

    def _compile(
        self, members: list[int], texts: list[str | None], varying: tuple[str, ...]
    ) -> list[tuple[list[int], Any]]:
        program = self._program([texts[m] or "" for m in members])
        if program is not None:
            return [(members, program)]
        # Some policy does not compile once wrapped (nested too deeply): give each the text that
        # compiles on its own, bound or else inlined (the exact path still binds, doing no more
        # work than such a call), remember it for this shape, and fuse those again.
        left: list[tuple[list[int], Any]] = []
        fitting: list[int] = []
        for member in members:
            policy = self._policies[member]
            inlined = policy_text(policy, _row_names(varying), bind=False) if policy.bound else None
            for text in (texts[member], inlined):
                if text is not None and self._program([text]) is not None:
                    texts[member] = text
                    fitting.append(member)
                    break
            else:
                left.append(([member], None))  # left to the exact path
        program = self._program([texts[m] or "" for m in fitting]) if fitting else None
        if program is not None:
            return [(fitting, program), *left]
        return [([m], self._program([texts[m] or ""])) for m in fitting] + left

    def _program(self, texts: list[str]) -> Any | None:
        try:
            return self._backend.compile(f"{ROWS}.map({ROW}, [" + ",\n".join(texts) + "])")
        except CelCompileError:
            return None


def _row_names(varying: tuple[str, ...]) -> dict[str, str]:
    """Where a batch row's own values are read from."""
    return {n: f"{TABLE}[{ROW}.{n}]" if n in SHARED_BY_TARGETS else f"{ROW}.{n}" for n in varying}


def _pack(
    batch: list[dict[str, Any]], varying: tuple[str, ...], fields: dict[str, frozenset[str] | None]
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Rows holding each target's own values; a map several targets share goes in the table once.
    Maps carry only the fields the policies select (``selected_fields``): the runtime converts
    every value it is given, and a sign-off's policies read two fields of its version's map."""
    seen: dict[int, int] = {}
    table: list[Any] = []
    packed = []
    for row in batch:
        entry: dict[str, Any] = {}
        for name in varying:
            value = row[name]
            if name in SHARED_BY_TARGETS:
                index = seen.get(id(value))
                if index is None:
                    index = seen[id(value)] = len(table)
                    table.append(_project(value, fields.get(name)))
                entry[name] = index
            else:
                entry[name] = _project(value, fields.get(name))
        packed.append(entry)
    return table, packed


def _project(value: Any, fields: frozenset[str] | None) -> Any:
    if fields is None or not isinstance(value, dict):
        return value
    return {key: value[key] for key in fields if key in value}


def selected_fields(texts: Iterable[str]) -> dict[str, frozenset[str] | None]:
    """Per variable, the fields these expressions select from it (``version.stage``), or None
    when one uses the value otherwise (``size(version)``, ``version[k]``, ``version.all(...)``,
    ``fmt(version)``): then the whole value is needed.

    Selecting a field reads that field only, so a map with just the selected fields gives every
    expression the same values and the same errors (a field absent from both)."""
    fields: dict[str, set[str] | None] = {name: set() for name in VARIABLES}
    for text in texts:
        _select(text, fields)
    return {name: None if used is None else frozenset(used) for name, used in fields.items()}


def expression_texts(policy: CompiledPolicy) -> list[str]:
    """Every expression of a policy, as compiled (parameters and variables inlined)."""
    texts = [policy.match_source or ""]
    texts += [v.source for v in policy.variables]
    for validation in policy.validations:
        texts += [validation.source, validation.message_source or ""]
    return texts


def _select(text: str, fields: dict[str, set[str] | None]) -> None:
    tokens = [t for t in _TOKEN.finditer(text) if t.group("comment") is None]
    words = [t.group(0) for t in tokens] + ["", "", ""]
    for index, token in enumerate(tokens):
        name = token.group("ident")
        if name not in fields or (index and words[index - 1] == "."):
            continue  # not a variable, or a field of something else
        used = fields[name]
        if used is None:
            continue
        field = tokens[index + 2].group("ident") if index + 2 < len(tokens) else None
        if words[index + 1] == "." and field is not None and words[index + 3] != "(":
            used.add(field)
        else:
            fields[name] = None


def _only(runnable: tuple[bool, ...], members: list[int]) -> tuple[bool, ...]:
    chosen = set(members)
    return tuple(ok and i in chosen for i, ok in enumerate(runnable))
