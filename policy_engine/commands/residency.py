"""``policy-engine residency import``: turn a source's data into native residency records."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, TextIO

from policy_engine.errors import ExitCode, InputError, InputErrors
from policy_engine.loading import load_portfolio
from policy_engine.models.types import duration_hours, format_timestamp, parse_timestamp
from policy_engine.residency import focus, opencost, prometheus
from policy_engine.residency.http import Client, Credentials, HttpError
from policy_engine.residency.inputs import JsonInput, Result, day_windows, is_midnight, midnight
from policy_engine.residency.join import DeploymentIndex
from policy_engine.residency.native import check_records, write_records
from policy_engine.sources import DirectorySource, display_prefix

Source = Literal["opencost", "prometheus", "focus"]
SOURCES: tuple[Source, ...] = ("opencost", "prometheus", "focus")
OUTPUT_SUFFIXES = (".jsonl", ".csv")
MAX_SHOWN = 100  # located errors printed; the count covers all of them


class _Usage(Exception):
    pass


def import_residency(
    source: Source,
    inputs: list[Path],
    output: Path,
    *,
    portfolio_root: Path | None = None,
    url: str | None = None,
    window_start: str | datetime | None = None,
    window_end: str | datetime | None = None,
    label: str | None = None,
    currency: str | None = None,
    queries: Path | None = None,
    step: str = "5m",
    cost_column: str = "EffectiveCost",
    instance_types: Path | None = None,
    timeout: float = 30.0,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Convert ``inputs`` (files) or a live ``url`` into native records written to ``output``.

    Returns 0, or 2 after printing every located input error (or the usage problem) to stderr.
    ``environ`` supplies the credentials of a live source (default: the process environment).
    """
    err = stderr if stderr is not None else sys.stderr
    try:
        result, index, fixed_currency = _run(
            source,
            inputs,
            output,
            portfolio_root=portfolio_root,
            url=url,
            window_start=window_start,
            window_end=window_end,
            label=label,
            currency=currency,
            queries=queries,
            step=step,
            cost_column=cost_column,
            instance_types=instance_types,
            timeout=timeout,
            environ=os.environ if environ is None else environ,
            now=now,
            err=err,
        )
    except (_Usage, HttpError) as exc:
        print(f"error: {exc}", file=err)
        return ExitCode.INPUT_ERROR
    except InputErrors as exc:
        return _fail(exc.errors, err)
    for warning in result.warnings:
        print(f"warning: {warning}", file=err)
    if result.errors:
        return _fail(result.errors, err)
    problems = check_records(result.records, fixed_currency)
    if problems:
        return _fail(problems, err)
    if index is not None:
        unknown = sorted(
            {
                r.deployment_id
                for r in result.records
                if r.deployment_id and r.deployment_id not in index.by_id
            }
        )
        if unknown:
            print(
                f"warning: {len(unknown)} deployment id(s) are not in the portfolio (kept, reported by "
                f"`check`): {', '.join(unknown)}",
                file=err,
            )
    write_records(result.records, output)
    deployments = len({r.deployment_id for r in result.records if r.deployment_id})
    unattributed = sum(1 for r in result.records if r.deployment_id is None)
    print(
        f"wrote {len(result.records)} record(s) for {deployments} deployment(s), "
        f"{unattributed} unattributed, to {output.as_posix()}",
        file=err,
    )
    return ExitCode.OK


def _fail(errors: list[InputError], err: TextIO) -> int:
    for error in errors[:MAX_SHOWN]:
        print(error.render(), file=err)
    count = len(errors)
    if count > MAX_SHOWN:
        print(f"… and {count - MAX_SHOWN} more", file=err)
    print(f"{count} input error{'s' if count != 1 else ''}; nothing was written.", file=err)
    return ExitCode.INPUT_ERROR


