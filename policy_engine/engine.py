"""The evaluation core: a pure function from targets, policies and facts to findings. No I/O."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import groupby
from operator import attrgetter
from typing import Any, Literal

from policy_engine.cel import VARIABLES, Backend, BudgetExceeded, CelEvalError, Meter, fmt
from policy_engine.errors import json_path
from policy_engine.fusion import BATCH, FUSE_FROM, Decision, Fusion
from policy_engine.loading import ModelEntry
from policy_engine.models.policy import SEVERITY_RANK
from policy_engine.models.portfolio import PolicyException
from policy_engine.models.report import Finding, Location, Status, packed_findings, unpacked_findings
from policy_engine.policies import CompiledPolicy, CompiledValidation
from policy_engine.targets import MODEL_FILE_SCOPES, Target, TargetSet
from policy_engine.waivers import Assessment, LedgerRules, assess

Context = Literal["pre-commit", "pull-request", "audit"]
FailOn = Literal["error", "warning", "never"]
FACT_KINDS = ("measured", "history", "old", "change")


@dataclass(frozen=True, slots=True)
class Facts:
    """Data from outside the manifest, by target id. A kind absent from ``available`` is unknown."""

    measured: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: dict[str, dict[str, Any]] = field(default_factory=dict)
    old: dict[str, dict[str, Any]] = field(default_factory=dict)
    change: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Computed fields merged into a target's own bindings, e.g. a sign-off's verification:
    # {target id: {"signoff": {"verified": False, "verification": "no APPROVED review"}}}.
    extra: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    available: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Settings:
    as_of: datetime
    context: Context
    fail_on: FailOn = "error"
    keep_all: bool = False


@dataclass(slots=True)
class Outcome:
    """Findings kept for the report plus counts of everything, including unlisted passes/skips."""

    findings: list[Finding] = field(default_factory=list)
    by_status: Counter[str] = field(default_factory=Counter)
    by_severity: Counter[str] = field(default_factory=Counter)
    waived_by: Counter[str] = field(default_factory=Counter)  # exception id -> findings waived

    def merge(self, part: Outcome) -> None:
        self.findings.extend(part.findings)
        self.by_status.update(part.by_status)
        self.by_severity.update(part.by_severity)

    def __reduce__(self) -> Any:
        # Outcomes travel back from workers: their findings marshalled in one go (see
        # ``packed_findings``), else pickled one by one.
        packed = packed_findings(self.findings)
        findings = self.findings if packed is None else packed
        return (_outcome, (findings, self.by_status, self.by_severity, self.waived_by))


def _outcome(
    findings: list[Finding] | bytes,
    by_status: Counter[str],
    by_severity: Counter[str],
    waived_by: Counter[str],
) -> Outcome:
    """An outcome pickled by ``Outcome.__reduce__``."""
    made = unpacked_findings(findings) if isinstance(findings, bytes) else findings
    return Outcome(made, by_status, by_severity, waived_by)


# What evaluation is spread over: targets, and model files whose targets are made where they
# are evaluated (``TargetSet.deferred``).
Unit = Target | ModelEntry
# Maps a function over chunks of units, given each unit's weight (the targets it stands for);
# a process pool may split them (policy_engine.parallel).
Runner = Callable[[Callable[[list[Unit]], "Outcome"], list[Unit], list[int]], Iterable["Outcome"]]


def _in_process(
    function: Callable[[list[Unit]], Outcome], units: list[Unit], weights: list[int]
) -> list[Outcome]:
    return [function(units)]


def _weight(entry: ModelEntry) -> int:
    """How many targets a model file makes: itself, and its versions' deployments and sign-offs."""
    return entry.summary.targets


_NOT_APPLICABLE = "not applicable (match is false)"
_MISSING_REASON = {
    "measured": "no measured residency for this target",
    "history": "no git history (use --history, or --base for a pull request)",
    "change": "not a pull-request run (use --base)",
}


def fingerprint(policy_id: str, target: str, validation: str) -> str:
    text = "\x1f".join((policy_id, target, validation))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def enforcement_level(policy: CompiledPolicy, context: Context) -> Literal["advisory", "soft", "hard"]:
    """Explicit per-context level, else error → soft and warning/info → advisory."""
    level = policy.policy.enforcement.get(context)
    if level in ("advisory", "soft", "hard"):
        return level  # type: ignore[return-value]
    return "soft" if policy.policy.severity == "error" else "advisory"


