"""The command line. The only module that imports click or reads the environment."""

from __future__ import annotations

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
    sys.exit(int(code))


_path_argument = click.argument(
    "path", type=click.Path(file_okay=False, path_type=Path), default=".", required=False
)


def _load_options(**kwargs: Any) -> Any:
    from policy_engine.commands.check import LoadOptions

    path: Path = kwargs["path"]
    if not path.is_dir():
        raise UsageError(f"{path}: no such directory (expected a portfolio root with portfolio.yaml)")
    return LoadOptions(
        path=path,
        policy_dirs=tuple(kwargs["policies"]),
        builtin=not kwargs["no_builtin"],
        backend=kwargs["cel_backend"],
        disallow_overrides=kwargs["disallow_overrides"],
    )


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
def check(**kwargs: Any) -> None:
    """Evaluate the policies against the portfolio at PATH and report findings."""

    def action() -> int:
        from policy_engine.commands.check import CheckOptions, run_check
        from policy_engine.outputs import parse_formats

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


def main() -> None:
    cli(prog_name="policy-engine")
