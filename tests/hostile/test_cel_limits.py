"""CEL limits: every evaluation is bounded, per expression and per policy on one target (like
Kubernetes' CEL budgets); a policy that runs out becomes an error finding naming the policy and
the target while the others still run; recursion never crashes the process; a failing
``messageExpression`` falls back to ``message``.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policy_engine import cel
from policy_engine.cel import Budget, CelCompileError, CelEvalError, CppBackend, Meter, PythonBackend
from tests.conftest import build_portfolio
from tests.hostile.conftest import assert_contract, check_args, run_for_real, run_in_process

HUNDRED = "[" + ", ".join(str(i) for i in range(100)) + "]"
NINETY_NINE = "[" + ", ".join(str(i) for i in range(99)) + "]"
# 100 × 100 iterations: past cel-expr-python's 10,000; about 2 s in cel-python.
TWO_DEEP = f"{HUNDRED}.all(a, {HUNDRED}.all(b, a + b >= 0))"
# 100 × 100 × 100: minutes in cel-python without a budget.
THREE_DEEP = f"{HUNDRED}.all(a, {HUNDRED}.all(b, {HUNDRED}.all(c, a + b + c >= 0)))"
# 99 × 100 = 9,900 iterations: within cel-expr-python's budget, a few milliseconds.
JUST_UNDER = f"{NINETY_NINE}.all(a, {HUNDRED}.all(b, a + b >= 0))"
# 20 × 10 = 200 iterations: about 0.04 s in cel-python.
MEDIUM = f"{list(range(20))}.all(a, {list(range(10))}.all(b, a + b >= 0))"


def policy_file(policy_id: str, validations: list[str], *, messages: list[str] | None = None) -> str:
    lines = [
        "apiVersion: policy-engine/v1",
        "kind: Policy",
        f"metadata: {{id: {policy_id}, severity: error}}",
        "spec:",
        "  scope: version",
        "  variables:",
        "    - {name: stage, expression: version.stage}",
        "  validations:",
    ]
    for index, expression in enumerate(validations):
        lines.append(f"    - name: v{index}")
        lines.append(f"      expression: {json.dumps(expression)}")
        lines.append(f"      message: static message {index}")
        if messages and index < len(messages):
            lines.append(f"      messageExpression: {json.dumps(messages[index])}")
    return "\n".join(lines) + "\n"


LIGHT = policy_file("acme.light", ["version.stage == 'retired'"])


def _portfolio(tmp_path: Path, policies: dict[str, str]) -> Path:
    return build_portfolio(
        tmp_path / "p", files={f"policies/{name}.yaml": text for name, text in policies.items()}
    )


def _findings(result: Any) -> dict[tuple[str, str], dict[str, Any]]:
    report = json.loads(result.stdout)
    return {(f["policy_id"], f["validation"]): f for f in report["findings"]}


@pytest.mark.parametrize("backend", ["cpp", "python"])
def test_an_expression_past_its_budget_is_an_error_naming_policy_and_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setattr(cel, "DEFAULT_BUDGET", Budget(expression=0.2, policy=1.0))
    root = _portfolio(tmp_path, {"heavy": policy_file("acme.heavy", [THREE_DEEP]), "light": LIGHT})
    started = time.perf_counter()
    result = run_in_process(*check_args(root, "--no-builtin", "--cel-backend", backend))
    assert time.perf_counter() - started < 5
    assert_contract(result)
    assert result.code == 1  # an error finding blocks (fail closed)
    found = _findings(result)
    heavy = found[("acme.heavy", "v0")]
    assert heavy["status"] == "error"
    assert heavy["target"] == "m@1"
    assert heavy["message"].startswith(
        "acme.heavy could not be evaluated on m@1: exceeded the evaluation budget"
    )
    expected = "10,000 comprehension iterations" if backend == "cpp" else "0.2 s per expression"
    assert expected in heavy["message"]
    assert "cheaper" in heavy["remediation"]
    assert found[("acme.light", "v0")]["status"] == "fail"  # the run went on with the others


def test_the_real_cli_bounds_cel_python_with_its_default_budget(tmp_path: Path) -> None:
    """Minutes of work without a budget; the default per-expression budget stops it in a second."""
    root = _portfolio(tmp_path, {"heavy": policy_file("acme.heavy", [THREE_DEEP]), "light": LIGHT})
    started = time.perf_counter()
    result = run_for_real(*check_args(root, "--no-builtin", "--cel-backend", "python"), timeout=60)
    assert time.perf_counter() - started < 20
    assert_contract(result)
    heavy = _findings(result)[("acme.heavy", "v0")]
    assert heavy["status"] == "error"
    assert "exceeded the evaluation budget (1 s per expression)" in heavy["message"]


@pytest.mark.parametrize(
    ("backend", "budget", "expression", "count"),
    [
        ("python", Budget(expression=1.0, policy=0.2), MEDIUM, 40),
        ("cpp", Budget(expression=1.0, policy=0.01), JUST_UNDER, 60),
    ],
)
def test_a_policy_past_its_budget_stops_on_that_target(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    budget: Budget,
    expression: str,
    count: int,
) -> None:
    """Each validation is affordable alone; together they exceed the policy's budget."""
    monkeypatch.setattr(cel, "DEFAULT_BUDGET", budget)
    root = _portfolio(tmp_path, {"many": policy_file("acme.many", [expression] * count), "light": LIGHT})
    result = run_in_process(*check_args(root, "--no-builtin", "--all", "--cel-backend", backend))
    assert_contract(result)
    found = _findings(result)
    statuses = [found[("acme.many", f"v{i}")]["status"] for i in range(count)]
    assert statuses[0] == "pass"
    assert statuses[-1] == "error"
    assert statuses == sorted(statuses, key=lambda s: s == "error"), "once spent, the rest are errors"
    last = found[("acme.many", f"v{count - 1}")]
    assert f"exceeded the evaluation budget ({budget.policy:g} s per policy and target)" in last["message"]
    assert last["target"] == "m@1"
    assert found[("acme.light", "v0")]["status"] == "fail"