def is_blocking(status: Status, severity: str, level: str, fail_on: FailOn) -> bool:
    """Errors block whatever their level (fail closed); failures block per level and --fail-on."""
    if fail_on == "never" or status not in ("fail", "error"):
        return False
    if status == "error":
        return True
    return level != "advisory" and SEVERITY_RANK[severity] >= SEVERITY_RANK[fail_on]


@dataclass(slots=True)
class Waivers:
    """Active exceptions by (policy, target), CEL-matched ones by policy, and what each waived."""

    exact: dict[tuple[str, str], str] = field(default_factory=dict)
    by_match: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    used: Counter[str] = field(default_factory=Counter)

    def find(
        self, policy_id: str, target_id: str, activation: Callable[[], Any], backend: Backend
    ) -> str | None:
        exception_id = self.exact.get((policy_id, target_id))
        if exception_id is None:
            for candidate, program in self.by_match.get(policy_id, []):
                try:
                    if backend.evaluate(program, activation()) is True:
                        exception_id = candidate
                        break
                except CelEvalError:
                    continue  # a match that cannot be evaluated waives nothing
        if exception_id is not None:
            self.used[exception_id] += 1
        return exception_id


def evaluate(
    targets: TargetSet,
    policies: list[CompiledPolicy],
    backend: Backend,
    settings: Settings,
    facts: Facts,
    exceptions: list[PolicyException],
    rules: LedgerRules | None = None,
    matchers: dict[str, Any] | None = None,
    runner: Runner | None = None,
    fuse: bool | None = None,
) -> Outcome:
    """Evaluate every policy on every target of its scope.

    Exception-scope policies (the ledger) run last, so they can see which exceptions waived
    something in this run. ``runner`` maps the evaluation over chunks of a scope's targets
    (default: in this process, one chunk); the results do not depend on how it splits them.
    ``fuse`` decides each target's policies in one CEL call (``policy_engine.fusion``; default:
    on cel-expr-python); it changes no result, only the time taken.
    """
    runner = runner or _in_process
    outcome = Outcome()
    rules = rules or LedgerRules(roster={}, approver_roles=[])
    assessments = {e.id: assess(e, settings.as_of, rules) for e in exceptions}
    waivers = Waivers()
    for exception in exceptions:
        if not assessments[exception.id].active:
            continue
        if exception.target is not None:
            waivers.exact.setdefault((exception.policy, exception.target), exception.id)
        elif matchers and exception.id in matchers:
            waivers.by_match.setdefault(exception.policy, []).append((exception.id, matchers[exception.id]))
    by_scope: dict[str, list[CompiledPolicy]] = {}
    for policy in policies:
        by_scope.setdefault(policy.policy.doc.spec.scope, []).append(policy)
    base: dict[str, Any] = {name: {} for name in VARIABLES}
    base.update(targets.shared)
    base["now"] = settings.as_of
    # cel-python interprets each node anyway, so one call instead of many saves it little.
    if fuse if fuse is not None else backend.name == "cpp":
        fusions = {scope: Fusion(scoped, backend, base) for scope, scoped in by_scope.items()}
    else:
        fusions = {}

    def run(chunk: list[Target], scope: str, extra: dict[str, dict[str, dict[str, Any]]]) -> Outcome:
        part = Outcome()
        scoped = by_scope[scope]
        counts = [len(p.validations) for p in scoped]
        rows = [_target_data(target, base, facts, extra) for target in chunk]
        runnables = _runnables(scoped, rows)
        decisions = _decide(fusions.get(scope), rows, runnables, len(scoped), base)
        keep_all = settings.keep_all
        skipped = passed = 0
        for target, data, runnable, decided in zip(chunk, rows, runnables, decisions, strict=True):
            activation = where = None
            for index, policy in enumerate(scoped):
                decision = decided[index]
                # Unlisted passes and skips are only counted: the common case costs no findings.
                if not keep_all:
                    if not runnable[index] or (decision is not None and not decision.applies):
                        skipped += counts[index]
                        continue
                    if decision is not None and not decision.failed:
                        passed += counts[index]
                        continue
                if activation is None or where is None:
                    activation = _Once(partial(backend.activation, data))
                    # One location per target, shared by its findings (frozen, so safe to share).
                    where = _Once(partial(_location, target))
                found = _evaluate_policy(
                    policy, target, data, activation, where, backend, settings, waivers, decision
                )
                for finding in found:
                    if isinstance(finding, str):  # an unlisted pass or skip: counted only
                        part.by_status[finding] += 1
                        continue
                    part.by_status[finding.status] += 1
                    if finding.status in ("fail", "error"):
                        part.by_severity[finding.severity] += 1
                    part.findings.append(finding)
        if skipped:
            part.by_status["skip"] += skipped
        if passed:
            part.by_status["pass"] += passed
        return part

    # Every scope but the ledger is split across workers in one go; the ledger runs last, here,
    # so it sees what every exception waived anywhere.
    spread: list[Unit] = [
        t for scope in sorted(by_scope) if scope != "exception" for t in targets.by_scope.get(scope, [])
    ]
    weights = [1] * len(spread)
    if any(scope in by_scope for scope in MODEL_FILE_SCOPES):
        spread += targets.deferred
        weights += [_weight(entry) for entry in targets.deferred]
    # Each chunk reports what it waived itself: a worker, or this process, may run several one
    # after another on the same counter. The run's count is ``before`` plus their sum.
    before = waivers.used.copy()
    increase: Counter[str] = Counter()

    def chunk_of(units: list[Unit]) -> Outcome:
        start = waivers.used.copy()
        part = Outcome()
        made = [u for u in units if isinstance(u, Target)]
        made += targets.made_from([u for u in units if isinstance(u, ModelEntry)])
        made = [t for t in made if t.scope in by_scope]
        made.sort(key=attrgetter("scope"))  # stable: each scope's targets keep their order
        for scope, group in groupby(made, key=attrgetter("scope")):
            part.merge(run(list(group), scope, facts.extra))
        part.waived_by = waivers.used - start
        return part

    if spread:
        for part in runner(chunk_of, spread, weights):
            outcome.merge(part)
            increase.update(part.waived_by)
    waivers.used = before + increase
    if "exception" in by_scope:
        extra = {**facts.extra, **_ledger_fields(exceptions, assessments, waivers)}
        outcome.merge(run(targets.by_scope.get("exception", []), "exception", extra))
    outcome.waived_by = waivers.used
    outcome.findings.sort(
        key=lambda f: (f.location.file or "", f.location.line or 0, f.policy_id, f.target, f.validation)
    )
    return outcome


