"""``check`` and ``validate``: load → compile → (evaluate → report → exit code)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from policy_engine.cel import Backend, create_backend
from policy_engine.engine import Context, Facts, FailOn, Settings, evaluate
from policy_engine.errors import ExitCode, InputError, InputErrors
from policy_engine.loading import Portfolio, load_portfolio
from policy_engine.models.report import Override, Report
from policy_engine.models.types import format_timestamp
from policy_engine.outputs import OutputSpec, emit
from policy_engine.policies import (
    CompiledPolicy,
    PolicySource,
    apply_params,
    builtin_source,
    compile_policies,
    load_policies,
)
from policy_engine.report import build_report
from policy_engine.sources import DirectorySource, display_prefix, repo_root_of
from policy_engine.targets import build_targets

BackendChoice = Literal["auto", "cpp", "python"]


@dataclass(frozen=True, slots=True)
class LoadOptions:
    path: Path
    policy_dirs: tuple[Path, ...] = ()
    builtin: bool = True
    backend: BackendChoice = "auto"


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


@dataclass(frozen=True, slots=True)
class Loaded:
    portfolio: Portfolio
    policies: list[CompiledPolicy]
    overrides: list[Override]
    backend: Backend


def policy_sources(options: LoadOptions) -> list[PolicySource]:
    root = options.path
    prefix = display_prefix(root)
    sources = [builtin_source()] if options.builtin else []
    if (root / "policies").is_dir():
        sources.append(PolicySource(DirectorySource(root), "policies", prefix))
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


def load_all(options: LoadOptions) -> Loaded:
    """Load the portfolio and the policies and compile everything, collecting every input error."""
    errors: list[InputError] = []
    portfolio = None
    try:
        portfolio = load_portfolio(DirectorySource(options.path), display_prefix(options.path))
    except InputErrors as exc:
        errors.extend(exc.errors)
    policies = []
    try:
        policies = load_policies(policy_sources(options))
    except InputErrors as exc:
        errors.extend(exc.errors)
    overrides: list[Override] = []
    if portfolio is not None and policies:
        try:
            overrides = apply_params(policies, portfolio.portfolio.policy_params, portfolio.source)
        except InputErrors as exc:
            errors.extend(exc.errors)
    backend = create_backend(options.backend)
    compiled: list[CompiledPolicy] = []
    try:
        compiled = compile_policies(policies, backend)
    except InputErrors as exc:
        errors.extend(exc.errors)
    if errors or portfolio is None:
        raise InputErrors(errors)
    return Loaded(portfolio, compiled, overrides, backend)


def build_check_report(options: CheckOptions, loaded: Loaded, facts: Facts | None = None) -> Report:
    settings = Settings(options.as_of, options.context, options.fail_on, keep_all=options.show_all)
    targets = build_targets(loaded.portfolio)
    outcome = evaluate(
        targets,
        loaded.policies,
        loaded.backend,
        settings,
        facts or Facts(),
        loaded.portfolio.exceptions.exceptions,
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
    loaded = load_all(options.load)
    report = build_check_report(options, loaded)
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