def test_each_target_has_its_own_policy_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = CppBackend(Budget(expression=1.0, policy=0.05))
    program = backend.compile(JUST_UNDER)
    activation = backend.activation({"now": datetime(2025, 1, 1, tzinfo=UTC)})
    spent = Meter(backend.budget)
    spent.spent = 1.0
    with pytest.raises(cel.BudgetExceeded, match="per policy and target"):
        backend.evaluate(program, activation, spent)
    assert backend.evaluate(program, activation, Meter(backend.budget)) is True


def test_recursion_never_crashes_the_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cel, "DEFAULT_BUDGET", Budget(expression=0.5, policy=1.0))
    negations = "!" * 4000 + "true"
    root = _portfolio(tmp_path, {"deep": policy_file("acme.deep", [negations]), "light": LIGHT})
    for backend in ("cpp", "python"):
        result = run_in_process(*check_args(root, "--no-builtin", "--all", "--cel-backend", backend))
        assert_contract(result)
        deep = _findings(result)[("acme.deep", "v0")]
        assert deep["status"] in ("pass", "error"), deep
        if deep["status"] == "error":
            assert "nests too deeply" in deep["message"]
        assert _findings(result)[("acme.light", "v0")]["status"] == "fail"


def test_deep_parentheses_are_a_located_compile_error(tmp_path: Path) -> None:
    parentheses = "(" * 200 + "true" + ")" * 200
    root = _portfolio(tmp_path, {"deep": policy_file("acme.deep", [parentheses])})
    result = run_in_process(*check_args(root, "--no-builtin"))
    assert_contract(result)
    assert result.code == 2
    assert "policies/deep.yaml:10:" in result.stderr
    assert "recursion limit" in result.stderr


def test_cel_python_alone_refuses_what_cannot_be_compiled() -> None:
    """Without cel-expr-python's checker in front, cel-python's own limits still hold."""
    backend = PythonBackend()
    with pytest.raises(CelCompileError, match="above the 100,000 limit"):
        backend.compile("[" + ", ".join(["1"] * 60_000) + "].size() > 0")
    for text in ("(" * 3000 + "true" + ")" * 3000, "!" * 20_000 + "true"):
        try:
            program = backend.compile(text)
        except CelCompileError:
            continue
        with pytest.raises(CelEvalError):
            backend.evaluate(program, backend.activation({"now": datetime(2025, 1, 1, tzinfo=UTC)}))


def test_variables_that_double_each_other_are_refused_before_they_are_built(tmp_path: Path) -> None:
    """Inlining ``variables`` multiplies text; 40 doublings would be a terabyte."""
    lines = [
        "apiVersion: policy-engine/v1",
        "kind: Policy",
        "metadata: {id: acme.doubling, severity: error}",
        "spec:",
        "  scope: version",
        "  variables:",
        "    - {name: v0, expression: \"'xxxxxxxxxxxxxxxx'\"}",
    ]
    lines += [
        f"    - {{name: v{i}, expression: variables.v{i - 1} + variables.v{i - 1}}}" for i in range(1, 41)
    ]
    lines += ["  validations:", "    - {expression: size(variables.v40) > 0, message: long}"]
    root = _portfolio(tmp_path, {"doubling": "\n".join(lines) + "\n"})
    started = time.perf_counter()
    result = run_in_process(*check_args(root, "--no-builtin"))
    assert time.perf_counter() - started < 5
    assert_contract(result)
    assert result.code == 2
    assert "once params and variables are inlined, above the 100,000 limit" in result.stderr
    assert "policies/doubling.yaml:" in result.stderr


