"""History facts from git log, as pure logic over what ``gitrepo`` yields.

One pass over the first-parent log of the model files (oldest first, committer dates) gives,
for every model version, when it first appeared and when it entered its current stage. Only
blobs a commit changed are parsed, each once (``Summaries`` caches them by blob id), and a
model is followed by its ``id``, not its file, so renaming or moving a file changes nothing.

The same scan over every commit (not only first parents) tells which commit first added each
sign-off, which ``git`` sign-off verification needs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from policy_engine import parsecache, yamlsource
from policy_engine.gitrepo import CommitInfo, LogEntry
from policy_engine.models import types
from policy_engine.models.types import format_timestamp, parse_timestamp
from policy_engine.yamlsource import load_plain

VersionKey = tuple[str, str]  # (model id, version)
# (model id, version, role, login, subject digest, signed at): one sign-off, whatever its file.
SignoffKey = tuple[str, str, str, str, str, str]
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """What history needs from one model file: its id, each version's stage, its sign-offs."""

    model_id: str
    stages: dict[str, str]
    signoffs: tuple[SignoffKey, ...]


@dataclass(frozen=True, slots=True)
class StageHistory:
    first_seen: str
    stage: str
    stage_since: str
    stage_since_commit: str

    def facts(self) -> dict[str, str]:
        return {
            "first_seen": self.first_seen,
            "stage_since": self.stage_since,
            "stage_since_commit": self.stage_since_commit,
        }


def _scalar(value: Any) -> str:
    """A scalar as text; anything else as "". Historical blobs are not validated, and ``str``
    of a structure built from aliases (a billion laughs in an old commit) would never end."""
    return str(value) if isinstance(value, str | int | float | bool) or value is None else ""


def normal_time(value: Any) -> str:
    """A timestamp as the loader normalises it (``Z``), or the text as written if it is not one."""
    text = _scalar(value)
    try:
        return format_timestamp(parse_timestamp(text))
    except ValueError:
        return text


