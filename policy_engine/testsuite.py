"""Policy test suites (``*.test.yaml``): cases that run the check pipeline on a patched fixture.

A suite names a fixture portfolio directory and a list of cases. Each case patches the fixture
in memory (an overlay ``FileSource``, no temporary files), may inject facts (``measured``,
``history``, ``old``, ``change``) by target id, and lists the findings it expects. Cases run
through the same functions as ``check``: ``load_all`` (portfolio, policies, parameters,
configuration, compilation) and ``build_check_report`` (targets, evaluation with every finding
kept, exceptions through the one ledger function). The format is documented in
``docs/policy-tests.md``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from policy_engine.commands.check import (
    BackendChoice,
    CheckOptions,
    Inputs,
    Loaded,
    LoadOptions,
    build_check_report,
    load_all,
)
from policy_engine.engine import FACT_KINDS, Context, Facts
from policy_engine.errors import InputError, InputErrors, UsageError, json_path
from policy_engine.loading import YAML_SUFFIXES, load_portfolio, read_yaml
from policy_engine.models.portfolio import Stage
from policy_engine.models.report import Finding
from policy_engine.models.types import Count, Name, Quantity, Strict, Timestamp, parse_timestamp
from policy_engine.policies import PolicySource, builtin_pack_dir, builtin_source
from policy_engine.sources import DirectorySource, FileSource, display_prefix, repo_root_of
from policy_engine.targets import build_targets
from policy_engine.validation import validate
from policy_engine.yamlsource import Path as YamlPath
from policy_engine.yamlsource import SourceMap, YamlError

SUITE_SUFFIXES = (".test.yaml", ".test.yml")
ExpectedStatus = Literal["pass", "fail", "error", "skip", "waived"]

# ---------------------------------------------------------------------------- file format


class PatchOp(Strict):
    """One change to one fixture file. ``set`` and ``delete`` edit the parsed document;
    ``content`` (a YAML value) or ``text`` (raw text) replace the file; ``remove`` deletes it."""

    file: Name = Field(description="Path inside the fixture, e.g. models/ranker.yaml.")
    set: dict[str, Any] | None = Field(None, description="{path: value}; missing mappings are created.")
    delete: list[str] | None = Field(None, description="Paths to remove.")
    content: Any = Field(None, description="The whole document, replacing (or creating) the file.")
    text: str | None = Field(None, description="Raw file text, replacing (or creating) the file.")
    remove: bool = Field(False, description="Delete the file.")


class UnknownDeployment(Strict):
    """A deployment id that measured residency names but the manifest does not declare."""

    id: str
    records: Count | None = None
    cost: Quantity | None = None


class MeasuredFacts(Strict):
    """``measured`` for one target (DESIGN §9 names). Counts are integers, the rest numbers."""

    gpu_hours: Quantity | None = None
    warm_replica_hours: Quantity | None = None
    cost: Quantity | None = None
    cost_monthly_run_rate: Quantity | None = None
    gpu_util_avg: Quantity | None = None
    requests: Count | None = None
    tokens_in: Count | None = None
    tokens_out: Count | None = None
    traffic_share: Quantity | None = None
    days_util_below_floor: Count | None = None
    days_low_traffic: Count | None = None
    coverage: Quantity | None = None
    total_cost: Quantity | None = None
    unattributed_cost: Quantity | None = None
    unknown_deployments: list[UnknownDeployment] | None = None
    unknown_cost: Quantity | None = None


class HistoryFacts(Strict):
    first_seen: Timestamp | None = None
    stage_since: Timestamp | None = None
    stage_since_commit: str | None = None


class ChangeFacts(Strict):
    """``change`` for one target, as pull-request mode computes it ("" = no stage)."""

    kind: Literal["added", "modified", "removed", "unchanged"] | None = None
    from_stage: Stage | Literal[""] | None = None
    to_stage: Stage | Literal[""] | None = None
    monthly_delta: Quantity | None = None
    rules_changed: list[str] | None = Field(None, description="Portfolio: rule files the change edits.")
    rules_approvals: list[str] | None = Field(None, description="Portfolio: roles that approved them.")


class Expectation(Strict):
    policy: Name
    target: Name
    status: ExpectedStatus
    validation: str | None = Field(None, description="A validation's name (or index); default: all.")
    message: str | None = Field(None, description="A substring of the finding's message.")
    blocking: bool | None = None


class Case(Strict):
    name: Name
    as_of: Timestamp | None = None
    context: Context | None = None
    patch: list[PatchOp] = Field(default_factory=list)
    measured: dict[str, MeasuredFacts] = Field(default_factory=dict)
    history: dict[str, HistoryFacts] = Field(default_factory=dict)
    old: dict[str, dict[str, Any]] = Field(default_factory=dict)
    change: dict[str, ChangeFacts] = Field(default_factory=dict)
    extra: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict,
        description="Engine-computed fields merged into a target's bindings: "
        "{target: {name: {field: value}}}.",
    )
    strict: bool = Field(False, description="Any fail or error finding not expected fails the case.")
    expect: list[Expectation] = Field(default_factory=list)


class SuiteFile(Strict):
    apiVersion: Literal["policy-engine/v1"]
    kind: Literal["PolicyTest"]
    description: str | None = None
    fixture: Name = Field(description="Portfolio root, relative to the suite file.")
    as_of: Timestamp | None = None
    context: Context = "audit"
    cases: list[Case] = Field(min_length=1)


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Suite:
    path: Path
    shown: str
    doc: SuiteFile
    source: SourceMap
    fixture: Path

    def where(self, *parts: str | int) -> InputError:
        """An input-error location inside this suite file (message filled by the caller)."""
        line, column = self.source.locate(tuple(parts))
        return InputError(self.shown, line, column, "", json_path(tuple(parts)))


@dataclass(slots=True)
class ExpectationResult:
    expectation: Expectation
    ok: bool
    actual: str
    findings: list[Finding]
    problem: str = ""


@dataclass(slots=True)
class CaseResult:
    name: str
    index: int
    ok: bool
    expectations: list[ExpectationResult] = field(default_factory=list)
    unexpected: list[Finding] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


@dataclass(slots=True)
class SuiteResult:
    suite: Suite
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cases)


@dataclass(slots=True)
class Coverage:
    """Per policy under test and validation key: whether a passing case asserted pass / fail."""

    validations: dict[str, list[str]] = field(default_factory=dict)
    seen_pass: set[tuple[str, str]] = field(default_factory=set)
    seen_fail: set[tuple[str, str]] = field(default_factory=set)
    tested: set[str] = field(default_factory=set)

    def gaps(self) -> list[tuple[str, str, str]]:
        """(policy, validation, what is missing) for every incomplete validation."""
        out: list[tuple[str, str, str]] = []
        for policy_id, keys in sorted(self.validations.items()):
            for key in keys:
                missing = [
                    kind
                    for kind, seen in (("pass", self.seen_pass), ("fail", self.seen_fail))
                    if (policy_id, key) not in seen
                ]
                if missing:
                    out.append((policy_id, key, " and ".join(missing)))
        return out

    @property
    def untested(self) -> list[str]:
        return sorted(p for p in self.validations if p not in self.tested)

    @property
    def total(self) -> int:
        return sum(len(keys) for keys in self.validations.values())


@dataclass(slots=True)
class RunResult:
    suites: list[SuiteResult]
    coverage: Coverage
    backend: str

    @property
    def cases(self) -> list[CaseResult]:
        return [c for s in self.suites for c in s.cases]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.suites)


# ---------------------------------------------------------------------------- discovery


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run tests: policy directories (their policies count for coverage) and suites."""

    policy_dirs: list[Path]
    suite_files: list[Path]