@pytest.mark.parametrize("backend", ["cpp", "python"])
@pytest.mark.parametrize(
    "message_expression",
    [
        "string(1 / 0)",  # fails
        "version.no_such_field",  # missing field
        "'two\\nlines'",  # more than one line
        "'bell \\u0007 and escape \\u001b[31m'",  # control characters
        "'   '",  # blank
        TWO_DEEP + " ? 'a' : 'b'",  # out of budget
    ],
    ids=["error", "missing-field", "multi-line", "control-characters", "blank", "over-budget"],
)
def test_a_failing_message_expression_falls_back_to_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, message_expression: str
) -> None:
    monkeypatch.setattr(cel, "DEFAULT_BUDGET", Budget(expression=0.2, policy=1.0))
    text = policy_file("acme.msg", ["version.stage == 'retired'"], messages=[message_expression])
    root = _portfolio(tmp_path, {"msg": text})
    result = run_in_process(*check_args(root, "--no-builtin", "--cel-backend", backend))
    assert_contract(result)
    finding = _findings(result)[("acme.msg", "v0")]
    assert (finding["status"], finding["message"]) == ("fail", "static message 0")


def test_a_good_message_expression_is_used(tmp_path: Path) -> None:
    text = policy_file("acme.msg", ["version.stage == 'retired'"], messages=["'stage is ' + version.stage"])
    result = run_in_process(*check_args(_portfolio(tmp_path, {"msg": text}), "--no-builtin"))
    assert _findings(result)[("acme.msg", "v0")]["message"] == "stage is production"


def test_an_exception_match_past_its_budget_waives_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cel, "DEFAULT_BUDGET", Budget(expression=0.2, policy=1.0))
    exceptions = {
        "exceptions": [
            {
                "id": "EXC-1",
                "policy": "acme.light",
                "match": THREE_DEEP,
                "reason": "A selector that never finishes",
                "created_at": "2025-06-20T00:00:00Z",
                "expires_at": "2025-07-20T00:00:00Z",
                "signoffs": [
                    {"role": "platform", "by": "pat", "at": "2025-06-20T00:00:00Z"},
                    {"role": "finance", "by": "fin", "at": "2025-06-20T00:00:00Z"},
                ],
            }
        ]
    }
    root = build_portfolio(
        tmp_path / "p", files={"policies/light.yaml": LIGHT, "exceptions.yaml": exceptions}
    )
    for backend in ("cpp", "python"):
        result = run_in_process(*check_args(root, "--no-builtin", "--cel-backend", backend))
        assert_contract(result)
        assert _findings(result)[("acme.light", "v0")]["status"] == "fail"


def test_the_budget_timer_restores_the_callers_timer_and_handler() -> None:
    fired: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        fired.append(signum)

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        backend = PythonBackend(Budget(expression=0.1, policy=1.0))
        program = backend.compile(THREE_DEEP)
        activation = backend.activation({"now": datetime(2025, 1, 1, tzinfo=UTC)})
        with pytest.raises(cel.BudgetExceeded):
            backend.evaluate(program, activation)
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25.0 < remaining <= 30.0
        assert signal.getsignal(signal.SIGALRM) is handler
        assert not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_an_alarm_firing_as_soon_as_it_is_armed_still_restores_the_callers_timer() -> None:
    """On a loaded machine the interrupt can land right after the timer is armed; a deadline
    of a microsecond makes that happen every time."""

    def handler(signum: int, frame: Any) -> None:
        raise AssertionError("the caller's alarm fired")

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        for _ in range(200):
            signal.setitimer(signal.ITIMER_REAL, 30.0)
            with contextlib.suppress(cel._Timeout):
                cel._bounded(1e-6, sum, range(50))
            assert signal.getsignal(signal.SIGALRM) is handler
            assert 25.0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 30.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class _SlowName(str):
    """Compares in Python, like lark's tokens: a name the interpreter looks up on a type."""

    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        _spin(0.3)  # the alarm rings in here
        return str.__eq__(self, other)


class _Holder:
    __slots__ = ()
    attribute = 1


def _lookup_then_spin(name: str) -> None:
    # CPython drops the exception raised in ``__eq__`` during the lookup on the type...
    assert getattr(_Holder(), name, "lost") == "lost"
    _spin(5)  # ...so a one-shot alarm would let this run to its end


def test_an_alarm_lost_inside_the_interpreter_rings_again() -> None:
    started = time.perf_counter()
    with pytest.raises(cel._Timeout):
        cel._bounded(0.05, _lookup_then_spin, _SlowName("attribute"))
    assert time.perf_counter() - started < 2
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL


def test_evaluation_outside_the_main_thread_is_still_bounded_afterwards() -> None:
    """No timer there (signals belong to the main thread); the overrun is still an error."""
    backend = PythonBackend(Budget(expression=0.05, policy=1.0))
    program = backend.compile(f"{HUNDRED}.all(a, [1, 2, 3, 4, 5, 6, 7, 8].all(b, a + b >= 0))")
    activation = backend.activation({"now": datetime(2025, 1, 1, tzinfo=UTC)})
    outcome: list[BaseException | Any] = []

    def work() -> None:
        try:
            outcome.append(backend.evaluate(program, activation))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(60)
    assert len(outcome) == 1
    assert outcome[0] is True or isinstance(outcome[0], cel.BudgetExceeded)
