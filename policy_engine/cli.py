"""The command line. The only module that imports click or reads the environment."""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, cast

import click

from policy_engine import __version__
from policy_engine.errors import ExitCode, InputErrors, UsageError

CONTEXTS = ("pre-commit", "pull-request", "audit")


def detect_context() -> str:
    """DESIGN §9: PRE_COMMIT=1 → pre-commit; GITHUB_ACTIONS=true → pull-request; else audit."""
    if os.environ.get("PRE_COMMIT") == "1":
        return "pre-commit"
    if os.environ.get("GITHUB_ACTIONS") == "true":
        return "pull-request"
    return "audit"


def parse_as_of(value: str | None) -> datetime:
    from policy_engine.models.types import parse_timestamp

    if value is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise UsageError(f"--as-of: {exc}") from None


def _run(action: Callable[[], int]) -> NoReturn:
    """Map every outcome to the exit codes of DESIGN §2; never show a traceback for bad input."""
    collecting = gc.isenabled()
    # A run builds millions of long-lived objects and frees them by reference counting; cyclic
    # collection meanwhile only rescans them (measured: 10,000 versions, 13.6 s → 8.5 s).
    gc.disable()
    try:
        code = action()
    except InputErrors as exc:
        for error in exc.errors:
            click.echo(error.render(), err=True)
        count = len(exc.errors)
        click.echo(f"{count} input error{'s' if count != 1 else ''}; nothing was evaluated.", err=True)
        code = ExitCode.INPUT_ERROR
    except UsageError as exc:
        click.echo(f"error: {exc}", err=True)
        code = ExitCode.INPUT_ERROR
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # a bug: short message, the traceback goes to a log file
        fd, log = tempfile.mkstemp(prefix="policy-engine-", suffix=".log")
        with os.fdopen(fd, "w") as handle:
            traceback.print_exc(file=handle)
        click.echo(f"internal error: {type(exc).__name__}: {exc} (details in {log})", err=True)
        code = ExitCode.INTERNAL_ERROR
    finally:
        from policy_engine import parsecache

        parsecache.flush()  # what this run parsed, for the next run
        if collecting:
            gc.enable()
    sys.exit(int(code))


_path_argument = click.argument(
    "path", type=click.Path(file_okay=False, path_type=Path), default=".", required=False
)


def _load_options(**kwargs: Any) -> Any:
    from policy_engine.commands.check import LoadOptions

    path: Path = kwargs["path"]
    if not path.is_dir():
        raise UsageError(f"{path}: no such directory (expected a portfolio root with portfolio.yaml)")
    _configure_cache(path, enabled=not kwargs["no_cache"])
    return LoadOptions(
        path=path,
        policy_dirs=tuple(kwargs["policies"]),
        builtin=not kwargs["no_builtin"],
        backend=kwargs["cel_backend"],
        disallow_overrides=kwargs["disallow_overrides"],
    )


def _configure_cache(path: Path, *, enabled: bool) -> None:
    """DESIGN §9: ${POLICY_ENGINE_CACHE_DIR:-$XDG_CACHE_HOME/policy-engine}, never inside the repository."""
    from policy_engine import parsecache
    from policy_engine.sources import repo_root_of

    directory = os.environ.get("POLICY_ENGINE_CACHE_DIR")
    if not directory:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        directory = str(Path(base) / "policy-engine")
    cache = Path(directory).resolve()
    if enabled and cache.is_relative_to(repo_root_of(path)):
        click.echo(f"warning: parse cache {cache} is inside the repository; not caching", err=True)
        enabled = False
    parsecache.configure(cache if enabled else None)


def _load_flags(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option(
        "--policies",
        multiple=True,
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        help="Extra policy directory (repeatable). The portfolio's policies/ is always loaded.",
    )(function)
    function = click.option("--no-builtin", is_flag=True, help="Do not load the built-in policy pack.")(
        function
    )
    function = click.option(
        "--no-cache", is_flag=True, help="Do not read or write the parse cache (files keyed by content hash)."
    )(function)
    function = click.option(
        "--disallow-overrides",
        is_flag=True,
        help="Treat any local override (policy_params, .policy-engine.yaml) as an input error.",
    )(function)
    return click.option(
        "--cel-backend",
        type=click.Choice(["auto", "cpp", "python"]),
        default="auto",
        show_default=True,
        help="cpp = cel-expr-python; python = cel-python (reference).",
    )(function)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="policy-engine")
