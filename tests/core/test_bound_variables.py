"""Variables on cel-expr-python are bound (``cel.bind``, lazy): each is evaluated once, where it
is first used, instead of once per use as inlining does. Results are those of inlining (and of
cel-python, which inlines); only the work, and so the iteration budget spent, shrink.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policy_engine import engine, parsecache
from policy_engine.commands.check import Loaded, LoadOptions, ledger_rules, load_all
from policy_engine.engine import Facts, Settings, evaluate
from policy_engine.inline import bind_variables, bound, uses_reserved_names
from policy_engine.targets import build_targets
from tests.conftest import build_portfolio

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
HUNDRED = "[" + ", ".join(str(i) for i in range(100)) + "]"
FORTY = "[" + ", ".join(str(i) for i in range(40)) + "]"


def policy(policy_id: str, variables: list[tuple[str, str]], expression: str, message: str = "") -> str:
    lines = [
        "apiVersion: policy-engine/v1",
        "kind: Policy",
        f"metadata: {{id: {policy_id}, severity: error}}",
        "spec:",
        "  scope: version",
        "  variables:",
        *(f"    - {{name: {name}, expression: {json.dumps(text)}}}" for name, text in variables),
        "  validations:",
        f"    - expression: {json.dumps(expression)}",
        "      message: static message",
    ]
    if message:
        lines.append(f"      messageExpression: {json.dumps(message)}")
    return "\n".join(lines) + "\n"


# About 4,100 comprehension iterations: once is within cel-expr-python's 10,000, three times
# (inlined into each use) is not.
HEAVY = f"{HUNDRED}.map(a, {FORTY}.filter(b, a + b >= 0).size())"
POLICIES = {
    "heavy": policy(
        "t.heavy",
        [("sizes", HEAVY)],
        "size(variables.sizes) == 100 && variables.sizes[0] == 40 && variables.sizes[99] == 40",
    ),
    # ``broken`` cannot be evaluated (no such field) and is used only where it is not reached.
    "lazy": policy(
        "t.lazy",
        [("broken", "version.no_such_field == 1"), ("stage", "version.stage")],
        "variables.stage == 'production' || variables.broken",
        "'never shown ' + string(variables.broken)",
    ),
    # A macro binds a name of the engine's own kind: the variables are inlined instead.
    "reserved": policy(
        "t.reserved",
        [("count", "version.deployments.size()")],
        "[1, 2].all(pe_x, pe_x <= variables.count + 1)",
    ),
    # Twenty bindings nested around a sum run past the runtime's nesting limit: inlined instead.
    "deep": policy(
        "t.deep",
        [(f"v{i}", f"version.deployments.size() + {i}") for i in range(20)],
        " + ".join(f"variables.v{i}" for i in range(20)) + " == 0",
        "'sum ' + string(" + " + ".join(f"variables.v{i}" for i in range(20)) + ")",
    ),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return build_portfolio(tmp_path / "p", files={f"policies/{n}.yaml": t for n, t in POLICIES.items()})


def _load(root: Path, backend: str) -> Loaded:
    parsecache.configure(None)
    return load_all(
        LoadOptions(path=root, policy_dirs=(root / "policies",), builtin=False, backend=backend)  # type: ignore[arg-type]
    )


def _findings(loaded: Loaded, *, fuse: bool) -> dict[str, tuple[str, str]]:
    outcome = evaluate(
        build_targets(loaded.portfolio),
        loaded.policies,
        loaded.backend,
        Settings(AS_OF, "audit", keep_all=True),
        Facts(),
        loaded.portfolio.exceptions.exceptions,
        ledger_rules(loaded, "audit"),
        loaded.matchers,
        fuse=fuse,
    )
    return {f.policy_id: (f.status, f.message) for f in outcome.findings}


def test_which_policies_bind_their_variables(root: Path) -> None:
    by_id = {p.id: p for p in _load(root, "cpp").policies}
    assert by_id["t.heavy"].bound is not None
    assert by_id["t.lazy"].bound is not None
    assert by_id["t.reserved"].bound is None
    assert by_id["t.deep"].bound is None
    assert all(p.bound is None for p in _load(root, "python").policies)  # cel-python inlines


def test_a_variable_is_evaluated_once_however_often_it_is_used(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inlined three times, ``sizes`` would run past the iteration budget; bound, it is
    evaluated once, on the exact path and in the fused call alike."""
    monkeypatch.setattr(engine, "FUSE_FROM", 1)
    loaded = _load(root, "cpp")
    exact, fused = _findings(loaded, fuse=False), _findings(loaded, fuse=True)
    assert exact == fused
    assert exact["t.heavy"] == ("pass", "static message")


@pytest.mark.parametrize("backend", ["cpp", "python"])
def test_bound_and_inlined_variables_give_the_same_findings(
    root: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setattr(engine, "FUSE_FROM", 1)
    loaded = _load(root, backend)
    found = _findings(loaded, fuse=backend == "cpp")
    assert found["t.lazy"] == ("pass", "static message")  # the broken variable never evaluated
    assert found["t.reserved"] == ("pass", "static message")
    assert found["t.deep"] == ("fail", "sum 210")


def test_bind_variables_binds_only_what_is_used_directly_or_through_another() -> None:
    variables = [("a", "1"), ("b", "2"), ("c", "pe_v_a + 1")]
    text = bound("variables.c > params.floor", {"floor": 1}, ["a", "b", "c"])
    assert text == "pe_v_c > 1.0"
    assert (
        bind_variables(text, variables) == "cel.bind(pe_v_a, 1, cel.bind(pe_v_c, pe_v_a + 1, pe_v_c > 1.0))"
    )
    assert bind_variables("'pe_v_b' + x", variables) == "'pe_v_b' + x"  # a string is not a use


@pytest.mark.parametrize(
    ("text", "reserved"),
    [
        ("xs.all(pe_x, pe_x > 1)", True),
        ("pe_v_a", True),
        ("'pe_x' + a.pe_x", False),  # a string and a field
        ("version.stage", False),
    ],
)
def test_reserved_names_are_found_outside_strings_and_fields(text: str, reserved: Any) -> None:
    assert uses_reserved_names(text) is reserved
