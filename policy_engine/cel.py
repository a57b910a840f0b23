"""The only module that imports a CEL runtime: cel-expr-python (``cpp``) and cel-python (``python``).

Both runtimes see the same plain JSON-like data and the same small table of functions:

| function        | meaning                                                        |
|-----------------|----------------------------------------------------------------|
| ``days(n)``     | a duration of ``n`` days (CEL durations have no day unit)      |
| ``to_days(d)``  | a duration as a number of days (double)                        |
| ``fmt(x)``      | a value for messages: ``58.6d``, ``48,151``, ``2025-06-30 00:00 UTC``, lists joined |

Policies stay in the subset both runtimes implement: every expression is also checked by
cel-expr-python's type checker (no extensions), whichever backend evaluates it.
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any, Literal

BackendName = Literal["cpp", "python"]

# Every variable a policy may reference; all are always bound ({} when not applicable).
VARIABLES = (
    "now",
    "portfolio",
    "model",
    "version",
    "deployment",
    "signoff",
    "exception",
    "endpoint",
    "roster",
    "teams",
    "measured",
    "history",
    "old",
    "change",
)
# Names that exist only while checking the authored text; the engine inlines them.
INLINED = ("params", "variables")
# Names the engine binds when it decides many targets in one call (policy_engine.fusion).
BATCH_NAMES = ("pe_rows", "pe_table")


class CelCompileError(Exception):
    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"{line}:{column}: {message}")
        self.line = line
        self.column = column
        self.message = message


class CelEvalError(Exception):
    """An expression could not be evaluated (missing key, wrong type, overflow...)."""


class BudgetExceeded(CelEvalError):
    """An evaluation ran past its budget; the message says "exceeded the evaluation budget"."""


# ---------------------------------------------------------------------------- evaluation budget

# cel-expr-python's own limit: it stops an evaluation after this many comprehension iterations.
CPP_ITERATIONS = 10_000
# Expressions longer than this are refused at compile time (cel-expr-python's codepoint limit,
# applied to cel-python too so that both backends accept the same policies).
MAX_EXPRESSION_CHARS = 100_000


@dataclass(frozen=True, slots=True)
class Budget:
    """How long CEL may run, like Kubernetes' CEL budgets (per call, and per policy binding).

    ``expression``: seconds one evaluation may take. cel-python, a tree-walking interpreter, is
    interrupted when its time is up; cel-expr-python cannot be interrupted, but its iteration
    budget (``CPP_ITERATIONS``) bounds every evaluation, and one that still took longer than
    ``expression`` counts as exceeding the budget once it returns.
    ``policy``: seconds all evaluations of one policy on one target may take together (match,
    validations, messages and the variable values reported with a finding); see ``Meter``.
    Both are far above what a real policy needs (microseconds to milliseconds).
    """

    expression: float = 1.0
    policy: float = 5.0


DEFAULT_BUDGET = Budget()


class Meter:
    """What one policy has left of its budget on one target; each evaluation draws on it."""

    __slots__ = ("budget", "spent")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.spent = 0.0

    @property
    def left(self) -> float:
        return self.budget.policy - self.spent


def _exceeded(what: str) -> BudgetExceeded:
    return BudgetExceeded(f"exceeded the evaluation budget ({what})")


def _seconds(value: float) -> str:
    return f"{value:g} s"


class _Timeout(BaseException):
    """Raised inside cel-python by the alarm. A BaseException, so that no ``except Exception``
    inside the interpreter can swallow it."""


# Past the deadline the alarm rings again every _REPEAT seconds until the work stops: CPython
# drops an exception raised while it looks up an attribute on a type (lark's tokens compare in
# Python, so the handler can run there), and a one-shot alarm lost that way let an
# evaluation run on for minutes.
_REPEAT = 0.01


class _Alarm:
    """SIGALRM through ``setitimer``: main thread only, and never over a caller's timer that
    would ring first (then nothing is interrupted and accounting after the fact applies)."""

    __slots__ = ("_outer", "_previous", "_started", "armed")

    def __init__(self) -> None:
        self.armed = False
        self._previous: Any = None

    def arm(self, seconds: float) -> None:
        if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
            return
        self._outer = signal.getitimer(signal.ITIMER_REAL)
        if 0 < self._outer[0] <= seconds:
            return
        self._started = perf_counter()
        self._previous = signal.signal(signal.SIGALRM, self._ring)
        self.armed = True
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-6), _REPEAT)

    def _ring(self, signum: int, frame: Any) -> None:
        if self.armed:
            raise _Timeout

    def restore(self) -> None:
        """Give back the caller's handler and what is left of its timer. Only once ``armed``
        is false: from then on a ring raises nothing."""
        if self._previous is None:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous)
        left, interval = self._outer
        if left > 0:
            signal.setitimer(signal.ITIMER_REAL, max(left - (perf_counter() - self._started), 1e-6), interval)


def _bounded(seconds: float, work: Callable[[Any], Any], argument: Any) -> Any:
    """``work(argument)``, interrupted with ``_Timeout`` after ``seconds`` (see ``_Alarm``)."""
    alarm = _Alarm()
    try:
        alarm.arm(seconds)
        return work(argument)
    finally:
        # First thing, and a plain attribute store: Python runs signal handlers only at calls
        # and backward jumps, so no ring can land between here and the store, and none raises
        # after it. The caller's timer and handler are then restored whatever happened above.
        alarm.armed = False
        alarm.restore()


def _limit(budget: Budget, meter: Meter | None) -> tuple[float, str]:
    """Seconds this evaluation may take, and which budget that is."""
    if meter is not None and meter.left < budget.expression:
        return meter.left, f"{_seconds(budget.policy)} per policy and target"
    return budget.expression, f"{_seconds(budget.expression)} per expression"


def _charge(meter: Meter | None, elapsed: float) -> None:
    if meter is not None:
        meter.spent += elapsed


def _overran(budget: Budget, meter: Meter | None, elapsed: float) -> None:
    """An evaluation that finished past either budget is an error all the same."""
    if meter is not None and meter.left < 0:
        raise _exceeded(f"{_seconds(budget.policy)} per policy and target")
    if elapsed > budget.expression:
        raise _exceeded(f"{_seconds(budget.expression)} per expression")


# ---------------------------------------------------------------------------- shared functions


def days(n: float) -> timedelta:
    return timedelta(days=float(n))


def to_days(d: timedelta) -> float:
    return d.total_seconds() / 86400.0


def fmt(value: Any) -> str:
    """Render a value for a human message, the same way on both backends."""
    exact = _FORMATTERS.get(type(value))
    if exact is not None:
        return exact(value)
    if isinstance(value, bool):
        return _fmt_bool(value)
    if isinstance(value, timedelta):
        return _fmt_duration(value)
    if isinstance(value, datetime):
        return _fmt_timestamp(value)
    if isinstance(value, list | tuple):
        return _fmt_list(value)
    if isinstance(value, int):
        return _fmt_int(value)
    if isinstance(value, float):
        return _fmt_double(value)
    return str(value)


# One function per kind of value: the C++ runtime calls the one of the overload it picked, and
# ``fmt`` the one of the value's exact type (messages call it ~100,000 times on 10,000 versions).


def _fmt_bool(value: bool) -> str:
    return "true" if value else "false"


def _fmt_duration(value: timedelta) -> str:
    total = value.total_seconds()
    sign = "-" if total < 0 else ""
    total = abs(total)
    if total >= 86400:
        return f"{sign}{total / 86400:.1f}d"
    if total >= 3600:
        return f"{sign}{total / 3600:.1f}h"
    return f"{sign}{total:.0f}s"


def _fmt_timestamp(value: datetime) -> str:
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # By field, not strftime: faster, and %Y would write the year 1 as "1".
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d} UTC"


def _fmt_list(value: list[Any] | tuple[Any, ...]) -> str:
    return ", ".join(fmt(v) for v in value)


def _fmt_int(value: int) -> str:
    return f"{value:,}"


def _fmt_double(value: float) -> str:
    if value.is_integer() and abs(value) >= 1000:
        return f"{value:,.0f}"
    if value.is_integer():
        return f"{value:.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) >= 1 else f"{value:.3g}"


_FORMATTERS: dict[type, Callable[[Any], str]] = {
    bool: _fmt_bool,
    int: _fmt_int,
    float: _fmt_double,
    str: str,
    timedelta: _fmt_duration,
    datetime: _fmt_timestamp,
    list: _fmt_list,
    tuple: _fmt_list,
}


# ---------------------------------------------------------------------------- error texts

_KEY_CPP = re.compile(r'Key not found in map : "?([^"]*)"?')
_KEY_PY = re.compile(r"no such member in mapping: '([^']*)'")


def explain_error(raw: str) -> str:
    """One wording for evaluation errors, whichever runtime raised them."""
    if "iteration budget exceeded" in raw.lower():
        return f"exceeded the evaluation budget ({CPP_ITERATIONS:,} comprehension iterations per expression)"
    if "recursion" in raw.lower() and ("depth" in raw.lower() or "limit" in raw.lower()):
        return "the expression nests too deeply to evaluate (recursion limit)"
    for pattern in (_KEY_CPP, _KEY_PY):
        match = pattern.search(raw)
        if match:
            return f"missing field '{match.group(1)}'"
    overload = _overload(raw)
    if overload:
        return f"no such function or operator: {overload}"
    if "overload" in raw.lower():
        return "no such function or operator for these argument types (" + raw.split(":")[-1].strip() + ")"
    if "division by zero" in raw.lower() or "divide by zero" in raw.lower():
        return "division by zero"
    return raw.strip().splitlines()[0] if raw.strip() else "evaluation error"


_OVERLOAD_CPP = re.compile(r"No matching overloads found : (\S+)\((.*)\)")
_OVERLOAD_PY = re.compile(r"no matching overload for Token\('RULE', '(\w+)'\) applied to '\((.*)\)'")
_PY_TYPE = re.compile(r"<class '(?:[\w.]*\.)?(\w+?)(?:Type)?'>")
_PY_OPERATORS = {
    "addition_add": "_+_",
    "addition_sub": "_-_",
    "multiplication_mul": "_*_",
    "multiplication_div": "_/_",
    "multiplication_mod": "_%_",
    "relation_eq": "_==_",
    "relation_ne": "_!=_",
    "relation_lt": "_<_",
    "relation_le": "_<=_",
    "relation_gt": "_>_",
    "relation_ge": "_>=_",
    "relation_in": "@in",
}
_CPP_TYPES = {"int64": "int", "uint64": "uint", "null_type": "null", "none": "null"}


def _overload(raw: str) -> str | None:
    """``_+_(int, double)`` from either runtime's "no matching overload" text, else None."""
    match = _OVERLOAD_CPP.search(raw)
    if match:
        types = [_CPP_TYPES.get(t.strip(), t.strip()) for t in match.group(2).split(",") if t.strip()]
        return f"{match.group(1)}({', '.join(types)})"
    match = _OVERLOAD_PY.search(raw)
    if match and match.group(1) in _PY_OPERATORS:
        types = [_CPP_TYPES.get(t.lower(), t.lower()) for t in _PY_TYPE.findall(match.group(2))]
        return f"{_PY_OPERATORS[match.group(1)]}({', '.join(types)})"
    return None