def cli() -> None:
    """Policy-as-code governance for AI inference model portfolios."""


@cli.command()
@_path_argument
@_load_flags
@click.option("--as-of", help="Evaluation instant, RFC 3339 (default: now, UTC).")
@click.option(
    "--format",
    "formats",
    multiple=True,
    metavar="NAME[=PATH]",
    help="text, json, sarif, junit, github, markdown; repeatable. Default: text.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File for the format given without a path.",
)
@click.option(
    "--context",
    type=click.Choice(CONTEXTS),
    help="Enforcement context (default: detected from PRE_COMMIT / GITHUB_ACTIONS, else audit).",
)
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning", "never"]),
    default="error",
    show_default=True,
    help="Lowest severity that can block.",
)
@click.option("--all", "show_all", is_flag=True, help="List passing and skipped findings too.")
@click.option(
    "--base",
    metavar="REF",
    help="Pull-request mode: compare with the merge base of REF and the head, under the base's "
    "rules (default: origin/$GITHUB_BASE_REF when that is set).",
)
@click.option("--head", metavar="REF", help="Head revision (default: the working tree).")
@click.option(
    "--new-only", is_flag=True, help="Leave out findings already present at the base that do not block."
)
@click.option(
    "--reviews",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Pull request reviews as the GitHub REST API lists them (JSON).",
)
@click.option(
    "--signoff-verification",
    type=click.Choice(["github-reviews", "git", "declared"]),
    help="How sign-offs are verified (pull-request mode default: declared, i.e. trusted and "
    "reported as unverified).",
)
@click.option("--history", is_flag=True, help="Compute git history facts (always on with --base).")
def check(**kwargs: Any) -> None:
    """Evaluate the policies against the portfolio at PATH and report findings."""

    def action() -> int:
        from policy_engine.commands.check import CheckOptions, GitOptions, run_check
        from policy_engine.outputs import parse_formats

        base = kwargs["base"] or os.environ.get("GITHUB_BASE_REF") or None

        options = CheckOptions(
            load=_load_options(**kwargs),
            as_of=parse_as_of(kwargs["as_of"]),
            context=cast(Any, kwargs["context"] or detect_context()),
            fail_on=kwargs["fail_on"],
            outputs=parse_formats(kwargs["formats"], kwargs["output"]),
            show_all=kwargs["show_all"],
            color=sys.stdout.isatty() and "NO_COLOR" not in os.environ,
            step_summary=Path(os.environ["GITHUB_STEP_SUMMARY"])
            if os.environ.get("GITHUB_STEP_SUMMARY")
            else None,
            git=GitOptions(
                base=base,
                head=kwargs["head"],
                new_only=kwargs["new_only"],
                reviews=kwargs["reviews"],
                signoff_verification=kwargs["signoff_verification"],
                history=kwargs["history"],
            ),
        )
        return run_check(options)

    _run(action)


@cli.command()
@_path_argument
@_load_flags
def validate(**kwargs: Any) -> None:
    """Load, schema-check and compile everything at PATH without evaluating."""

    def action() -> int:
        from policy_engine.commands.check import run_validate

        return run_validate(_load_options(**kwargs))

    _run(action)


