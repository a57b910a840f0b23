"""Pull-request mode (DESIGN §6) and the other git-derived facts of ``check``.

With a base, the engine evaluates the head's model versions under the base's rules:

- the rules (``portfolio.yaml``, each model's ``entry_criteria``/``slo``/``exit_criteria_defaults``,
  ``exceptions.yaml``, ``.policy-engine.yaml``, ``policies/`` and in-repo ``--policies``
  directories) are read from the merge base's git objects, never from the working tree, and any
  difference in them is the computed field ``change.rules_changed`` that the built-in policy
  ``governance.rules-changed`` judges against APPROVED reviews on the head commit;
- every target gets ``old`` (the same target at the base, ``{}`` when new) and ``change``
  (``kind``, ``from_stage``, ``to_stage``, ``monthly_delta``);
- the base is evaluated too, and failing findings that already existed there (same fingerprint)
  on targets the change does not touch become ``pre_existing`` and do not block.

History (``history``) and sign-off verification are computed here as well, in pull-request
mode and, when asked for, in a plain check.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from policy_engine.commands.check import CheckOptions, Inputs, build_check_report, load_all
from policy_engine.engine import Facts
from policy_engine.errors import ExitCode, InputError, InputErrors, UsageError, printable
from policy_engine.factcache import cached_material
from policy_engine.gitrepo import FETCH_HINT, GitRepo, GitTreeSource
from policy_engine.history import (
    StageHistory,
    Summaries,
    VersionKey,
    overlay,
    signoff_introductions,
    stage_history,
)
from policy_engine.loading import (
    CONFIG_FILE,
    EXCEPTIONS_FILE,
    MODELS_DIR,
    PORTFOLIO_FILE,
    YAML_SUFFIXES,
    ModelEntry,
    Portfolio,
    load_document,
    load_portfolio,
)
from policy_engine.models.portfolio import ModelFile
from policy_engine.models.report import Finding, Report
from policy_engine.models.types import format_timestamp
from policy_engine.policies import PolicySource, _is_test_material, builtin_source
from policy_engine.sources import DirectorySource, FileSource, display_prefix
from policy_engine.targets import TargetSet, build_targets
from policy_engine.verification import (
    Evidence,
    Mode,
    Review,
    current_approvals,
    parse_reviews,
    signoff_fields,
    verdicts,
)
from policy_engine.yamlsource import load_plain

RULE_FIELDS = ("entry_criteria", "slo", "exit_criteria_defaults")
RESIDENCY_FILES = ("residency", (".jsonl", ".csv"))  # as ``load_measured`` finds them
# Stages that keep GPUs warm; a version in one of them leaves the portfolio only by retirement.
WARM_STAGES = ("canary", "shadow", "production", "fallback", "deprecated")
_PRESENT = ("fail", "error", "waived")


@dataclasses.dataclass(frozen=True, slots=True)
class Session:
    """The repository and the portfolio's place in it."""

    repo: GitRepo
    path: Path  # the portfolio root on disk
    subdir: str  # the portfolio root, relative to the repository root
    prefix: str  # how report paths start ("" or "examples/acme/")

    @classmethod
    def open(cls, path: Path) -> Session:
        repo = GitRepo.open(path)
        return cls(repo, path, repo.relative(path), display_prefix(path))

    def at(self, subpath: str) -> str:
        return f"{self.subdir}/{subpath}" if self.subdir else subpath

    @property
    def models_prefix(self) -> str:
        return self.at(MODELS_DIR) + "/"


def git_check_report(options: CheckOptions) -> Report:
    """``check`` with any git option: pull-request mode with a base, else history/verification."""
    git = options.git
    if git.base is None:
        for flag, value in (("--head", git.head), ("--new-only", git.new_only)):
            if value:
                raise UsageError(f"{flag} needs --base (pull-request mode)")
    session = Session.open(options.load.path)
    reviews = _read_reviews(git.reviews)
    if (git.base is not None or git.history) and session.repo.is_shallow():
        print(
            "warning: the clone is shallow, so history facts (first_seen, stage_since) start at its "
            f"oldest commit and clock checks can miss a reset; {FETCH_HINT}",
            file=sys.stderr,
        )
    if git.base is None:
        return _plain_report(options, session, reviews)
    return _pull_request_report(options, session, git.base, reviews)