def _target_data(
    target: Target, base: dict[str, Any], facts: Facts, extra: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, Any]:
    """Every variable's value for one target: shared values, its own data, facts, extras."""
    data = dict(base)
    data.update(target.data)
    for kind in FACT_KINDS:
        # A target without facts keeps the shared {}: fusion binds only what differs from it.
        data[kind] = getattr(facts, kind).get(target.id, base[kind])
    for name, fields in extra.get(target.id, {}).items():
        data[name] = {**data.get(name, {}), **fields}
    return data


def _runnables(policies: list[CompiledPolicy], rows: list[dict[str, Any]]) -> list[tuple[bool, ...]]:
    """Per row, which policies can run: those whose required facts (``requires``) it has."""
    everything = (True,) * len(policies)
    needed = [p.policy.doc.spec.requires for p in policies]
    conditional = [(index, needs) for index, needs in enumerate(needed) if needs]
    if not conditional:
        return [everything] * len(rows)
    out = []
    for data in rows:
        flags = list(everything)
        for index, needs in conditional:
            flags[index] = all(data.get(name) for name in needs)
        out.append(tuple(flags))
    return out


def _decide(
    fusion: Fusion | None,
    rows: list[dict[str, Any]],
    runnables: list[tuple[bool, ...]],
    policies: int,
    base: dict[str, Any],
) -> list[list[Decision | None]]:
    """Fused decisions for runs of consecutive targets that can run the same policies."""
    if fusion is None or len(rows) < FUSE_FROM:
        return [[None] * policies for _ in rows]
    varying = tuple(name for name in VARIABLES if any(row[name] is not base[name] for row in rows))
    decided: list[list[Decision | None]] = []
    start = 0
    while start < len(rows):
        end = start + 1
        while end < len(rows) and end - start < BATCH and runnables[end] == runnables[start]:
            end += 1
        decided.extend(fusion.decide(rows[start:end], runnables[start], varying))
        start = end
    return decided