@cli.command()
@click.option("--write", "mode", flag_value="write", help="Write schemas/*.schema.json.")
@click.option("--check", "mode", flag_value="check", help="Exit 1 when the committed schemas are stale.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("schemas"),
    show_default=True,
)
def schema(mode: str | None, directory: Path) -> None:
    """Generate the JSON Schemas of every file format from the models."""

    def action() -> int:
        from policy_engine import schema as schemas

        if mode == "write":
            written = schemas.write(directory)
            click.echo(
                f"wrote {len(written)} schema file(s) to {directory}" if written else "schemas are current"
            )
            return ExitCode.OK
        if mode == "check":
            stale = schemas.stale(directory)
            for name in stale:
                click.echo(f"{directory / name}: stale; run `policy-engine schema --write`", err=True)
            return ExitCode.BLOCKING if stale else ExitCode.OK
        for name in schemas.generate():
            click.echo(name)
        return ExitCode.OK

    _run(action)


@cli.command()
@click.argument("target")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".", required=False)
def digest(target: str, path: Path) -> None:
    """Print the digest a sign-off on TARGET (MODEL@VERSION) must name."""

    def action() -> int:
        from policy_engine.digest import version_digest
        from policy_engine.loading import load_portfolio
        from policy_engine.sources import DirectorySource, display_prefix

        model_id, sep, version_id = target.partition("@")
        if not sep:
            raise UsageError(f"{target!r}: expected MODEL@VERSION, e.g. assistant-llm@2")
        portfolio = load_portfolio(DirectorySource(path), display_prefix(path))
        for entry in portfolio.models:
            if entry.model.id == model_id:
                for version in entry.model.versions:
                    if version.version == version_id:
                        click.echo(version_digest(version))
                        return ExitCode.OK
        raise UsageError(f"{target}: no such model version in {path}")

    _run(action)


@cli.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format", "output_format", type=click.Choice(["text", "junit"]), default="text", show_default=True
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the report to a file.")
@click.option(
    "--require-coverage", is_flag=True, help="Fail when a validation was not seen both passing and failing."
)
@click.option(
    "--no-builtin", is_flag=True, help="Do not load the built-in pack beside the policies under test."
)
@click.option(
    "--cel-backend", type=click.Choice(["auto", "cpp", "python"]), default="auto", show_default=True
)
def test_command(
    paths: tuple[Path, ...],
    output_format: str,
    output: Path | None,
    require_coverage: bool,
    no_builtin: bool,
    cel_backend: str,
) -> None:
    """Run policy test suites (*.test.yaml) under PATHS (default: policies/) and report coverage."""

    def action() -> int:
        from policy_engine.commands.policy_test import run_policy_tests

        return run_policy_tests(
            list(paths) or [Path("policies")],
            output_format=cast(Any, output_format),
            output=output,
            require_coverage=require_coverage,
            backend=cel_backend,
            include_builtin=not no_builtin,
        )

    _run(action)


@cli.command()
@click.option(
    "--check", "check_only", is_flag=True, help="Exit 1 when the file is stale instead of writing it."
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("docs/policies.md"),
    show_default=True,
)
def docs(check_only: bool, output: Path) -> None:
    """Write the policy reference (one section per built-in policy) from the policy files."""

    def action() -> int:
        from policy_engine.commands.docs import run_docs

        return run_docs(check_only, output)

    _run(action)


@cli.group()
def residency() -> None:
    """Measured residency: import OpenCost, Prometheus or FOCUS data into the native format."""