def plan(paths: Iterable[Path]) -> Plan:
    """A directory is a policy directory with suites anywhere beneath it; a file is one suite,
    whose policies are in its directory (or the one above, when it sits in ``tests/``)."""
    dirs: list[Path] = []
    suites: list[Path] = []
    for path in paths:
        if path.is_dir():
            resolved = path.resolve()
            if resolved not in dirs:
                dirs.append(resolved)
            suites.extend(_find_suites(resolved))
        elif path.is_file():
            if not path.name.endswith(SUITE_SUFFIXES):
                raise UsageError(f"{path}: not a policy test suite (expected a *.test.yaml file)")
            resolved = path.resolve()
            parent = resolved.parent
            if parent.name == "tests":
                parent = parent.parent
            if parent not in dirs:
                dirs.append(parent)
            suites.append(resolved)
        else:
            raise UsageError(f"{path}: no such file or directory")
    unique = sorted(set(suites))
    if not unique:
        shown = ", ".join(str(p) for p in paths) or "."
        raise UsageError(f"no policy test suites (*.test.yaml) under {shown}")
    return Plan(dirs, unique)


def _find_suites(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).parts
        if any(part.startswith(".") for part in relative):
            continue
        if "fixtures" in relative[:-1]:
            continue
        if path.is_file() and path.name.endswith(SUITE_SUFFIXES):
            found.append(path)
    return found