_CPP_ERROR = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")


def _cpp_compile_error(exc: Exception) -> CelCompileError:
    match = _CPP_ERROR.search(str(exc))
    if match:
        message = match.group(3).strip().removesuffix("[INVALID_ARGUMENT]").strip()
        return CelCompileError(int(match.group(1)), int(match.group(2)), message)
    return CelCompileError(1, 1, str(exc).strip().splitlines()[0])


# ---------------------------------------------------------------------------- backends


# Features one runtime has and the other lacks, as authors tend to reach for them, and what
# to write instead so that a policy gives the same findings on both.
_NOT_PORTABLE = (
    (re.compile(r"\bcel\s*\.\s*bind\s*\("), "cel.bind", "declare a variable under spec.variables"),
    (re.compile(r"\.\s*\?|\[\s*\?"), "optional field syntax", "guard the field with has()"),
    (re.compile(r"\.\s*format\s*\("), "string format()", "join with + and fmt()"),
)


def portability_hint(text: str) -> str | None:
    """What to write instead, when ``text`` uses a CEL feature outside the portable subset."""
    for pattern, feature, instead in _NOT_PORTABLE:
        if pattern.search(text):
            return f"CEL both runtimes support: {feature} is not part of it; {instead}"
    return None


@dataclass
class Checker:
    """cel-expr-python's parser and type checker over the authored expression."""

    env: Any

    @classmethod
    def create(cls) -> Checker | None:
        try:
            from cel_expr_python import cel
        except ImportError:
            return None
        names = dict.fromkeys((*VARIABLES, *INLINED), cel.Type.DYN)
        names["now"] = cel.Type.TIMESTAMP
        return cls(cel.NewEnv(variables=names, functions=_cpp_functions(cel)))

    def check(self, source: str, want: Literal["bool", "string", "any"]) -> None:
        try:
            program = self.env.compile(source)
        except RuntimeError as exc:
            raise _cpp_compile_error(exc) from None
        if want == "any":
            return
        kind = str(program.return_type()).rsplit(".", 1)[-1].upper()
        expected = "BOOL" if want == "bool" else "STRING"
        if kind not in (expected, "DYN"):
            raise CelCompileError(1, 1, f"expression gives {kind.lower()}, expected {want}")