@residency.command("import")
@click.option("--from", "source", type=click.Choice(["opencost", "prometheus", "focus"]), required=True)
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Native file to write (.jsonl or .csv), e.g. residency/2026-11.jsonl.",
)
@click.option(
    "--portfolio",
    "portfolio_root",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Portfolio root: attribute through its selectors and check the currency.",
)
@click.option("--opencost", "opencost_url", metavar="URL", help="Read a live OpenCost API.")
@click.option("--prometheus", "prometheus_url", metavar="URL", help="Read a live Prometheus.")
@click.option("--window-start", metavar="TIMESTAMP", help="Start of the window to import (RFC 3339).")
@click.option("--window-end", metavar="TIMESTAMP", help="End of the window (exclusive).")
@click.option("--label", metavar="KEY", help="Deployment label or FOCUS tag (default: from the selectors).")
@click.option("--currency", metavar="CODE", help="ISO 4217 currency of the records.")
@click.option(
    "--queries",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="YAML or JSON overriding the Prometheus queries (see docs/residency.md).",
)
@click.option("--step", default="5m", show_default=True, help="Prometheus range-query step.")
@click.option(
    "--cost-column",
    type=click.Choice(["EffectiveCost", "BilledCost", "ListCost"]),
    default="EffectiveCost",
    show_default=True,
    help="FOCUS cost basis.",
)
@click.option(
    "--instance-types",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="FOCUS instance type → GPU table (YAML/JSON).",
)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds per HTTP request.")
@click.option("--as-of", help="Now, for the default live window and fetched_at (RFC 3339).")
def residency_import(**kw: Any) -> None:
    """Convert OpenCost, Prometheus or FOCUS data into native residency records.

    Credentials for live sources come from the environment, never from the command line:
    POLICY_ENGINE_{OPENCOST,PROMETHEUS}_BEARER_TOKEN[_FILE], _USERNAME/_PASSWORD, _CA_BUNDLE.
    """

    def action() -> int:
        from policy_engine.commands.residency import import_residency

        source = kw["source"]
        live = {"opencost": kw["opencost_url"], "prometheus": kw["prometheus_url"]}
        for name, url in live.items():
            if url and name != source:
                raise UsageError(f"--{name} needs --from {name}")
        return import_residency(
            source,
            list(kw["inputs"]),
            kw["output"],
            portfolio_root=kw["portfolio_root"],
            url=live.get(source),
            window_start=kw["window_start"],
            window_end=kw["window_end"],
            label=kw["label"],
            currency=kw["currency"],
            queries=kw["queries"],
            step=kw["step"],
            cost_column=kw["cost_column"],
            instance_types=kw["instance_types"],
            timeout=kw["timeout"],
            environ=os.environ,
            now=parse_as_of(kw["as_of"]) if kw["as_of"] else None,
        )

    _run(action)


@cli.command()
@_path_argument
@_load_flags
@click.option("--quarter", metavar="YYYYQn", help="Calendar quarter in UTC, e.g. 2026Q3.")
@click.option(
    "--since", metavar="DATE", help="Start of a custom period (a UTC midnight), instead of --quarter."
)
@click.option(
    "--until", metavar="DATE", help="End of the custom period, exclusive (default: today's UTC midnight)."
)
@click.option(
    "--as-of",
    help="Now, RFC 3339 (default: the clock): picks the default period, the last complete quarter.",
)
@click.option(
    "--working-tree",
    is_flag=True,
    help="Audit the files on disk (not pinned to a commit) instead of the commit before the period end.",
)
@click.option(
    "--format",
    "formats",
    multiple=True,
    metavar="NAME[=PATH]",
    help="markdown, html, json; repeatable. Default: markdown.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File for the format given without a path.",
)
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning", "never"]),
    default="never",
    show_default=True,
    help="Lowest severity that makes the audit exit 1.",
)
def audit(**kwargs: Any) -> None:
    """Quarterly portfolio review of the portfolio at PATH (always in the audit context).

    The manifest and rules are those of the last first-parent commit before the period's end;
    measured residency comes from residency/ on disk, limited to the period.
    """

    def action() -> int:
        from policy_engine.audit.quarters import choose_period
        from policy_engine.commands.audit import FORMATS, AuditOptions, run_audit
        from policy_engine.outputs import parse_formats

        period = choose_period(
            kwargs["quarter"], kwargs["since"], kwargs["until"], parse_as_of(kwargs["as_of"])
        )
        options = AuditOptions(
            load=_load_options(**kwargs),
            period=period,
            fail_on=kwargs["fail_on"],
            working_tree=kwargs["working_tree"],
            outputs=parse_formats(kwargs["formats"], kwargs["output"], choices=FORMATS, default="markdown"),
            progress=sys.stderr.isatty(),
        )
        return run_audit(options)

    _run(action)


def main() -> None:
    # pydantic looks for plugins in every installed package's entry points on first use (a
    # tenth of a pre-commit run); this command uses none.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    cli(prog_name="policy-engine")
