"""Everything the audit reads: the manifest and rules at each period end, measured residency,
and the hashes of every input. The only part of the audit that does I/O.

In a git repository the manifest and rules of a period come from the last first-parent commit
of HEAD committed before the period's end (DESIGN §9), read from git objects, never from the
working tree; the previous period is read the same way for trends, and "no commit" there is
"no data", not an error. Outside git (or with ``--working-tree``) the files on disk are the
manifest, evaluated as of the period end, and the report says it is not pinned to a commit.

Measured residency always comes from the files on disk (``residency/`` under the portfolio
root): measurements are data about the past, not rules, and the records of a quarter usually
arrive after it ends. Each period uses only the records whose window lies inside it.

Evaluation is ``check``'s own pipeline (``load_all`` + ``build_check_report``) in the
``audit`` context, with every finding listed (``--all``) and git history facts in git mode.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from policy_engine.audit.model import EvidenceFile, ManifestRef
from policy_engine.audit.quarters import Period
from policy_engine.commands.check import (
    CheckOptions,
    Inputs,
    Loaded,
    LoadOptions,
    build_check_report,
    load_all,
    load_measured,
    policy_sources,
)
from policy_engine.engine import Facts, FailOn
from policy_engine.errors import InputError, InputErrors, UsageError
from policy_engine.gitrepo import CommitInfo, GitTreeSource
from policy_engine.history import StageHistory, Summaries, VersionKey, stage_history
from policy_engine.loading import (
    CONFIG_FILE,
    EXCEPTIONS_FILE,
    MODELS_DIR,
    PORTFOLIO_FILE,
    YAML_SUFFIXES,
    Portfolio,
    load_portfolio,
)
from policy_engine.models.report import Report
from policy_engine.policies import PolicySource, _is_test_material
from policy_engine.pullrequest import Session, _base_policy_sources, _history_facts
from policy_engine.residency.aggregate import Measured, measure
from policy_engine.residency.native import RESIDENCY_DIR, SUFFIXES
from policy_engine.residency.records import ResidencyRecord
from policy_engine.sources import DirectorySource, FileSource, display_prefix, repo_root_of
from policy_engine.targets import TargetSet, build_targets

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class CollectOptions:
    load: LoadOptions
    period: Period
    fail_on: FailOn = "never"
    working_tree: bool = False


@dataclass(frozen=True)
class Snapshot:
    """The portfolio at one period end: evaluated, measured over the period, with history."""

    period: Period
    manifest: ManifestRef
    loaded: Loaded
    report: Report
    targets: TargetSet
    measured: Measured | None
    history: dict[VersionKey, StageHistory]
    files: list[EvidenceFile]
    policy_files: list[EvidenceFile]


@dataclass(frozen=True)
class FloorSample:
    """The declared warm floor at one instant (None: no manifest known then)."""

    at: datetime
    commit: str | None
    targets: TargetSet | None


@dataclass(frozen=True)
class Collected:
    period: Period
    current: Snapshot
    previous: Snapshot | None
    previous_note: str | None
    records: list[ResidencyRecord] | None
    residency_files: list[EvidenceFile]
    floor_samples: list[FloorSample]
    root: str
    options: CollectOptions
    policy_dirs: tuple[str, ...] = ()  # --policies as the report shows them (repository-relative)


def _quiet(_: str) -> None:
    return None


def collect(options: CollectOptions, progress: Progress = _quiet) -> Collected:
    path = options.load.path
    prefix = display_prefix(path)
    root = prefix.rstrip("/") or "."
    progress("reading measured residency")
    disk = DirectorySource(path)
    records = load_measured(disk, prefix)
    residency_files = _hashes(disk, disk.list(RESIDENCY_DIR, SUFFIXES), prefix, "residency", None)
    repo_root = repo_root_of(path)
    in_git = (repo_root / ".git").exists()
    if options.working_tree or not in_git:
        collected = _from_disk(options, records, residency_files, root, progress)
    else:
        collected = _from_git(options, Session.open(path), records, residency_files, root, progress)
    return dataclasses.replace(
        collected, policy_dirs=tuple(_shown(d, repo_root) for d in options.load.policy_dirs)
    )


def _shown(directory: Path, repo_root: Path) -> str:
    try:
        return directory.resolve().relative_to(repo_root).as_posix()
    except ValueError:
        return directory.as_posix()


# ---------------------------------------------------------------------------- files on disk


def _from_disk(
    options: CollectOptions,
    records: list[ResidencyRecord] | None,
    residency_files: list[EvidenceFile],
    root: str,
    progress: Progress,
) -> Collected:
    path = options.load.path
    prefix = display_prefix(path)
    disk = DirectorySource(path)
    why = "--working-tree" if options.working_tree else "not inside a git repository"
    manifest = ManifestRef(
        pinned=False,
        root=root,
        note=f"not pinned to a commit ({why}): the files on disk, evaluated as of the period end",
    )
    sources = policy_sources(options.load)
    progress(f"evaluating the files on disk as of {options.period.end_text}")
    current = _snapshot(
        options,
        options.period,
        manifest,
        Inputs(lambda: load_portfolio(disk, prefix), sources, residency=lambda: records),
        records,
        Facts(),
        {},
        _manifest_files(disk, prefix, "manifest", None),
        sources,
    )
    samples = [FloorSample(at, None, None) for at in (options.period.start, *options.period.month_starts())]
    samples.append(FloorSample(options.period.end, None, current.targets))
    return Collected(
        period=options.period,
        current=current,
        previous=None,
        previous_note="no data: the manifest is not pinned to a commit, so there is no earlier state "
        "to compare with (run the audit inside the portfolio's git repository)",
        records=records,
        residency_files=residency_files,
        floor_samples=samples,
        root=root,
        options=options,
    )


# ---------------------------------------------------------------------------- git


def _from_git(
    options: CollectOptions,
    session: Session,
    records: list[ResidencyRecord] | None,
    residency_files: list[EvidenceFile],
    root: str,
    progress: Progress,
) -> Collected:
    repo = session.repo
    head = repo.head()
    summaries = Summaries(repo.blob)
    period = options.period
    commit = repo.last_before(head, int(period.end.timestamp()))
    if commit is None:
        raise UsageError(
            f"no commit before {period.end_text} on the first-parent history of HEAD, so there is no "
            f"manifest for {period.label}; audit the files on disk with --working-tree"
        )
    progress(f"evaluating {period.label} at commit {commit.sha[:12]}")
    current = _git_snapshot(options, session, summaries, period, commit, records)
    if current is None:
        raise InputErrors(
            [
                InputError(
                    f"{commit.sha[:12]}:{session.prefix}{PORTFOLIO_FILE}",
                    1,
                    1,
                    f"commit {commit.sha[:12]} (the last before {period.end_text}) has no portfolio here",
                    "",
                    "portfolio.yaml in the commit the audit reads",
                )
            ]
        )
    before = period.previous()
    previous: Snapshot | None = None
    note: str | None = None
    earlier = repo.last_before(head, int(before.end.timestamp()))
    if earlier is None:
        note = f"no data: no commit before {before.end_text} on the first-parent history of HEAD"
    else:
        progress(f"evaluating {before.label} at commit {earlier.sha[:12]}")
        try:
            previous = _git_snapshot(options, session, summaries, before, earlier, records)
        except InputErrors as exc:
            count = len(exc.errors)
            note = (
                f"no data: the manifest at {earlier.sha[:12]} does not load "
                f"({count} input error{'s' if count != 1 else ''})"
            )
        else:
            if previous is None:
                note = f"no data: the portfolio did not exist at {earlier.sha[:12]}"
    progress("tracing the warm floor")
    samples = _floor_samples(session, period, current, previous)
    return Collected(
        period=period,
        current=current,
        previous=previous,
        previous_note=note,
        records=records,
        residency_files=residency_files,
        floor_samples=samples,
        root=root,
        options=options,
    )


def _git_snapshot(
    options: CollectOptions,
    session: Session,
    summaries: Summaries,
    period: Period,
    commit: CommitInfo,
    records: list[ResidencyRecord] | None,
) -> Snapshot | None:
    """The portfolio at ``commit`` evaluated as of ``period.end``; None when it has no portfolio."""
    repo = session.repo
    files = GitTreeSource(repo, commit.sha, session.subdir)
    if files.read(PORTFOLIO_FILE) is None:
        return None

    def portfolio() -> Portfolio:
        try:
            return load_portfolio(files, session.prefix)
        except InputErrors as exc:
            raise InputErrors(
                [dataclasses.replace(e, file=f"{commit.sha[:12]}:{e.file}") for e in exc.errors]
            ) from None

    check = _check_options(options, period)
    sources = _base_policy_sources(check, session, commit.sha)
    history, _ = stage_history(
        repo.log(commit.sha, [session.at(MODELS_DIR)], first_parent=True), summaries, session.models_prefix
    )
    manifest = ManifestRef(
        pinned=True,
        commit=commit.sha,
        committed_at=commit.committed_at,
        root=session.prefix.rstrip("/") or ".",
    )
    role = "manifest" if period == options.period else "previous-manifest"
    return _snapshot(
        options,
        period,
        manifest,
        Inputs(portfolio, sources, residency=lambda: records),
        records,
        Facts(available=frozenset({"history"})),
        history,
        _manifest_files(files, session.prefix, role, commit.sha),
        sources,
    )


def _floor_samples(
    session: Session, period: Period, current: Snapshot, previous: Snapshot | None
) -> list[FloorSample]:
    """The declared warm floor at the previous period end, each month start and the period end."""
    repo = session.repo
    head = repo.head()
    known: dict[str, TargetSet | None] = {}
    if current.manifest.commit:
        known[current.manifest.commit] = current.targets
    if previous is not None and previous.manifest.commit:
        known[previous.manifest.commit] = previous.targets
    samples = []
    for at in (period.start, *period.month_starts()):
        commit = repo.last_before(head, int(at.timestamp()))
        if commit is None:
            samples.append(FloorSample(at, None, None))
            continue
        if commit.sha not in known:
            files = GitTreeSource(repo, commit.sha, session.subdir)
            try:
                known[commit.sha] = (
                    build_targets(load_portfolio(files, session.prefix))
                    if files.read(PORTFOLIO_FILE) is not None
                    else None
                )
            except InputErrors:
                known[commit.sha] = None
        targets = known[commit.sha]
        samples.append(FloorSample(at, commit.sha if targets is not None else None, targets))
    samples.append(FloorSample(period.end, current.manifest.commit, current.targets))
    return samples


# ---------------------------------------------------------------------------- evaluation


def _check_options(options: CollectOptions, period: Period) -> CheckOptions:
    return CheckOptions(
        load=options.load, as_of=period.end, context="audit", fail_on=options.fail_on, show_all=True
    )


def _snapshot(
    options: CollectOptions,
    period: Period,
    manifest: ManifestRef,
    inputs: Inputs,
    records: list[ResidencyRecord] | None,
    facts: Facts,
    history: dict[VersionKey, StageHistory],
    files: list[EvidenceFile],
    sources: list[PolicySource],
) -> Snapshot:
    loaded = load_all(options.load, inputs)
    targets = build_targets(loaded.portfolio)
    if history:
        facts = dataclasses.replace(facts, history=_history_facts(targets, history))
    report = build_check_report(_check_options(options, period), loaded, facts)
    measured = None
    if records:
        measured = measure(loaded.portfolio, records, period.end, window_days=period.days)
    return Snapshot(
        period, manifest, loaded, report, targets, measured, history, files, _policy_files(sources)
    )


# ---------------------------------------------------------------------------- evidence


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hashes(
    files: FileSource, paths: list[str], prefix: str, role: Any, commit: str | None
) -> list[EvidenceFile]:
    found = []
    for path in paths:
        data = files.read(path)
        if data is not None:
            found.append(EvidenceFile(role=role, path=prefix + path, sha256=_sha256(data), commit=commit))
    return found


def _manifest_files(files: FileSource, prefix: str, role: str, commit: str | None) -> list[EvidenceFile]:
    paths = [PORTFOLIO_FILE, EXCEPTIONS_FILE, CONFIG_FILE, *files.list(MODELS_DIR, YAML_SUFFIXES)]
    return _hashes(files, paths, prefix, role, commit)


def _policy_files(sources: list[PolicySource]) -> list[EvidenceFile]:
    """Every policy file the run loaded, shown as the report shows it (``builtin:<file>``)."""
    found = []
    for source in sources:
        for path in source.files.list(source.directory, YAML_SUFFIXES):
            rel = path.removeprefix(source.directory)
            if _is_test_material(rel):
                continue
            shown = "builtin:" + rel.lstrip("/") if source.builtin else source.prefix + rel.lstrip("/")
            data = source.files.read(path)
            if data is None:
                continue
            at = source.files.commit if isinstance(source.files, GitTreeSource) else None
            found.append(EvidenceFile(role="policy", path=shown, sha256=_sha256(data), commit=at))
    return found