def _cpp_functions(cel: Any) -> list[Any]:
    t = cel.Type
    fmt_overloads = [
        cel.Overload(f"fmt_{name}", return_type=t.STRING, parameters=[typ], impl=impl)
        for name, typ, impl in (
            ("int", t.INT, _fmt_int),
            ("uint", t.UINT, fmt),
            ("double", t.DOUBLE, _fmt_double),
            ("string", t.STRING, str),
            ("bool", t.BOOL, _fmt_bool),
            ("duration", t.DURATION, _fmt_duration),
            ("timestamp", t.TIMESTAMP, _fmt_timestamp),
            ("list", t.LIST, _fmt_list),
        )
    ]
    return [
        cel.FunctionDecl(
            "days",
            [
                cel.Overload("days_int", return_type=t.DURATION, parameters=[t.INT], impl=days),
                cel.Overload("days_double", return_type=t.DURATION, parameters=[t.DOUBLE], impl=days),
            ],
        ),
        cel.FunctionDecl(
            "to_days",
            [cel.Overload("to_days_duration", return_type=t.DOUBLE, parameters=[t.DURATION], impl=to_days)],
        ),
        cel.FunctionDecl("fmt", fmt_overloads),
    ]


class CppBackend:
    """cel-expr-python: Google's C++ CEL runtime. One Activation per target, reused."""

    name: BackendName = "cpp"

    def __init__(self, budget: Budget | None = None) -> None:
        from cel_expr_python import cel

        self.budget = budget or DEFAULT_BUDGET
        self._cel = cel
        # Authored expressions are checked without BATCH_NAMES (see Checker), so cannot reach them.
        names = dict.fromkeys((*VARIABLES, *BATCH_NAMES), cel.Type.DYN)
        names["now"] = cel.Type.TIMESTAMP
        # cel.bind (lazy) for the engine's bound variables; authored text is checked without it.
        from cel_expr_python.ext import ext_bindings

        self._env = cel.NewEnv(
            variables=names, functions=_cpp_functions(cel), extensions=[ext_bindings.ExtBindings()]
        )
        self._error = cel.Type.ERROR

    def compile(self, source: str) -> Any:
        try:
            return self._env.compile(source)
        except RuntimeError as exc:
            raise _cpp_compile_error(exc) from None

    def activation(self, data: dict[str, Any]) -> Any:
        return self._env.Activation(data=data)

    def evaluate(self, program: Any, activation: Any, meter: Meter | None = None) -> Any:
        """The value of ``program``; ``meter`` is the budget its policy has left on this target.

        The runtime's iteration budget bounds each call; time is charged afterwards."""
        if meter is not None and meter.spent >= self.budget.policy:
            raise _exceeded(f"{_seconds(self.budget.policy)} per policy and target")
        started = perf_counter()
        try:
            value = program.eval(activation)
        except RuntimeError as exc:  # budget, recursion and other runtime failures
            _charge(meter, perf_counter() - started)
            raise CelEvalError(explain_error(str(exc))) from None
        elapsed = perf_counter() - started  # inline: this is the hot path
        if meter is not None:
            meter.spent += elapsed
            if meter.spent > self.budget.policy or elapsed > self.budget.expression:
                _overran(self.budget, meter, elapsed)
        elif elapsed > self.budget.expression:
            _overran(self.budget, meter, elapsed)
        if value.type() == self._error:
            raise CelEvalError(explain_error(str(value.value())))
        return value.plain_value()