def summarize(data: Any) -> ModelSummary | None:
    """The summary of one parsed model file, or None when it does not look like one."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        return None
    model_id = data["id"]
    stages: dict[str, str] = {}
    signoffs: list[SignoffKey] = []
    versions = data.get("versions")
    for entry in versions if isinstance(versions, list) else []:
        if not isinstance(entry, dict) or "version" not in entry:
            continue
        version = _scalar(entry["version"])
        stages[version] = _scalar(entry.get("stage", ""))
        listed = entry.get("signoffs")
        for signoff in listed if isinstance(listed, list) else []:
            if not isinstance(signoff, dict):
                continue
            scope = signoff.get("scope")
            digest = scope.get("subject_digest", "") if isinstance(scope, dict) else ""
            signoffs.append(
                (
                    model_id,
                    version,
                    _scalar(signoff.get("role", "")),
                    _scalar(signoff.get("by", "")),
                    _scalar(digest),
                    normal_time(signoff.get("at", "")),
                )
            )
    return ModelSummary(model_id, stages, tuple(signoffs))


class Summaries:
    """Model-file summaries by blob id: each blob is read and summarised at most once, and
    with a parse cache at most once ever (a summary is remembered by its blob id).

    Consecutive versions of a model file differ in a few lines, so a file is parsed in pieces:
    the top level and each item of its ``versions:`` block separately, each piece cached by its
    text. A commit that edits one version then costs one small parse, not a whole file (YAML
    parsing, not git, is what a history pass spends its time on). A file that does not split
    cleanly (flow style, anchors across pieces...) is parsed whole.
    """

    def __init__(self, read_blob: Callable[[str], bytes]) -> None:
        self._read = read_blob
        self._cache: dict[str, ModelSummary | None] = {}
        self._pieces: dict[str, Any] = {}
        self.parsed = 0

    def __call__(self, blob: str) -> ModelSummary | None:
        if blob in self._cache:
            return self._cache[blob]
        # A blob id names its content: a summary an earlier run made of it is never stale.
        key = parsecache.key(blob.encode(), f"{_SUMMARY}:{_code()}") if parsecache.enabled() else ""
        found = parsecache.lookup(key) if key else None
        if isinstance(found, tuple) and len(found) == 1:
            summary = _summary_from_plain(found[0])
        else:
            raw = self._read(blob)
            data = _loaded_parse(raw)
            if data is None:
                self.parsed += 1
                data = self._assemble(raw)
            summary = summarize(data if data is not None else load_plain(raw))
            if key:
                parsecache.store(key, (_summary_to_plain(summary),))
        self._cache[blob] = summary
        return summary

    def _piece(self, text: str) -> Any:
        if text not in self._pieces:
            self._pieces[text] = load_plain(text.encode("utf-8"))
        return self._pieces[text]

    def _assemble(self, raw: bytes) -> dict[str, Any] | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        split = split_versions(text)
        if split is None:
            return None
        rest, items = split
        top = self._piece(rest)
        if not isinstance(top, dict) or "versions" in top:
            return None
        versions = []
        for item in items:
            parsed = self._piece(item)
            if not isinstance(parsed, list) or len(parsed) != 1:
                return None
            versions.append(parsed[0])
        return {**top, "versions": versions}


_SUMMARY = "history-summary:1"


def _loaded_parse(raw: bytes) -> Any:
    """The value of the loader's own parse of these bytes, when the parse cache holds one (the
    portfolio loaded by this run or an earlier one had a file with this content): it reads as
    ``load_plain`` would (tested), and costs no YAML parsing."""
    if not parsecache.enabled():
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    hit = yamlsource.from_cache(text, "", track_values=False)
    return hit[0] if hit is not None else None


@cache
def _code() -> str:
    """A fingerprint of the code that summarises a model file."""
    return parsecache.code_fingerprint((sys.modules[__name__], types, yamlsource))


def _summary_to_plain(summary: ModelSummary | None) -> Any:
    return None if summary is None else (summary.model_id, summary.stages, summary.signoffs)


def _summary_from_plain(value: Any) -> ModelSummary | None:
    if value is None:
        return None
    model_id, stages, signoffs = value
    return ModelSummary(model_id, stages, tuple(tuple(signoff) for signoff in signoffs))


_VERSIONS_KEY = re.compile(r"versions:[ \t]*(#.*)?\r?\n?")
_ITEM = re.compile(r"( *)-( |\r?\n|$)")


def split_versions(text: str) -> tuple[str, list[str]] | None:
    """A block-style model file as (everything but the ``versions:`` block, one text per item).

    Each piece is valid YAML on its own; None when the file is not laid out that way.
    """
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if _VERSIONS_KEY.fullmatch(line)), None)
    if start is None:
        return None
    indent: int | None = None
    end = len(lines)
    items: list[list[str]] = []
    for index in range(start + 1, len(lines)):
        line = lines[index]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            if items:
                items[-1].append(line)
            continue
        if line.startswith("\t"):
            return None
        column = len(line) - len(line.lstrip(" "))
        item = _ITEM.match(line)
        if indent is None:
            if item is None:
                return None
            indent = column
        if item is not None and column == indent:
            items.append([line])
        elif column == 0:
            end = index  # the next top-level key (or anything else at the top level)
            break
        elif column <= indent or not items:
            return None
        else:
            items[-1].append(line)
    rest = "".join(lines[:start] + lines[end:])
    return rest, ["".join(item) for item in items]


def _is_model_file(path: str, models_prefix: str) -> bool:
    return path.startswith(models_prefix) and path.endswith(YAML_SUFFIXES)


@dataclass(slots=True)
class _Walk:
    """Stage state while walking commits: which file holds which version in which stage."""

    files: dict[str, dict[VersionKey, str]]
    where: dict[VersionKey, dict[str, str]]
    state: dict[VersionKey, StageHistory]
    present: set[VersionKey]

    def apply(self, entry: LogEntry, summaries: Summaries, models_prefix: str) -> None:
        touched: set[VersionKey] = set()
        for change in entry.changes:
            if not _is_model_file(change.path, models_prefix):
                continue
            for key in self.files.pop(change.path, {}):
                self.where.get(key, {}).pop(change.path, None)
                touched.add(key)
            summary = summaries(change.blob) if change.blob else None
            if summary is None:
                continue
            held = {(summary.model_id, v): stage for v, stage in summary.stages.items()}
            self.files[change.path] = held
            for key, stage in held.items():
                self.where.setdefault(key, {})[change.path] = stage
                touched.add(key)
        when, sha = entry.commit.committed_at, entry.commit.sha
        for key in sorted(touched):
            places = self.where.get(key)
            if not places:
                self.present.discard(key)
                continue
            stage = places[min(places)]
            before = self.state.get(key)
            if before is None:
                self.state[key] = StageHistory(when, stage, when, sha)
            elif key not in self.present or before.stage != stage:
                self.state[key] = StageHistory(before.first_seen, stage, when, sha)
            self.present.add(key)

    def snapshot(self) -> dict[VersionKey, StageHistory]:
        return {key: self.state[key] for key in self.present}


def stage_history(
    entries: Iterable[LogEntry],
    summaries: Summaries,
    models_prefix: str,
    newer_than_base: set[str] | None = None,
) -> tuple[dict[VersionKey, StageHistory], dict[VersionKey, StageHistory] | None]:
    """Walk first-parent log entries oldest first. Returns the state after the last entry and,
    given the commits of that line that are newer than the base, the state at the base."""
    walk = _Walk({}, {}, {}, set())
    snapshot = None
    for entry in entries:
        if snapshot is None and newer_than_base is not None and entry.commit.sha in newer_than_base:
            snapshot = walk.snapshot()
        walk.apply(entry, summaries, models_prefix)
    final = walk.snapshot()
    if snapshot is None and newer_than_base is not None:
        snapshot = final
    return final, snapshot


def overlay(
    committed: dict[VersionKey, StageHistory], current: dict[VersionKey, str], uncommitted_at: str
) -> dict[VersionKey, StageHistory]:
    """History of the versions in ``current`` (key -> stage): changes not yet committed count
    from ``uncommitted_at`` with no commit."""
    result: dict[VersionKey, StageHistory] = {}
    for key, stage in current.items():
        known = committed.get(key)
        if known is None:
            result[key] = StageHistory(uncommitted_at, stage, uncommitted_at, "")
        elif known.stage != stage:
            result[key] = StageHistory(known.first_seen, stage, uncommitted_at, "")
        else:
            result[key] = known
    return result


def signoff_introductions(
    entries: Iterable[LogEntry], summaries: Summaries, models_prefix: str
) -> dict[SignoffKey, CommitInfo]:
    """For every sign-off ever present, the first commit (topological order) whose file had it."""
    found: dict[SignoffKey, CommitInfo] = {}
    for entry in entries:
        for change in entry.changes:
            if change.blob is None or not _is_model_file(change.path, models_prefix):
                continue
            summary = summaries(change.blob)
            if summary is None:
                continue
            for key in summary.signoffs:
                found.setdefault(key, entry.commit)
    return found