def _read_reviews(path: Path | None) -> list[Review] | None:
    if path is None:
        return None
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"--reviews {path}: {exc.strerror or exc}") from None
    return parse_reviews(raw, str(path))


# ---------------------------------------------------------------------------- plain check


def _plain_report(options: CheckOptions, session: Session, reviews: list[Review] | None) -> Report:
    """A plain check of the working tree plus ``history`` (``--history``) and/or verified
    sign-offs (``--signoff-verification``)."""
    loaded = load_all(options.load)
    head = session.repo.head()
    summaries = Summaries(session.repo.blob)
    targets = build_targets(loaded.portfolio, materials=cached_material)
    history: dict[str, dict[str, Any]] = {}
    if options.git.history:
        committed, _ = stage_history(
            session.repo.log(head, [session.at(MODELS_DIR)], first_parent=True),
            summaries,
            session.models_prefix,
        )
        now = format_timestamp(options.as_of)
        history = _history_facts(targets, overlay(committed, _stages(loaded.portfolio), now))
    extra: dict[str, dict[str, dict[str, Any]]] = {}
    mode = options.git.signoff_verification
    if mode is not None:
        evidence = _evidence(session, mode, loaded.portfolio, head, reviews, summaries)
        extra = signoff_fields(targets, verdicts(loaded.portfolio, evidence), mode)
    available = frozenset({"history"} if options.git.history else set())
    facts = Facts(history=history, extra=extra, available=available)
    return build_check_report(options, loaded, facts)


# ---------------------------------------------------------------------------- pull-request mode


@dataclasses.dataclass(frozen=True, slots=True)
class Revisions:
    base: str  # the merge base
    head: str  # the head commit (HEAD when the head is the working tree)
    worktree: bool  # the head's files come from the working tree


def _pull_request_report(
    options: CheckOptions, session: Session, base_ref: str, reviews: list[Review] | None
) -> Report:
    repo = session.repo
    git = options.git
    head = repo.resolve(git.head, "--head") if git.head else repo.head()
    base = repo.merge_base(repo.resolve(base_ref, "--base"), head, base_ref)
    revs = Revisions(base, head, worktree=git.head is None)
    if revs.worktree:
        _warn_uncommitted(repo.uncommitted(session.subdir))
    base_files = GitTreeSource(repo, base, session.subdir)
    head_files: FileSource = (
        DirectorySource(session.path) if revs.worktree else GitTreeSource(repo, head, session.subdir)
    )

    sides: dict[str, Portfolio] = {}

    def merged() -> Portfolio:
        errors: list[InputError] = []
        try:
            sides["base"] = _load_base(base_files, session, base)
        except InputErrors as exc:
            errors.extend(exc.errors)
        try:
            sides["head"] = load_portfolio(head_files, session.prefix)
        except InputErrors as exc:
            errors.extend(exc.errors)
        if errors:
            raise InputErrors(errors)
        return merge(sides["base"], sides["head"])

    loaded = load_all(
        options.load,
        Inputs(
            merged,
            _base_policy_sources(options, session, base),
            # In-repo residency files judge the change too: read them from the base.
            residency_files=(base_files, session.prefix),
            also_measured=lambda: [sides["base"]],  # (the base's report measures them too)
        ),
    )
    base_pf, head_pf = sides["base"], sides["head"]
    base_loaded = dataclasses.replace(loaded, portfolio=base_pf)
    head_targets = build_targets(loaded.portfolio, materials=cached_material)
    base_targets = build_targets(base_pf, materials=cached_material)

    old, change = target_changes(base_pf, head_pf, base_targets, head_targets)
    approvers, roles = _rules_approvals(session, revs, loaded.portfolio, reviews)
    change["portfolio"].update(
        rules_changed=rules_changes(session, revs, options, base_pf, head_pf),
        rules_approvals=roles,
        rules_approvers=approvers,
    )

    summaries = Summaries(repo.blob)
    now = format_timestamp(options.as_of)
    head_history, base_history = _pr_history(session, revs, summaries)
    mode: Mode = git.signoff_verification or loaded.portfolio.config.signoff_verification or "declared"
    evidence = _evidence(session, mode, loaded.portfolio, head, reviews, summaries)
    head_facts = Facts(
        history=_history_facts(
            head_targets, base_clocks(overlay(head_history, _stages(head_pf), now), base_history)
        ),
        old=old,
        change=change,
        extra=signoff_fields(head_targets, verdicts(loaded.portfolio, evidence), mode),
        available=frozenset({"history", "old", "change"}),
    )
    base_facts = Facts(
        history=_history_facts(base_targets, overlay(base_history, _stages(base_pf), now)),
        extra=signoff_fields(base_targets, verdicts(base_pf, evidence), mode),
        available=frozenset({"history"}),
    )
    at_base = build_check_report(
        dataclasses.replace(options, show_all=False), base_loaded, base_facts, targets=base_targets
    )
    present = {f.fingerprint for f in at_base.findings if f.status in _PRESENT}
    touched = {target for target, facts in change.items() if facts["kind"] != "unchanged"}
    report = build_check_report(options, loaded, head_facts, targets=head_targets)
    return mark_pre_existing(
        report,
        present,
        touched,
        new_only=git.new_only,
        base=base,
        head="working tree" if revs.worktree else head,
    )