def _moment(value: str | datetime | None, option: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value.astimezone(UTC) if value is not None else None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise _Usage(f"{option}: {exc}") from None


def _run(
    source: Source,
    inputs: list[Path],
    output: Path,
    *,
    portfolio_root: Path | None,
    url: str | None,
    window_start: str | datetime | None,
    window_end: str | datetime | None,
    label: str | None,
    currency: str | None,
    queries: Path | None,
    step: str,
    cost_column: str,
    instance_types: Path | None,
    timeout: float,
    environ: Mapping[str, str],
    now: datetime | None,
    err: TextIO,
) -> tuple[Result, DeploymentIndex | None, str | None]:
    if source not in SOURCES:
        raise _Usage(f"unknown source {source!r}; choose from {', '.join(SOURCES)}")
    if output.suffix not in OUTPUT_SUFFIXES:
        raise _Usage(f"{output.as_posix()}: the output must end in .jsonl or .csv")
    if url and inputs:
        raise _Usage("give input files or a server URL, not both")
    if not url and not inputs:
        hint = "" if source == "focus" else f" or --{source} URL"
        raise _Usage(f"nothing to import: give {source} input files{hint}")
    if url and source == "focus":
        raise _Usage("FOCUS data is read from exported files only")
    index: DeploymentIndex | None = None
    portfolio_currency: str | None = None
    if portfolio_root is not None:
        if not (portfolio_root / "portfolio.yaml").is_file():
            raise _Usage(f"{portfolio_root.as_posix()}: no portfolio.yaml (expected a portfolio root)")
        portfolio = load_portfolio(DirectorySource(portfolio_root), display_prefix(portfolio_root))
        index = DeploymentIndex(portfolio)
        portfolio_currency = index.currency
    if currency is not None and portfolio_currency is not None and currency != portfolio_currency:
        raise _Usage(f"--currency {currency} differs from the portfolio's currency {portfolio_currency}")
    fixed_currency = currency or portfolio_currency
    if label is None and index is not None:
        label = index.guess_label_key()
    if not label:
        raise _Usage("--label is required (the Kubernetes label / FOCUS tag that names the deployment)")
    start = _moment(window_start, "--window-start")
    end = _moment(window_end, "--window-end")
    if (start is None) != (end is None):
        raise _Usage("give both --window-start and --window-end, or neither")
    if start is not None and end is not None and end <= start:
        raise _Usage("--window-end must be after --window-start")
    clock = (now or datetime.now(UTC)).astimezone(UTC)
    fetched_at = format_timestamp(clock.replace(microsecond=0)) if url else None

    def live_window() -> tuple[datetime, datetime]:
        if start is not None and end is not None:
            if not (is_midnight(start) and is_midnight(end)):
                raise _Usage("with a live source, --window-start and --window-end must be at 00:00:00Z")
            return start, end
        today = midnight(clock)
        return today - timedelta(days=1), today

    def client(name: str) -> Client:
        assert url is not None
        return Client(url, Credentials.from_environ(environ, name), timeout)

    if source == "opencost":
        documents: list[JsonInput] = []
        errors: list[InputError] = []
        if url:
            live_start, live_end = live_window()
            documents = opencost.fetch(client("opencost"), live_start, live_end, label)
        else:
            documents = _json_inputs(_expand(inputs, ".json"), errors)
        oc_currency = fixed_currency
        if oc_currency is None:
            oc_currency = "USD"
            print(
                "warning: OpenCost reports no currency; assuming USD (pass --currency or --portfolio)",
                file=err,
            )
        result = opencost.convert(
            documents, label=label, currency=oc_currency, index=index, fetched_at=fetched_at
        )
        result.errors[:0] = errors
        if start is not None and end is not None:
            _restrict(result, start, end)
        return result, index, fixed_currency

    if source == "prometheus":
        specs, errors = prometheus.load_queries(queries)
        try:
            step_seconds = round(duration_hours(step) * 3600)
        except ValueError as exc:
            raise _Usage(f"--step: {exc}") from None
        if step_seconds < 1:
            raise _Usage("--step must be at least 1s")
        if errors:
            return Result(errors=errors), index, fixed_currency
        answers: list[prometheus.QueryData] = []
        windows: list[tuple[datetime, datetime]] | None = None
        if url:
            live_start, live_end = live_window()
            windows = day_windows(live_start, live_end)
            answers = prometheus.fetch(
                client("prometheus"), specs, windows, label=label, step=step_seconds, errors=errors
            )
        else:
            windows = day_windows(start, end) if start is not None and end is not None else None
            for name, document in _prometheus_inputs(inputs, specs, errors):
                parsed = prometheus.parse_response(name, document, errors)
                if parsed is not None:
                    answers.append(parsed)
        if errors:
            return Result(errors=errors), index, fixed_currency
        result = prometheus.convert(
            answers,
            queries=specs,
            label=label,
            index=index,
            windows=windows,
            default_step=step_seconds,
            fetched_at=fetched_at,
        )
        return result, index, fixed_currency

    table, errors = focus.load_instance_types(instance_types)
    files: list[tuple[str, bytes]] = []
    for path in _expand(inputs, ".csv"):
        raw = _read(path, errors)
        if raw is not None:
            files.append((path.as_posix(), raw))
    if errors:
        return Result(errors=errors), index, fixed_currency
    result = focus.convert(
        files,
        label=label,
        index=index,
        cost_column=cost_column,
        instance_types=table,
        currency=fixed_currency,
    )
    if start is not None and end is not None:
        _restrict(result, start, end)
    return result, index, fixed_currency


def _restrict(result: Result, start: datetime, end: datetime) -> None:
    """Keep the records inside ``[start, end)``; say how many were left out."""
    kept = [r for r in result.records if r.window_start >= start and r.window_end <= end]
    dropped = len(result.records) - len(kept)
    if dropped:
        result.warnings.append(f"{dropped} record(s) outside --window-start/--window-end were not written")
    result.records = kept


def _expand(paths: list[Path], suffix: str) -> list[Path]:
    """Files as given; a directory stands for its ``*<suffix>`` files, sorted."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(suffix)))
        else:
            out.append(path)
    return out


def _read(path: Path, errors: list[InputError]) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError as exc:
        errors.append(
            InputError(path.as_posix(), 1, 1, f"cannot read: {exc.strerror}", "", "a readable file")
        )
        return None


def _json_inputs(paths: list[Path], errors: list[InputError]) -> list[JsonInput]:
    documents = []
    for path in paths:
        raw = _read(path, errors)
        if raw is None:
            continue
        loaded = JsonInput.from_bytes(path.as_posix(), raw)
        if isinstance(loaded, InputError):
            errors.append(loaded)
        else:
            documents.append(loaded)
    return documents


def _prometheus_inputs(
    paths: list[Path], specs: dict[str, prometheus.QuerySpec], errors: list[InputError]
) -> list[tuple[str, JsonInput]]:
    """Response files named after their query: ``gpu_requests.json``, ``requests.2025-06.json``…"""
    out = []
    for path in _expand(paths, ".json"):
        name = path.name.split(".", 1)[0]
        if name not in specs:
            errors.append(
                InputError(
                    path.as_posix(),
                    1,
                    1,
                    f"cannot tell which query {path.name!r} answers",
                    "",
                    "a file named <query>.json, <query> one of " + ", ".join(specs),
                )
            )
            continue
        for document in _json_inputs([path], errors):
            out.append((name, document))
    return out
