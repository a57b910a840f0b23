"""``check`` and ``validate``: load → compile → (evaluate → report → exit code)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from policy_engine.cel import Backend, CelCompileError, Checker, create_backend
from policy_engine.engine import Context, Facts, FailOn, Settings, enforcement_level, evaluate
from policy_engine.errors import ExitCode, InputError, InputErrors, json_path
from policy_engine.factcache import cached_material
from policy_engine.loading import Portfolio, load_portfolio
from policy_engine.models.report import Override, Report
from policy_engine.models.types import format_timestamp
from policy_engine.outputs import OutputSpec, emit
from policy_engine.parallel import fork_runner
from policy_engine.policies import (
    CompiledPolicy,
    PolicySource,
    apply_config,
    apply_params,
    builtin_source,
    compile_policies,
    load_policies,
)
from policy_engine.report import build_report
from policy_engine.sources import DirectorySource, FileSource, display_prefix, repo_root_of
from policy_engine.targets import TargetSet, build_targets
from policy_engine.waivers import LedgerRules

if TYPE_CHECKING:
    from policy_engine.residency.remembered import Remembered

BackendChoice = Literal["auto", "cpp", "python"]


@dataclass(frozen=True, slots=True)
class LoadOptions:
    path: Path
    policy_dirs: tuple[Path, ...] = ()
    builtin: bool = True
    backend: BackendChoice = "auto"
    disallow_overrides: bool = False
    # Keep only the residency records measured facts as of this instant are made of (every
    # record is still read and checked); None keeps them all.
    measured_as_of: datetime | None = None


@dataclass(frozen=True, slots=True)
class GitOptions:
    """Pull-request mode (``base``) and the other git-derived facts; see ``pullrequest``."""

    base: str | None = None
    head: str | None = None
    new_only: bool = False
    reviews: Path | None = None
    signoff_verification: Literal["github-reviews", "git", "declared"] | None = None
    history: bool = False

    @property
    def active(self) -> bool:
        return bool(self.base or self.head or self.new_only or self.history or self.signoff_verification)


@dataclass(frozen=True, slots=True)
class CheckOptions:
    load: LoadOptions
    as_of: datetime
    context: Context
    fail_on: FailOn = "error"
    outputs: list[OutputSpec] = field(default_factory=list)
    show_all: bool = False
    color: bool = False
    step_summary: Path | None = None
    git: GitOptions = field(default_factory=GitOptions)


@dataclass(frozen=True, slots=True)
class Loaded:
    portfolio: Portfolio
    policies: list[CompiledPolicy]
    overrides: list[Override]
    backend: Backend
    matchers: dict[str, Any] = field(default_factory=dict)
    residency: list[Any] | None = None  # native residency records, when the portfolio has some
    # The files they come from, and the measured facts found remembered for them; when the
    # facts of every portfolio to measure were found, no record was read (``residency`` None).
    remembered: Remembered | None = None


def policy_sources(options: LoadOptions) -> list[PolicySource]:
    root = options.path
    prefix = display_prefix(root)
    sources = [builtin_source()] if options.builtin else []
    if (root / "policies").is_dir():
        sources.append(PolicySource(DirectorySource(root), "policies", prefix + "policies/"))
    repo = repo_root_of(root)
    for directory in options.policy_dirs:
        resolved = directory.resolve()
        if resolved == (root / "policies").resolve():
            continue
        try:
            shown = resolved.relative_to(repo).as_posix() + "/"
        except ValueError:
            shown = directory.as_posix().rstrip("/") + "/"
        sources.append(PolicySource(DirectorySource(resolved), "", shown))
    return sources


@dataclass(frozen=True, slots=True)
class Inputs:
    """Where ``load_all`` reads from instead of the working tree (pull-request mode: the
    merged portfolio and the base revision's policy directories)."""

    portfolio: Callable[[], Portfolio]
    policy_sources: list[PolicySource]
    residency: Callable[[], list[Any] | None] | None = None
    # Or the residency files to read as of ``LoadOptions.measured_as_of``, with their display
    # prefix; and the portfolios besides the loaded one whose facts will be measured.
    residency_files: tuple[FileSource, str] | None = None
    also_measured: Callable[[], list[Portfolio]] = list


def load_all(options: LoadOptions, inputs: Inputs | None = None) -> Loaded:
    """Load the portfolio and the policies and compile everything, collecting every input error."""
    errors: list[InputError] = []
    portfolio = None
    try:
        if inputs is not None:
            portfolio = inputs.portfolio()
        else:
            portfolio = load_portfolio(DirectorySource(options.path), display_prefix(options.path))
    except InputErrors as exc:
        errors.extend(exc.errors)
    policies = []
    try:
        policies = load_policies(inputs.policy_sources if inputs is not None else policy_sources(options))
    except InputErrors as exc:
        errors.extend(exc.errors)
    overrides: list[Override] = []
    if portfolio is not None and policies:
        try:
            overrides = apply_params(policies, portfolio.portfolio.policy_params, portfolio.source)
            if options.disallow_overrides:
                for override in overrides:
                    errors.append(_disallowed(override))
            policies, configured = apply_config(
                policies, portfolio.config, portfolio.config_source, disallow=options.disallow_overrides
            )
            overrides += configured
        except InputErrors as exc:
            errors.extend(exc.errors)
    choice = options.backend
    if choice == "auto" and portfolio is not None and portfolio.config.cel_backend:
        choice = portfolio.config.cel_backend
    backend = create_backend(choice)
    compiled: list[CompiledPolicy] = []
    try:
        compiled = compile_policies(policies, backend)
    except InputErrors as exc:
        errors.extend(exc.errors)
    matchers = _compile_matchers(portfolio, backend, errors) if portfolio is not None else {}
    residency = remembered = None
    try:
        if inputs is not None and inputs.residency is not None:
            residency = inputs.residency()
        elif inputs is None or inputs.residency_files is not None:
            files, prefix = (
                inputs.residency_files
                if inputs is not None and inputs.residency_files is not None
                else (DirectorySource(options.path), display_prefix(options.path))
            )
            as_of = options.measured_as_of
            if as_of is not None and portfolio is not None:
                to_measure = [portfolio, *(inputs.also_measured() if inputs is not None else [])]
                residency, remembered = _remembered_or_read(files, prefix, as_of, to_measure)
            else:
                residency = load_measured(files, prefix, as_of)
    except InputErrors as exc:
        errors.extend(exc.errors)
    if errors or portfolio is None:
        raise InputErrors(errors)
    return Loaded(portfolio, compiled, overrides, backend, matchers, residency, remembered)


def load_measured(files: FileSource, prefix: str, as_of: datetime | None = None) -> list[Any] | None:
    """Native residency records under ``residency/``; None when the portfolio keeps none.
    ``as_of``: only those measured facts as of then are made of (see ``LoadOptions``)."""
    if not files.list("residency", (".jsonl", ".csv")):
        return None
    from policy_engine.residency.aggregate import in_window  # only portfolios with data pay for it
    from policy_engine.residency.native import load_residency

    return load_residency(files, prefix, in_window(as_of) if as_of is not None else None)


def _remembered_or_read(
    files: FileSource, prefix: str, as_of: datetime, portfolios: list[Portfolio]
) -> tuple[list[Any] | None, Remembered | None]:
    """``load_measured``, unless the measured facts of every one of ``portfolios`` as of
    ``as_of`` are remembered: the records (None when all are), and the files they come from."""
    from policy_engine import parsecache

    if not parsecache.enabled() or not files.list("residency", (".jsonl", ".csv")):
        return load_measured(files, prefix, as_of), None
    from policy_engine.residency.aggregate import in_window
    from policy_engine.residency.native import load_residency
    from policy_engine.residency.remembered import Remembered
    from policy_engine.residency.spread import Noted, known_files

    window = in_window(as_of)

    def read(noted: Noted) -> list[Any]:
        return load_residency(files, prefix, window, noted)

    known = known_files(files, window)
    if known is not None:
        remembered = Remembered(known, lambda: read([]))
        if remembered.find(portfolios):
            return None, remembered
    noted: Noted = []
    records = read(noted)
    return records, Remembered(noted, lambda: records)


def with_measured(facts: Facts | None, loaded: Loaded, as_of: datetime) -> Facts | None:
    """Join the portfolio's residency records unless the caller already supplied measured facts."""
    if facts is not None and (facts.measured or "measured" in facts.available):
        return facts
    remembered = loaded.remembered
    measured = remembered.of(loaded.portfolio) if remembered is not None else None
    if measured is None:
        records = loaded.residency
        if records is None and remembered is not None:
            records = remembered.read()  # (a portfolio whose facts ``load_all`` did not look up)
        if records is None:
            return facts
        from policy_engine.residency.aggregate import measure
        from policy_engine.residency.remembered import CheckMeasured, remember_measured

        measured = CheckMeasured.of(measure(loaded.portfolio, records, as_of))
        if remembered is not None:
            remember_measured(remembered.key(loaded.portfolio), measured)
    facts = facts or Facts()
    extra = dict(facts.extra)
    unknown = measured.unknown
    unknown_cost = round(sum(float(u.get("cost") or 0.0) for u in unknown), 2)
    extra["portfolio"] = {
        **extra.get("portfolio", {}),
        "measured": {"unknown_deployments": unknown, "unknown_cost": unknown_cost},
    }
    return dataclasses.replace(
        facts, measured=measured.by_target, extra=extra, available=facts.available | {"measured"}
    )


def _disallowed(override: Override) -> InputError:
    file, _, line = override.source.rpartition(":")
    return InputError(
        file,
        int(line) if line.isdigit() else 1,
        1,
        f"override of {override.policy_id} {override.setting} is not allowed (--disallow-overrides)",
        "",
        "no local overrides",
    )


def _compile_matchers(portfolio: Portfolio, backend: Backend, errors: list[InputError]) -> dict[str, Any]:
    """CEL ``match`` selectors of exceptions, compiled like policy expressions."""
    checker = Checker.create()
    programs: dict[str, Any] = {}
    source = portfolio.exceptions_source
    for index, exception in enumerate(portfolio.exceptions.exceptions):
        if exception.match is None or source is None:
            continue
        path = ("exceptions", index, "match")
        try:
            if checker is not None:
                checker.check(exception.match, "bool")
            programs[exception.id] = backend.compile(exception.match)
        except CelCompileError as exc:
            line, column = source.locate(path)
            errors.append(
                InputError(
                    source.file,
                    line,
                    column,
                    f"CEL: {exc.message}",
                    json_path(path),
                    "a CEL expression over the target",
                )
            )
    return programs


def ledger_rules(loaded: Loaded, context: Context) -> LedgerRules:
    head = loaded.portfolio.portfolio
    config = loaded.portfolio.config.exceptions
    return LedgerRules(
        roster={p.login: p for p in head.roster},
        approver_roles=list(config.approver_roles or head.authority.exception_approver_roles),
        config=config,
        severity={p.id: p.policy.severity for p in loaded.policies},
        hard=frozenset(p.id for p in loaded.policies if enforcement_level(p, context) == "hard"),
    )


def build_check_report(
    options: CheckOptions,
    loaded: Loaded,
    facts: Facts | None = None,
    *,
    release: bool = False,
    targets: TargetSet | None = None,
) -> Report:
    """Evaluate the loaded portfolio into a report. ``release``: the caller is done with
    ``loaded.portfolio.models`` (and the residency records): they are freed as soon as the
    targets and measured facts are made from them. ``targets``: the portfolio's targets, when
    the caller has made them already (else the workers make them as they evaluate)."""
    settings = Settings(options.as_of, options.context, options.fail_on, keep_all=options.show_all)
    facts = with_measured(facts, loaded, options.as_of)
    if release and loaded.residency:
        loaded.residency.clear()  # aggregated into ``facts``; the records themselves are done
    if targets is None:
        targets = build_targets(loaded.portfolio, consume=release, defer=True, materials=cached_material)
    outcome = evaluate(
        targets,
        loaded.policies,
        loaded.backend,
        settings,
        facts or Facts(),
        loaded.portfolio.exceptions.exceptions,
        ledger_rules(loaded, options.context),
        loaded.matchers,
        runner=fork_runner(),
    )
    return build_report(
        outcome,
        loaded.policies,
        loaded.overrides,
        as_of=format_timestamp(options.as_of),
        context=options.context,
        backend=loaded.backend.name,
    )


def run_check(options: CheckOptions) -> int:
    # Measured facts cover the last 30 days: older records are read, checked and dropped.
    options = dataclasses.replace(
        options, load=dataclasses.replace(options.load, measured_as_of=options.as_of)
    )
    if options.git.active:
        from policy_engine.pullrequest import git_check_report  # GitPython only when asked for

        report = git_check_report(options)
    else:
        report = build_check_report(options, load_all(options.load), release=True)
    emit(report, options.outputs, color=options.color, step_summary=options.step_summary)
    return report.summary.exit_code


def run_validate(options: LoadOptions) -> int:
    loaded = load_all(options)
    models = loaded.portfolio.models
    versions = sum(len(e.model.versions) for e in models)
    print(
        f"valid: {len(models)} models, {versions} versions, {len(loaded.policies)} policies "
        f"compiled ({loaded.backend.name})"
    )
    return ExitCode.OK