def _warn_uncommitted(paths: list[str]) -> None:
    """A dirty working tree is evaluated as the head, but reviews approve commits: say so."""
    if not paths:
        return
    shown = printable(", ".join(paths[:5])) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    print(
        f"warning: uncommitted changes ({shown}) are evaluated as part of the head, and reviews "
        "on HEAD do not cover them; commit them, or pass --head HEAD to check the commit alone",
        file=sys.stderr,
    )


def _load_base(files: FileSource, session: Session, base: str) -> Portfolio:
    """The base's portfolio; its errors name the revision (``<sha>:path``)."""
    if files.read(PORTFOLIO_FILE) is None:
        raise InputErrors(
            [
                InputError(
                    f"{base[:12]}:{session.prefix}{PORTFOLIO_FILE}",
                    1,
                    1,
                    "the base revision has no portfolio here; pull-request mode reads the rules "
                    "from the base, so check the change that creates a portfolio without --base",
                    "",
                    "portfolio.yaml at the merge base",
                )
            ]
        )
    try:
        return load_portfolio(files, session.prefix)
    except InputErrors as exc:
        raise InputErrors(
            [dataclasses.replace(error, file=f"{base[:12]}:{error.file}") for error in exc.errors]
        ) from None


def merge(base: Portfolio, head: Portfolio) -> Portfolio:
    """Rules from the base, model versions from the head (matched by model id, not file)."""
    rules = {entry.model.id: entry.model for entry in base.models}
    unchanged = unchanged_files(base, head)
    models = []
    for entry in head.models:
        if entry.model.id in unchanged:
            models.append(entry)  # its rules are the base's: it keeps its content's cached facts
            continue
        old = rules.get(entry.model.id)
        model = entry.model
        if old is not None:
            model = model.model_copy(update={name: getattr(old, name) for name in RULE_FIELDS})
        models.append(ModelEntry(model, entry.source))
    return dataclasses.replace(base, models=models)


def unchanged_files(base: Portfolio, head: Portfolio) -> set[str]:
    """The models whose file has the same content at the base and at the head (a pull request
    usually leaves all but a few as they are)."""
    at_base = {entry.key for entry in base.models if entry.key}
    return {entry.summary.model_id for entry in head.models if entry.key and entry.key in at_base}