class _Once:
    """A value made the first time it is asked for (a target's activation, only when the
    exact path or a waiver needs it; its location, only when it has a finding)."""

    __slots__ = ("make", "value")

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make
        self.value: Any = None

    def __call__(self) -> Any:
        if self.value is None:
            self.value = self.make()
        return self.value


def _ledger_fields(
    exceptions: list[PolicyException], assessments: dict[str, Assessment], waivers: Waivers
) -> dict[str, dict[str, dict[str, Any]]]:
    """Computed fields the ledger policies read on each exception target."""
    fields: dict[str, dict[str, dict[str, Any]]] = {}
    for exception in exceptions:
        found = assessments[exception.id]
        fields[f"exception:{exception.id}"] = {
            "exception": {
                "active": found.active,
                "in_window": found.in_window,
                "expired": found.expired,
                "expires_in_days": round(found.expires_in_days, 3),
                "problems": found.problems,
                "missing_roles": found.missing_roles,
                "waived_count": waivers.used.get(exception.id, 0),
            }
        }
    return fields


def _evaluate_policy(
    policy: CompiledPolicy,
    target: Target,
    data: dict[str, Any],
    activation: Callable[[], Any],
    location: Callable[[], Location],
    backend: Backend,
    settings: Settings,
    waivers: Waivers,
    decision: Decision | None = None,
) -> Iterator[Finding | str]:
    """The findings of one policy on one target; ``decision``, when the fused call gave one,
    replaces evaluating its expressions one by one. ``activation`` and ``location`` give the
    target's activation and location, made on first use."""
    policy_id = policy.id
    severity: Any = policy.policy.severity
    level = enforcement_level(policy, settings.context)
    # The policy's evaluation budget on this target (like a Kubernetes CEL budget per binding):
    # every evaluation below draws on it; once spent, the rest are errors naming the policy
    # and target, and the other policies still run.
    meter = Meter(backend.budget)

    def make(validation: CompiledValidation, status: Status, message: str, **extra: Any) -> Finding | str:
        if status in ("pass", "skip") and not settings.keep_all:
            return status  # listed only with --all; building the finding would be wasted work
        exception_id = None
        if status == "fail" and level != "hard":
            exception_id = waivers.find(policy_id, target.id, activation, backend)
            if exception_id is not None:
                status = "waived"
        return Finding.made(
            fingerprint=fingerprint(policy_id, target.id, validation.key),
            policy_id=policy_id,
            validation=validation.key,
            target=target.id,
            model=target.model,
            version=target.version,
            deployment=target.deployment,
            status=status,
            severity=severity,
            enforcement=level,
            blocking=is_blocking(status, severity, level, settings.fail_on),
            exception_id=exception_id,
            message=message,
            location=location(),
            **extra,
        )

    for requirement in policy.policy.doc.spec.requires:
        if not data.get(requirement):
            reason = _MISSING_REASON[requirement]
            for validation in policy.validations:
                yield make(validation, "skip", f"skipped: {reason}", skip_reason=reason)
            return

    if decision is not None:
        if not decision.applies:
            for validation in policy.validations:
                yield make(validation, "skip", _NOT_APPLICABLE, skip_reason=_NOT_APPLICABLE)
            return
        decided_values: dict[str, Any] | None = None
        for validation, result in zip(policy.validations, decision.results, strict=True):
            if not result:
                yield make(validation, "pass", validation.message)
                continue
            if decided_values is None:
                decided_values = _params(policy)
                for variable, value in zip(policy.variables, decision.values, strict=True):
                    decided_values[variable.name] = _jsonable(value)
            yield make(
                validation,
                "fail",
                _shown(result[0], validation),
                remediation=validation.remediation,
                values=dict(decided_values),
            )
        return

    # The exact path: each expression on its own, each drawing on the policy's budget.
    def judged(validation: CompiledValidation, result: Any) -> Finding | str:
        if result is True:
            return make(validation, "pass", validation.message)
        if result is False:
            return make(
                validation,
                "fail",
                _message(validation, activation(), backend, meter),
                remediation=validation.remediation,
                values=_values(policy, activation(), backend, meter),
            )
        return make(
            validation,
            "error",
            f"{policy.id} validation {validation.key} gave {type(result).__name__}, not a boolean",
            values=_values(policy, activation(), backend, meter),
        )

    if policy.match is not None:
        try:
            applies = backend.evaluate(policy.match, activation(), meter)
        except CelEvalError as exc:
            for validation in policy.validations:
                yield make(
                    validation,
                    "error",
                    f"{policy.id} could not decide whether it applies to {target.id}: {exc}",
                    remediation=_fix_error(exc),
                    values=_values(policy, activation(), backend, meter),
                )
            return
        if applies is not True:
            reason = _NOT_APPLICABLE if applies is False else "match did not give a boolean"
            status: Status = "skip" if applies is False else "error"
            for validation in policy.validations:
                yield make(validation, status, reason, skip_reason=reason if status == "skip" else None)
            return
    for validation in policy.validations:
        try:
            result = backend.evaluate(validation.program, activation(), meter)
        except CelEvalError as exc:
            yield make(
                validation,
                "error",
                f"{policy.id} could not be evaluated on {target.id}: {exc}",
                remediation=_fix_error(exc),
                values=_values(policy, activation(), backend, meter),
            )
            continue
        yield judged(validation, result)