def _shown(path: Path) -> str:
    """A path as reports show it: POSIX, relative to the repository root inside a git work
    tree, else relative to the working directory when below it, else absolute."""
    resolved = path.resolve()
    root = repo_root_of(resolved.parent)
    for base in (root if (root / ".git").exists() else None, Path.cwd().resolve()):
        if base is None:
            continue
        try:
            return resolved.relative_to(base).as_posix()
        except ValueError:
            continue
    return resolved.as_posix()


def load_suite(path: Path) -> Suite:
    """Parse and validate one suite file; raises ``InputErrors`` with located messages."""
    shown = _shown(path)
    errors: list[InputError] = []
    try:
        parsed = read_yaml(DirectorySource(path.parent), path.name, shown)
    except YamlError as exc:
        raise InputErrors([exc.error]) from None
    if parsed is None:
        raise InputErrors([InputError(shown, 1, 1, "file not found")])
    data, source = parsed
    if not isinstance(data, dict):
        raise InputErrors([InputError(shown, 1, 1, "top level is not a mapping", "$", "a YAML mapping")])
    doc, problems = validate(SuiteFile, data, source)
    errors.extend(problems)
    if doc is None:
        raise InputErrors(errors)
    fixture = (path.parent / doc.fixture).resolve()
    if not (fixture / "portfolio.yaml").is_file():
        errors.append(
            source.error(
                ("fixture",),
                f"fixture {doc.fixture!r} is not a portfolio directory ({_shown(fixture)}/portfolio.yaml)",
                "a directory with portfolio.yaml, relative to the suite file",
            )
        )
    names: dict[str, int] = {}
    for index, case in enumerate(doc.cases):
        if case.name in names:
            errors.append(
                source.error(
                    ("cases", index, "name"),
                    f"case name {case.name!r} is also used by case {names[case.name] + 1}",
                    "unique case names",
                )
            )
        names.setdefault(case.name, index)
        if case.as_of is None and doc.as_of is None:
            errors.append(
                source.error(("cases", index), "no as_of for this case", "as_of on the case or the suite")
            )
        if not case.expect and not case.strict:
            errors.append(
                source.error(
                    ("cases", index),
                    "the case expects nothing",
                    "an expect list, or strict: true for 'nothing fails'",
                )
            )
        for op_index, op in enumerate(case.patch):
            chosen = [
                name
                for name, given in (
                    ("set", op.set is not None),
                    ("delete", op.delete is not None),
                    ("content", "content" in op.model_fields_set),
                    ("text", op.text is not None),
                    ("remove", op.remove),
                )
                if given
            ]
            whole = [name for name in chosen if name in ("content", "text", "remove")]
            if not chosen or len(whole) > 1 or (whole and len(chosen) > 1):
                errors.append(
                    source.error(
                        ("cases", index, "patch", op_index),
                        "a patch needs set and/or delete, or exactly one of content, text, remove",
                        "{file, set: {path: value}} or {file, delete: [path]} or {file, content: …}",
                    )
                )
    if errors:
        raise InputErrors(errors)
    return Suite(path.resolve(), shown, doc, source, fixture)