def _base_policy_sources(options: CheckOptions, session: Session, base: str) -> list[PolicySource]:
    """The portfolio's ``policies/`` and in-repo ``--policies`` directories, read at the base."""
    sources = [builtin_source()] if options.load.builtin else []
    tree = GitTreeSource(session.repo, base, session.subdir)
    sources.append(PolicySource(tree, "policies", session.prefix + "policies/"))
    own = (session.path / "policies").resolve()
    for directory in options.load.policy_dirs:
        resolved = directory.resolve()
        if resolved == own:
            continue
        inside = _in_repo(session, resolved)
        if inside is None:
            shown = directory.as_posix().rstrip("/") + "/"
            sources.append(PolicySource(DirectorySource(resolved), "", shown))
        else:
            sources.append(PolicySource(GitTreeSource(session.repo, base, inside), "", inside + "/"))
    return sources


def _in_repo(session: Session, path: Path) -> str | None:
    try:
        return path.resolve().relative_to(session.repo.root).as_posix()
    except ValueError:
        return None


# ---------------------------------------------------------------------------- old and change


_SAME_FILE = "<the same file content at the base and at the head>"


def _authored(portfolio: Portfolio, unchanged: set[str]) -> dict[str, Any]:
    """Each target's content as authored (no defaults, no derived fields), by target id. The
    targets of ``unchanged`` models (see ``unchanged_files``) are equal on both sides without
    dumping them: they get ``_SAME_FILE``."""
    dump: dict[str, Any] = {"portfolio": _dump(portfolio.portfolio)}
    for entry in portfolio.models:
        model = entry.model
        authored = (lambda _: _SAME_FILE) if model.id in unchanged else _dump
        dump[model.id] = authored(model)
        for version in model.versions:
            vid = f"{model.id}@{version.version}"
            dump[vid] = authored(version)
            for deployment in version.deployments:
                dump[f"{vid}/{deployment.id}"] = authored(deployment)
            for signoff in version.signoffs:
                dump[f"{vid}/signoff:{signoff.role}:{signoff.by}"] = authored(signoff)
    for exception in portfolio.exceptions.exceptions:
        dump[f"exception:{exception.id}"] = _dump(exception)
    return dump


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json", exclude_unset=True, by_alias=True)


def _bindings(targets: TargetSet) -> dict[str, dict[str, Any]]:
    """Each target's own CEL binding (``version`` for a version, ``deployment`` for a deployment...)."""
    found = {}
    for target in targets.all():
        if target.scope == "portfolio":
            found[target.id] = targets.shared["portfolio"]
        else:
            found[target.id] = target.data.get(target.scope, {})
    return found


def expected_monthly(version: dict[str, Any] | None) -> float:
    """Projected monthly residency: the estimate's monthly_expected, else the computed floor;
    0 for an absent or retired version."""
    if not version or version.get("stage") == "retired":
        return 0.0
    estimate = version.get("entry_evidence", {}).get("residency_estimate", {})
    value = estimate.get("monthly_expected")
    if value is None:
        value = version.get("floor_monthly", 0.0)
    return float(value)