def _message(
    validation: CompiledValidation, activation: Any, backend: Backend, meter: Meter | None = None
) -> str:
    """The messageExpression when it evaluates to a one-line string, else the static message
    (also when it fails or runs out of budget)."""
    if validation.message_program is None:
        return validation.message
    try:
        text = backend.evaluate(validation.message_program, activation, meter)
    except CelEvalError:
        return validation.message
    return _shown(text, validation)


def _shown(text: Any, validation: CompiledValidation) -> str:
    """A message expression's value when it is one printable line, else the static message:
    data quoted into a message must not forge lines or escapes."""
    if isinstance(text, str) and text.strip() and text.strip().isprintable():
        return text.strip()
    return validation.message


def _fix_error(exc: CelEvalError) -> str:
    text = str(exc)
    if isinstance(exc, BudgetExceeded) or text.startswith("exceeded the evaluation budget"):
        return (
            "Make the policy cheaper: avoid nested comprehensions over large lists and read values "
            "the engine precomputes; an unevaluable policy blocks (fail closed)."
        )
    if text.startswith("missing field"):
        return f"Add the {text.removeprefix('missing ')} to the target, or guard the expression with has()."
    return "Fix the policy expression or the data it reads; an unevaluable policy blocks (fail closed)."


def _values(
    policy: CompiledPolicy, activation: Any, backend: Backend, meter: Meter | None = None
) -> dict[str, Any]:
    """The variable and parameter values behind a verdict, as JSON-friendly values."""
    values = _params(policy)
    for variable in policy.variables:
        try:
            values[variable.name] = _jsonable(backend.evaluate(variable.program, activation, meter))
        except CelEvalError as exc:
            values[variable.name] = f"<error: {exc}>"
    return values


def _params(policy: CompiledPolicy) -> dict[str, Any]:
    return {f"params.{name}": policy.policy.params.get(name) for name in policy.params_used}


_AS_IS = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any) -> Any:
    if type(value) in _AS_IS:  # most values: checked first, in one lookup
        return value
    if isinstance(value, timedelta):
        return fmt(value)
    if isinstance(value, datetime):
        value = value.astimezone(UTC)
        return f"{value.year:04d}-{value:%m-%dT%H:%M:%S}Z"  # %Y would write the year 1 as "1"
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        # CEL maps come back in hash order, which varies between runs: sort for stable reports.
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda item: str(item[0]))}
    return value


def _location(target: Target) -> Location:
    if target.source is None:
        return Location()
    line, column = target.position or target.source.locate(target.path)
    return Location.made(file=target.source.file, line=line, column=column, json_path=json_path(target.path))