# ---------------------------------------------------------------------------- patching


class PatchError(Exception):
    pass


_SEGMENT = re.compile(r"\[([^\]]*)\]|([^.\[\]]+)|(\.)")


def parse_path(text: str) -> list[tuple[str, str, str]]:
    """``a.b.0``, ``versions[version=2].canary``, ``labels[portfolio.io/x]``, ``signoffs.-``.

    Each segment is (kind, key, value): ("key", name, "") for a mapping key or list index,
    ("select", field, value) for the list item whose field equals value.
    """
    segments: list[tuple[str, str, str]] = []
    pos = 0
    expect_separator = False
    while pos < len(text):
        match = _SEGMENT.match(text, pos)
        if match is None:
            raise PatchError(f"cannot parse path {text!r} at column {pos + 1}")
        bracket, plain, dot = match.groups()
        if dot is not None:
            if not expect_separator:
                raise PatchError(f"empty segment in path {text!r}")
            expect_separator = False
        elif bracket is not None:
            key, equals, value = bracket.partition("=")
            if equals:
                segments.append(("select", key.strip(), value.strip().strip("'\"")))
            elif bracket:
                segments.append(("key", bracket, ""))
            else:
                raise PatchError(f"empty [] in path {text!r}")
            expect_separator = True
        else:
            if expect_separator:
                raise PatchError(f"missing '.' before {plain!r} in path {text!r}")
            segments.append(("key", plain, ""))
            expect_separator = True
        pos = match.end()
    if not segments or not expect_separator:
        raise PatchError(f"incomplete path {text!r}")
    return segments


def _step(node: Any, segment: tuple[str, str, str], path: str, *, create: bool) -> tuple[Any, Any]:
    """The (container, key) a segment addresses in ``node``, for reading or writing."""
    kind, key, value = segment
    if kind == "select":
        if not isinstance(node, list):
            raise PatchError(f"{path}: [{key}={value}] selects from a list, found {_kind(node)}")
        for index, item in enumerate(node):
            if isinstance(item, dict) and key in item and _text(item[key]) == value:
                return node, index
        raise PatchError(f"{path}: no item with {key} = {value}")
    if isinstance(node, dict):
        if key not in node and not create:
            raise PatchError(f"{path}: no key {key!r}" + _guess(key, list(node)))
        return node, key
    if isinstance(node, list):
        if key == "-":
            if not create:
                raise PatchError(f"{path}: '-' (append) only works with set")
            return node, len(node)
        try:
            index = int(key)
        except ValueError:
            raise PatchError(f"{path}: {key!r} is not a list index (a list is here)") from None
        if not -len(node) <= index < len(node):
            raise PatchError(f"{path}: index {index} is out of range (the list has {len(node)} items)")
        return node, index % len(node)
    raise PatchError(f"{path}: cannot step into {_kind(node)} with {key!r}")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _kind(value: Any) -> str:
    return "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else repr(value)


def _guess(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, [str(o) for o in options], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def apply_set(document: Any, path: str, value: Any) -> None:
    segments = parse_path(path)
    node = document
    for segment in segments[:-1]:
        container, key = _step(node, segment, path, create=True)
        if isinstance(container, dict) and key not in container:
            container[key] = {}
        elif isinstance(container, list) and key == len(container):
            container.append({})
        node = container[key]
    container, key = _step(node, segments[-1], path, create=True)
    if isinstance(container, list) and key == len(container):
        container.append(value)
    else:
        container[key] = value


def apply_delete(document: Any, path: str) -> None:
    segments = parse_path(path)
    node = document
    for segment in segments[:-1]:
        container, key = _step(node, segment, path, create=False)
        node = container[key]
    container, key = _step(node, segments[-1], path, create=False)
    del container[key]


def to_yaml(value: Any) -> bytes:
    """A document as YAML text (JSON flow style, which PyYAML's YAML 1.1 parser reads back
    with the same types: floats keep a decimal point or an exponent sign)."""

    def emit(item: Any) -> str:
        if item is None:
            return "null"
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int):
            return str(item)
        if isinstance(item, float):
            if math.isnan(item) or math.isinf(item):
                raise PatchError("NaN and infinity cannot be written")
            text = repr(item)
            mantissa, e, exponent = text.partition("e")
            if "." not in mantissa:
                mantissa += ".0"
            if e and exponent[0] not in "+-":
                exponent = "+" + exponent
            return mantissa + (("e" + exponent) if e else "")
        if isinstance(item, str):
            return json.dumps(item)
        if isinstance(item, list):
            return "[" + ", ".join(emit(v) for v in item) + "]"
        if isinstance(item, dict):
            return "{" + ", ".join(f"{json.dumps(str(k))}: {emit(v)}" for k, v in item.items()) + "}"
        raise PatchError(f"cannot write {type(item).__name__} values")

    return (emit(value) + "\n").encode("utf-8")