def target_changes(
    base: Portfolio, head: Portfolio, base_targets: TargetSet, head_targets: TargetSet
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``old`` and ``change`` for every target at the head (and ``change`` for removed ones)."""
    before, after = _bindings(base_targets), _bindings(head_targets)
    unchanged = unchanged_files(base, head)
    authored_before, authored_after = _authored(base, unchanged), _authored(head, unchanged)
    versions_before = {t.id: t.data["version"] for t in base_targets.by_scope.get("version", [])}
    versions_after = {t.id: t.data["version"] for t in head_targets.by_scope.get("version", [])}
    delta = {
        vid: round(expected_monthly(versions_after.get(vid)) - expected_monthly(versions_before.get(vid)), 2)
        for vid in versions_before.keys() | versions_after.keys()
    }
    every = {t.id: t for t in (*base_targets.all(), *head_targets.all())}
    # A model's and the portfolio's delta: sums over their versions, in version id order (one
    # pass, not one pass over every version per model target: 10,000 versions took 10 s).
    model_delta: dict[str, float] = {}
    portfolio_delta = 0.0
    for version_id in sorted(delta):
        of_model = version_id.partition("@")[0]
        model_delta[of_model] = model_delta.get(of_model, 0.0) + delta[version_id]
        portfolio_delta += delta[version_id]

    old: dict[str, dict[str, Any]] = {}
    change: dict[str, dict[str, Any]] = {}
    for target_id in sorted(before.keys() | after.keys()):
        target = every[target_id]
        if target_id not in before:
            kind = "added"
        elif target_id not in after:
            kind = "removed"
        else:
            a = authored_after.get(target_id, after[target_id])
            b = authored_before.get(target_id, before[target_id])
            kind = "modified" if a != b else "unchanged"
        vid = f"{target.model}@{target.version}" if target.version is not None else None
        if target.scope == "portfolio":
            monthly = portfolio_delta
        elif target.scope == "model":
            monthly = model_delta.get(target_id, 0.0)
        elif target.scope == "deployment":
            monthly = _floor(after.get(target_id)) - _floor(before.get(target_id))
        elif vid is not None:
            monthly = delta.get(vid, 0.0)
        else:
            monthly = 0.0
        change[target_id] = {
            "kind": kind,
            "from_stage": str(versions_before.get(vid, {}).get("stage", "")) if vid else "",
            "to_stage": str(versions_after.get(vid, {}).get("stage", "")) if vid else "",
            "monthly_delta": round(float(monthly), 2),
        }
        if target_id in after:
            old[target_id] = before.get(target_id, {})
    return old, change


def _floor(deployment: dict[str, Any] | None) -> float:
    return float((deployment or {}).get("floor_monthly", 0.0))


# ---------------------------------------------------------------------------- rules


def rules_changes(
    session: Session, revs: Revisions, options: CheckOptions, base: Portfolio, head: Portfolio
) -> list[str]:
    """Repository paths of every rule that differs between the base and the head."""
    repo = session.repo
    before: FileSource = GitTreeSource(repo, revs.base, "")
    after: FileSource = DirectorySource(repo.root) if revs.worktree else GitTreeSource(repo, revs.head, "")
    changed: list[str] = []
    for name in (PORTFOLIO_FILE, EXCEPTIONS_FILE, CONFIG_FILE):
        path = session.at(name)
        if not _same(_read(before, path), _read(after, path)):
            changed.append(path)
    directories = [session.at("policies")]
    own = (session.path / "policies").resolve()
    for extra in options.load.policy_dirs:
        inside = _in_repo(session, extra)
        if inside is not None and extra.resolve() != own:
            directories.append(inside)
    for directory in directories:
        listed = set(before.list(directory, YAML_SUFFIXES)) | set(after.list(directory, YAML_SUFFIXES))
        for path in sorted(listed):
            if _is_test_material(path.removeprefix(directory)):
                continue
            if not _same(_read(before, path), _read(after, path)):
                changed.append(path)
    # In-repo residency files judge the change too (they are read from the base): DESIGN §6.
    directory, suffixes = RESIDENCY_FILES
    residency = session.at(directory)
    for path in sorted(set(before.list(residency, suffixes)) | set(after.list(residency, suffixes))):
        if _read(before, path) != _read(after, path):
            changed.append(path)
    changed.extend(_criteria_changes(base, head))
    changed.extend(removed_warm_versions(base, head))
    return sorted(dict.fromkeys(changed))


def removed_warm_versions(base: Portfolio, head: Portfolio) -> list[str]:
    """Versions still warm at the base that the head no longer has.

    A version ends by retirement (``stage: retired``), in the open. Deleting it, or renaming its
    model or its version id, would take its history, its clocks and its failing findings with
    it (the "new" version starts clean), so it is judged like a rule change: it needs the
    approvals of the rules-change roles.
    """
    kept = {(entry.model.id, version.version) for entry in head.models for version in entry.model.versions}
    removed = []
    for entry in base.models:
        for version in entry.model.versions:
            if version.stage in WARM_STAGES and (entry.model.id, version.version) not in kept:
                removed.append(
                    f"{entry.source.file} ({entry.model.id}@{version.version} removed while "
                    f"{version.stage}, not retired)"
                )
    return removed


_UNREADABLE = b"\0unreadable"


def _read(files: FileSource, path: str) -> bytes | None:
    """A rule file's bytes; a symbolic link that is refused reads as unreadable, never as equal."""
    try:
        return files.read(path)
    except PermissionError:
        return _UNREADABLE


def _same(a: bytes | None, b: bytes | None) -> bool:
    """Same content, or the same YAML data (comments and layout do not change a rule)."""
    if a is None or b is None:
        return a is b
    if a is _UNREADABLE or b is _UNREADABLE:
        return False
    if a == b:
        return True
    parsed_a, parsed_b = load_plain(a), load_plain(b)
    return parsed_a is not None and parsed_a == parsed_b


def _criteria_changes(base: Portfolio, head: Portfolio) -> list[str]:
    """Model-level rules (entry criteria, SLO, exit defaults) that differ, by model id."""
    before = {e.model.id: e for e in base.models}
    after = {e.model.id: e for e in head.models}
    changed = []
    for model_id in sorted(before.keys() | after.keys()):
        old, new = before.get(model_id), after.get(model_id)
        for name in RULE_FIELDS:
            a = _dump_field(old.model, name) if old else None
            b = _dump_field(new.model, name) if new else None
            if a != b:
                where = new or old
                file = where.source.file if where is not None else model_id
                changed.append(f"{file} ({model_id}.{name})")
    return changed


def _dump_field(model: ModelFile, name: str) -> Any:
    value = getattr(model, name)
    return None if value is None else _dump(value)


def _rules_approvals(
    session: Session, revs: Revisions, rules: Portfolio, reviews: list[Review] | None
) -> tuple[list[str], list[str]]:
    """(logins, roles) of base-roster members whose review on the head commit is APPROVED.

    The head commit is the one checked; when it is GitHub's merge of the pull request
    (``refs/pull/N/merge``, two parents), reviews on the pull request's head (its second
    parent) count too.
    """
    if not reviews:
        return [], []
    commits = {revs.head}
    parents = session.repo.parents(revs.head)
    if len(parents) == 2:
        commits.add(parents[1])
    roster = {p.login: p for p in rules.portfolio.roster}
    logins = sorted(login for login in current_approvals(reviews, commits) if login in roster)
    roles = sorted({str(role) for login in logins for role in roster[login].roles})
    return logins, roles


# ---------------------------------------------------------------------------- history


def _stages(portfolio: Portfolio) -> dict[VersionKey, str]:
    return {(e.model.id, v.version): v.stage for e in portfolio.models for v in e.model.versions}


def _pr_history(
    session: Session, revs: Revisions, summaries: Summaries
) -> tuple[dict[VersionKey, StageHistory], dict[VersionKey, StageHistory]]:
    """History at the head and at the base: one first-parent pass when the base lies on the
    head's first-parent line (the usual case), else a second pass for the base."""
    repo, paths = session.repo, [session.at(MODELS_DIR)]
    chain = repo.first_parent_chain(revs.head)
    newer = set(chain[: chain.index(revs.base)]) if revs.base in chain else None
    head_state, base_state = stage_history(
        repo.log(revs.head, paths, first_parent=True), summaries, session.models_prefix, newer
    )
    if base_state is None:
        base_state, _ = stage_history(
            repo.log(revs.base, paths, first_parent=True), summaries, session.models_prefix
        )
    return head_state, base_state


def base_clocks(
    head: dict[VersionKey, StageHistory], base: dict[VersionKey, StageHistory]
) -> dict[VersionKey, StageHistory]:
    """A version in the same stage at the base and at the head keeps the base's clock.

    Leaving a stage and coming back inside the pull request (canary → proposed → canary in two
    commits, or deleting and re-adding the version) must not restart the stage's clock.
    """
    kept = dict(head)
    for key, now in head.items():
        before = base.get(key)
        if before is not None and before.stage == now.stage and before.stage_since < now.stage_since:
            kept[key] = dataclasses.replace(
                before, first_seen=min(before.first_seen, now.first_seen), stage=now.stage
            )
    return kept


def _history_facts(targets: TargetSet, history: dict[VersionKey, StageHistory]) -> dict[str, dict[str, Any]]:
    """``history`` for each version and each of its deployments."""
    found: dict[str, dict[str, Any]] = {}
    for scope in ("version", "deployment"):
        for target in targets.by_scope.get(scope, []):
            if target.model is None or target.version is None:
                continue
            known = history.get((target.model, target.version))
            if known is not None:
                found[target.id] = known.facts()
    return found


# ---------------------------------------------------------------------------- sign-offs


def _evidence(
    session: Session,
    mode: Mode,
    rules: Portfolio,
    head: str,
    reviews: list[Review] | None,
    summaries: Summaries,
) -> Evidence:
    repo = session.repo
    roster = {p.login: p for p in rules.portfolio.roster}
    if mode == "git":
        log = repo.log(head, [session.at(MODELS_DIR)], first_parent=False)
        return Evidence(
            mode,
            roster,
            introductions=signoff_introductions(log, summaries, session.models_prefix),
            signature=repo.signature,
        )
    if mode == "github-reviews":
        if reviews is None:
            raise UsageError("--signoff-verification github-reviews needs --reviews FILE")
        return Evidence(
            mode,
            roster,
            reviews=reviews,
            digest_at=_DigestAt(session, summaries),
            has_commit=repo.has_commit,
        )
    return Evidence(mode, roster)


class _DigestAt:
    """The digest of a model version at a commit, parsing only the file that holds the model."""

    def __init__(self, session: Session, summaries: Summaries) -> None:
        self.session = session
        self.summaries = summaries
        self._models: dict[str, ModelFile | None] = {}

    def __call__(self, commit: str, model_id: str, version: str) -> str | None:
        from policy_engine.digest import version_digest

        model = self._model(commit, model_id)
        if model is None:
            return None
        for candidate in model.versions:
            if candidate.version == version:
                return version_digest(candidate)
        return None

    def _model(self, commit: str, model_id: str) -> ModelFile | None:
        repo = self.session.repo
        tree = repo.tree(commit)
        files = GitTreeSource(repo, commit, self.session.subdir)
        for path in files.list(MODELS_DIR, YAML_SUFFIXES):
            blob = tree[self.session.at(path)][1]
            summary = self.summaries(blob)
            if summary is None or summary.model_id != model_id:
                continue
            if blob not in self._models:
                loaded = load_document(files, path, path, ModelFile, [])
                self._models[blob] = loaded[0] if loaded else None
            return self._models[blob]
        return None


# ---------------------------------------------------------------------------- pre-existing


def mark_pre_existing(
    report: Report,
    present: set[str],
    touched: set[str],
    *,
    new_only: bool,
    base: str,
    head: str,
) -> Report:
    """Failing findings already present at the base on untouched targets become ``pre_existing``
    (never blocking); ``new_only`` leaves out every non-blocking finding present at the base."""
    by_status = dict(report.summary.by_status)
    by_severity = dict(report.summary.by_severity)
    findings: list[Finding] = []
    for finding in report.findings:
        known = finding.fingerprint in present
        if known and finding.status in ("fail", "error") and finding.target not in touched:
            by_status[finding.status] -= 1
            by_status["pre_existing"] = by_status.get("pre_existing", 0) + 1
            by_severity[finding.severity] -= 1
            finding = finding.model_copy(update={"status": "pre_existing", "blocking": False})
        if new_only and known and not finding.blocking:
            continue
        findings.append(finding)
    blocking = sum(1 for f in findings if f.blocking)
    summary = report.summary.model_copy(
        update={
            "by_status": by_status,
            "by_severity": by_severity,
            "blocking": blocking,
            "exit_code": int(ExitCode.BLOCKING if blocking else ExitCode.OK),
        }
    )
    return report.model_copy(update={"summary": summary, "findings": findings, "base": base, "head": head})