class PythonBackend:
    """cel-python's tree-walking interpreter: the reference, and the fallback without wheels."""

    name: BackendName = "python"

    def __init__(self, budget: Budget | None = None) -> None:
        import celpy
        from celpy import celtypes

        self.budget = budget or DEFAULT_BUDGET
        self._celpy: Any = celpy
        self._types = celtypes
        self._env = celpy.Environment()
        self._functions: dict[str, Any] = {
            "days": lambda n: celtypes.DurationType(seconds=int(float(n) * 86400)),
            "to_days": lambda d: celtypes.DoubleType(
                timedelta(seconds=d.total_seconds()).total_seconds() / 86400.0
            ),
            "fmt": lambda x: celtypes.StringType(fmt(self._plain(x))),
        }

    def compile(self, source: str) -> Any:
        if len(source) > MAX_EXPRESSION_CHARS:  # the same limit as cel-expr-python's
            raise CelCompileError(
                1, 1, f"expression is {len(source):,} characters, above the {MAX_EXPRESSION_CHARS:,} limit"
            )
        try:
            ast = self._env.compile(source)
        except self._celpy.CELParseError as exc:
            line = getattr(exc, "line", None) or 1
            column = (getattr(exc, "column", None) or 0) + 1
            raise CelCompileError(line, column, str(exc.args[0]).splitlines()[0] or "syntax error") from None
        except RecursionError:
            raise CelCompileError(1, 1, "expression nests too deeply to compile") from None
        return self._env.program(ast, functions=self._functions)

    def activation(self, data: dict[str, Any]) -> Any:
        converted: dict[str, Any] = {}
        for name, value in data.items():
            if name == "now":
                converted[name] = self._types.TimestampType(value)
            else:
                converted[name] = self._celpy.json_to_cel(value)
        return converted

    def evaluate(self, program: Any, activation: Any, meter: Meter | None = None) -> Any:
        """The value of ``program``; ``meter`` is the budget its policy has left on this target.

        cel-python has no budget of its own: the interpreter is interrupted when this call's
        share of the budget runs out (see ``_Alarm``), and time is charged afterwards."""
        limit, what = _limit(self.budget, meter)
        if limit <= 0:
            raise _exceeded(what)
        started = perf_counter()
        try:
            value = _bounded(limit, program.evaluate, activation)
        except _Timeout:
            raise _exceeded(what) from None
        except Exception as exc:
            # The interrupt can land where cel-python turns it into an error of its own (seen:
            # "no such function _>=_(int, list)"): past the deadline, it is the budget.
            if perf_counter() - started >= limit:
                raise _exceeded(what) from None
            if isinstance(exc, self._celpy.CELEvalError):
                raise CelEvalError(explain_error(str(exc.args[0]) if exc.args else str(exc))) from None
            # cel-python lets internal errors escape (IndexError on `error && error`,
            # RecursionError on deep nesting...): each is an evaluation error, never a crash.
            raise CelEvalError(explain_error(str(exc) or type(exc).__name__)) from None
        finally:
            elapsed = perf_counter() - started
            _charge(meter, elapsed)
        _overran(self.budget, meter, elapsed)
        if elapsed >= limit and isinstance(value, self._celpy.CELEvalError):
            raise _exceeded(what)
        if isinstance(value, self._celpy.CELEvalError):
            raise CelEvalError(explain_error(str(value.args[0]) if value.args else str(value)))
        return self._plain(value)

    def _plain(self, value: Any) -> Any:
        t = self._types
        if isinstance(value, t.BoolType):
            return bool(value)
        if isinstance(value, t.IntType | t.UintType):
            return int(value)
        if isinstance(value, t.DoubleType):
            return float(value)
        if isinstance(value, t.StringType):
            return str(value)
        if isinstance(value, t.DurationType):
            return timedelta(seconds=value.total_seconds())
        if isinstance(value, t.TimestampType):
            return datetime.fromtimestamp(value.timestamp(), tz=UTC)
        if isinstance(value, t.ListType):
            return [self._plain(v) for v in value]
        if isinstance(value, t.MapType):
            return {self._plain(k): self._plain(v) for k, v in value.items()}
        if value is None or isinstance(value, t.NullType):
            return None
        return value


Backend = CppBackend | PythonBackend


def create_backend(choice: Literal["auto", "cpp", "python"], budget: Budget | None = None) -> Backend:
    """``auto`` prefers cel-expr-python and falls back to cel-python only if it cannot import."""
    if choice == "python":
        return PythonBackend(budget)
    if choice == "cpp":
        return CppBackend(budget)
    try:
        return CppBackend(budget)
    except ImportError:
        return PythonBackend(budget)