class OverlaySource:
    """A fixture directory with some files replaced, created or removed, all in memory."""

    def __init__(self, base: FileSource, files: dict[str, bytes | None]) -> None:
        self.base = base
        self.files = files

    def read(self, path: str) -> bytes | None:
        if path in self.files:
            return self.files[path]
        return self.base.read(path)

    def list(self, directory: str, suffixes: tuple[str, ...]) -> list[str]:
        found = set(self.base.list(directory, suffixes))
        prefix = directory.rstrip("/") + "/" if directory else ""
        for path, content in self.files.items():
            if not path.startswith(prefix) or not path.endswith(suffixes):
                continue
            if content is None:
                found.discard(path)
            else:
                found.add(path)
        return sorted(found)


def build_overlay(suite: Suite, index: int, base: FileSource, prefix: str) -> dict[str, bytes | None]:
    """The case's patched files, or InputErrors located at the offending patch entry."""
    case = suite.doc.cases[index]
    documents: dict[str, Any] = {}
    raw: dict[str, bytes | None] = {}
    errors: list[InputError] = []
    for op_index, op in enumerate(case.patch):
        where: YamlPath = ("cases", index, "patch", op_index)
        name = op.file.strip("/")
        try:
            if op.remove:
                if base.read(name) is None and name not in raw and name not in documents:
                    raise PatchError(f"{name}: no such file in the fixture")
                documents.pop(name, None)
                raw[name] = None
                continue
            if op.text is not None:
                documents.pop(name, None)
                raw[name] = op.text.encode("utf-8")
                continue
            if "content" in op.model_fields_set:
                raw.pop(name, None)
                documents[name] = op.content
                continue
            if name not in documents:
                documents[name] = _read_document(base, name, prefix, raw)
            document = documents[name]
            raw.pop(name, None)
            for key, value in (op.set or {}).items():
                try:
                    apply_set(document, key, value)
                except PatchError as exc:
                    errors.append(suite.source.error((*where, "set", key), f"{name}: {exc}", _PATH_HINT))
            for position, key in enumerate(op.delete or []):
                try:
                    apply_delete(document, key)
                except PatchError as exc:
                    errors.append(
                        suite.source.error((*where, "delete", position), f"{name}: {exc}", _PATH_HINT)
                    )
        except PatchError as exc:
            errors.append(suite.source.error(where, str(exc), "a file of the fixture"))
    if errors:
        raise InputErrors(errors)
    out: dict[str, bytes | None] = dict(raw)
    for name, document in documents.items():
        try:
            out[name] = to_yaml(document)
        except PatchError as exc:
            raise InputErrors([suite.source.error(("cases", index, "patch"), f"{name}: {exc}")]) from None
    return out


_PATH_HINT = "a path such as versions[version=2].canary.started_at or deployments.0.replicas.min"


def _read_document(base: FileSource, name: str, prefix: str, raw: dict[str, bytes | None]) -> Any:
    content = raw.get(name) if name in raw else base.read(name)
    if content is None:
        raise PatchError(f"{name}: no such file in the fixture (use content: to create it)")
    try:
        parsed = read_yaml(OverlaySource(base, {name: content}), name, prefix + name)
    except YamlError as exc:
        raise PatchError(f"{name} is not valid YAML: {exc.error.render()}") from None
    return parsed[0] if parsed is not None else {}


# ---------------------------------------------------------------------------- running


@dataclass(slots=True)
class Runner:
    """Runs suites with one backend and one set of policy directories; caches the compiled base."""

    policy_dirs: list[Path]
    backend: BackendChoice = "auto"
    include_builtin: bool = True
    _base: dict[Path, Loaded] = field(default_factory=dict)

    def sources(self, fixture_files: FileSource, fixture_prefix: str) -> list[PolicySource]:
        """Policy sources in check's order: the built-in pack, the fixture's own policies/,
        then the directories under test."""
        builtin_dir = builtin_pack_dir().resolve()
        out: list[PolicySource] = []
        if self.include_builtin or builtin_dir in self.policy_dirs:
            out.append(builtin_source())
        if fixture_files.list("policies", YAML_SUFFIXES):
            out.append(PolicySource(fixture_files, "policies", fixture_prefix + "policies/"))
        for directory in self.policy_dirs:
            if directory == builtin_dir:
                continue
            out.append(PolicySource(DirectorySource(directory), "", _shown(directory).rstrip("/") + "/"))
        return out

    def policies_under_test(self, loaded: Loaded) -> dict[str, list[str]]:
        """Validation keys of each policy loaded from a directory under test."""
        builtin_dir = builtin_pack_dir().resolve()
        tested_builtin = builtin_dir in self.policy_dirs
        prefixes = [_shown(d).rstrip("/") + "/" for d in self.policy_dirs if d != builtin_dir]
        out: dict[str, list[str]] = {}
        for policy in loaded.policies:
            file = policy.policy.source.file
            inside = any(
                file.startswith(p) and not {"tests", "fixtures"} & set(file[len(p) :].split("/")[:-1])
                for p in prefixes
            )
            if (policy.policy.builtin and tested_builtin) or inside:
                out[policy.id] = [v.key for v in policy.validations]
        return out

    def _load(self, suite: Suite, overlay: dict[str, bytes | None]) -> Loaded:
        base_files = DirectorySource(suite.fixture)
        prefix = display_prefix(suite.fixture)
        files = OverlaySource(base_files, overlay)
        options = LoadOptions(path=suite.fixture, builtin=False, backend=self.backend)
        rules_touched = any(not path.startswith("models/") for path in overlay)
        if not rules_touched and suite.fixture in self._base:
            # Only model files differ: the compiled policies, overrides and exception
            # matchers of the unpatched fixture are exactly what load_all would build again.
            base = self._base[suite.fixture]
            return dataclasses.replace(base, portfolio=load_portfolio(files, prefix))
        inputs = Inputs(
            portfolio=lambda: load_portfolio(files, prefix),
            policy_sources=self.sources(files, prefix),
        )
        loaded = load_all(options, inputs)
        if not overlay:
            self._base[suite.fixture] = loaded
        return loaded

    def base(self, suite: Suite) -> Loaded:
        if suite.fixture not in self._base:
            self._load(suite, {})
        return self._base[suite.fixture]

    def run_case(self, suite: Suite, index: int, errors: list[InputError]) -> CaseResult | None:
        case = suite.doc.cases[index]
        prefix = display_prefix(suite.fixture)
        try:
            overlay = build_overlay(suite, index, DirectorySource(suite.fixture), prefix)
            loaded = self._load(suite, overlay)
        except InputErrors as exc:
            errors.extend(_relocate(suite, index, exc.errors, overlay_files=_patched(case, prefix)))
            return None
        target_ids = {t.id for t in build_targets(loaded.portfolio).all()}
        policy_keys = {p.id: [v.key for v in p.validations] for p in loaded.policies}
        before = len(errors)
        facts = _facts(suite, index, target_ids, errors)
        for position, expected in enumerate(case.expect):
            errors.extend(_check_expectation(suite, index, position, expected, target_ids, policy_keys))
        if len(errors) > before:
            return None
        as_of = parse_timestamp(case.as_of or suite.doc.as_of or "")
        context = case.context or suite.doc.context
        options = CheckOptions(
            load=LoadOptions(path=suite.fixture, builtin=False, backend=self.backend),
            as_of=as_of,
            context=context,
            show_all=True,
        )
        report = build_check_report(options, _needed(case, loaded), facts)
        return judge(case, index, report.findings)


def _needed(case: Case, loaded: Loaded) -> Loaded:
    """Only the policies the case asserts on: policies are evaluated independently, except the
    exception ledger, which sees what every other policy waived (then all run, as with strict)."""
    named = {e.policy for e in case.expect}
    scopes = {p.policy.doc.spec.scope for p in loaded.policies if p.id in named}
    if case.strict or "exception" in scopes:
        return loaded
    return dataclasses.replace(loaded, policies=[p for p in loaded.policies if p.id in named])


def _patched(case: Case, prefix: str) -> set[str]:
    return {prefix + op.file.strip("/") for op in case.patch}


def _relocate(
    suite: Suite, index: int, errors: list[InputError], overlay_files: set[str]
) -> list[InputError]:
    """Errors inside patched files point at the case: their lines are of the generated text."""
    out = []
    case = suite.doc.cases[index]
    line, column = suite.source.locate(("cases", index, "patch"))
    for error in errors:
        if error.file in overlay_files:
            out.append(
                InputError(
                    suite.shown,
                    line,
                    column,
                    f"case {case.name!r}: after patching, {error.file}: {error.message}"
                    + (f" [{error.json_path}]" if error.json_path else ""),
                    json_path(("cases", index, "patch")),
                    error.expected,
                )
            )
        else:
            out.append(error)
    return out


def _facts(suite: Suite, index: int, target_ids: set[str], errors: list[InputError]) -> Facts:
    case = suite.doc.cases[index]
    kinds: dict[str, dict[str, dict[str, Any]]] = {
        "measured": {k: v.model_dump(exclude_none=True) for k, v in case.measured.items()},
        "history": {k: v.model_dump(exclude_none=True) for k, v in case.history.items()},
        "old": {k: dict(v) for k, v in case.old.items()},
        "change": {k: v.model_dump(exclude_none=True) for k, v in case.change.items()},
    }
    for kind, by_target in (*kinds.items(), ("extra", case.extra)):
        for target in by_target:
            if target not in target_ids:
                errors.append(
                    suite.source.error(
                        ("cases", index, kind, target),
                        f"{kind} names target {target!r}, which is not in the fixture"
                        + _guess(target, sorted(target_ids)),
                        "a target id such as model@version or model@version/deployment",
                    )
                )
    return Facts(
        measured=kinds["measured"],
        history=kinds["history"],
        old=kinds["old"],
        change=kinds["change"],
        extra=dict(case.extra),
        available=frozenset(kind for kind in FACT_KINDS if kinds[kind]),
    )


def _check_expectation(
    suite: Suite,
    index: int,
    position: int,
    expected: Expectation,
    target_ids: set[str],
    policy_keys: dict[str, list[str]],
) -> list[InputError]:
    where: YamlPath = ("cases", index, "expect", position)
    if expected.policy not in policy_keys:
        return [
            suite.source.error(
                (*where, "policy"),
                f"no loaded policy has id {expected.policy!r}" + _guess(expected.policy, list(policy_keys)),
                "the id of a loaded policy",
            )
        ]
    problems = []
    if expected.target not in target_ids:
        problems.append(
            suite.source.error(
                (*where, "target"),
                f"no target {expected.target!r} in the fixture" + _guess(expected.target, sorted(target_ids)),
                "a target id such as model@version",
            )
        )
    keys = policy_keys[expected.policy]
    if expected.validation is not None and expected.validation not in keys:
        problems.append(
            suite.source.error(
                (*where, "validation"),
                f"{expected.policy} has no validation {expected.validation!r}"
                + _guess(expected.validation, keys),
                "one of " + ", ".join(keys),
            )
        )
    return problems


_ORDER = ("error", "fail", "waived", "pass", "skip")


def aggregate_status(findings: list[Finding]) -> str:
    """A policy's status on a target across its validations: the most severe one."""
    statuses = {f.status for f in findings}
    for status in _ORDER:
        if status in statuses:
            if status == "skip" and statuses != {"skip"}:
                continue
            return status
    return "none"


def judge(case: Case, index: int, findings: list[Finding]) -> CaseResult:
    """Compare a case's findings with what it expects."""
    result = CaseResult(case.name, index, ok=True, findings=findings)
    expected_keys: set[tuple[str, str, str | None]] = set()
    for expected in case.expect:
        chosen = [
            f
            for f in findings
            if f.policy_id == expected.policy
            and f.target == expected.target
            and (expected.validation is None or f.validation == expected.validation)
        ]
        actual = aggregate_status(chosen)
        ok = actual == expected.status
        problem = "" if ok else f"expected {expected.status}, got {actual}"
        if not chosen:
            problem = f"expected {expected.status}, but the policy gave no finding on this target"
        relevant = [f for f in chosen if f.status == actual]
        if ok and expected.message is not None and not any(expected.message in f.message for f in relevant):
            ok, problem = False, f"no {actual} message contains {expected.message!r}"
        if ok and expected.blocking is not None and any(f.blocking for f in relevant) != expected.blocking:
            ok = False
            problem = f"expected blocking: {str(expected.blocking).lower()}, got the opposite"
        result.expectations.append(ExpectationResult(expected, ok, actual, relevant, problem))
        result.ok = result.ok and ok
        expected_keys.add((expected.policy, expected.target, expected.validation))
    if case.strict:
        result.unexpected = [
            f
            for f in findings
            if f.status in ("fail", "error")
            and (f.policy_id, f.target, f.validation) not in expected_keys
            and (f.policy_id, f.target, None) not in expected_keys
        ]
        result.ok = result.ok and not result.unexpected
    return result


def record_coverage(coverage: Coverage, result: CaseResult) -> None:
    """Validations a matched expectation saw pass or fail (waived counts as a failure seen)."""
    for outcome in result.expectations:
        if not outcome.ok:
            continue
        coverage.tested.add(outcome.expectation.policy)
        for finding in outcome.findings:
            key = (finding.policy_id, finding.validation)
            if finding.status == "pass":
                coverage.seen_pass.add(key)
            elif finding.status in ("fail", "waived"):
                coverage.seen_fail.add(key)


def run(
    paths: list[Path],
    *,
    backend: BackendChoice = "auto",
    include_builtin: bool = True,
) -> RunResult:
    """Load every suite, run every case and compute coverage. Raises ``InputErrors`` (exit 2)
    when a suite, a patched fixture, a fact or an expectation is invalid."""
    layout = plan(paths)
    runner = Runner(layout.policy_dirs, backend, include_builtin)
    errors: list[InputError] = []
    suites: list[Suite] = []
    for path in layout.suite_files:
        try:
            suites.append(load_suite(path))
        except InputErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise InputErrors(errors)
    coverage = Coverage()
    results: list[SuiteResult] = []
    backend_name = ""
    for suite in suites:
        try:
            base = runner.base(suite)
        except InputErrors as exc:
            errors.extend(exc.errors)
            continue
        backend_name = base.backend.name
        for policy_id, keys in runner.policies_under_test(base).items():
            coverage.validations.setdefault(policy_id, keys)
        suite_result = SuiteResult(suite)
        for index in range(len(suite.doc.cases)):
            case_result = runner.run_case(suite, index, errors)
            if case_result is not None:
                suite_result.cases.append(case_result)
                record_coverage(coverage, case_result)
        results.append(suite_result)
    if errors:
        raise InputErrors(_unique(errors))
    return RunResult(results, coverage, backend_name)


def _unique(errors: list[InputError]) -> list[InputError]:
    seen: set[str] = set()
    out = []
    for error in errors:
        text = error.render()
        if text not in seen:
            seen.add(text)
            out.append(error)
    return out
