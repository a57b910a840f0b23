"""The only module that imports GitPython: refs, merge bases, trees, blobs and log passes.

Everything it returns is a plain value (shas as hex strings, file contents as bytes, commit
facts as small dataclasses), so the logic built on top of it (``history``, ``pullrequest``)
never touches a GitPython object. Every git failure a user can cause (not a repository,
unknown ref, shallow clone without the base) is a ``UsageError`` with a one-line message.

``git`` itself is imported when a repository is opened, never at module import, so the
pre-commit path (plain ``check``) does not pay for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from policy_engine.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import git

FETCH_HINT = (
    "fetch the full history (actions/checkout with `fetch-depth: 0`, or "
    "`git fetch --unshallow origin` / `git fetch origin <base branch>`)"
)
_NULL_SHA = "0" * 40
_LOG_FORMAT = "%x01%H%x1f%ct%x1f%an%x1f%ae"


class GitFailed(UsageError):
    """A git command failed; the message is git's own last line of complaint."""


@dataclass(frozen=True, slots=True)
class CommitInfo:
    sha: str
    committed_at: str  # committer date, RFC 3339 UTC
    author_name: str
    author_email: str


@dataclass(frozen=True, slots=True)
class FileChange:
    """One file a commit changed: its path (repository-relative) and new blob, None if deleted."""

    path: str
    blob: str | None


@dataclass(frozen=True, slots=True)
class LogEntry:
    commit: CommitInfo
    changes: tuple[FileChange, ...]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="surrogateescape")


def _timestamp(epoch: str) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GitRepo:
    """A work tree's repository. Open it with ``GitRepo.open(path)``."""

    def __init__(self, repo: git.Repo) -> None:
        self._repo = repo
        self.root = Path(str(repo.working_tree_dir)).resolve()
        self._trees: dict[str, dict[str, tuple[str, str]]] = {}
        self._blobs: dict[str, bytes] = {}

    @classmethod
    def open(cls, path: Path) -> GitRepo:
        try:
            import git
        except ImportError as exc:  # GitPython refuses to import without a git executable
            raise UsageError(f"git is not available: {str(exc).splitlines()[0]}") from None
        try:
            repo = git.Repo(path, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise UsageError(
                f"{path}: not inside a git repository (--base, --head, --history and git sign-off "
                "verification read git history)"
            ) from None
        if repo.bare or repo.working_tree_dir is None:
            raise UsageError(f"{path}: a bare repository has no work tree to check")
        return cls(repo)

    # ------------------------------------------------------------------ plumbing

    def _git(self, *args: str, raw: bool = False) -> Any:
        """Run one git command; a failure is a ``GitFailed`` (exit 2) with git's message."""
        import git

        try:
            return self._repo.git.execute(
                ["git", *args],
                stdout_as_string=not raw,
                strip_newline_in_stdout=not raw,
            )
        except git.GitCommandNotFound:
            raise GitFailed("git is not installed or not on PATH") from None
        except git.GitCommandError as exc:
            stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
            lines = [line.strip() for line in str(stderr or "").splitlines() if line.strip()]
            detail = lines[-1].removeprefix("stderr: ").strip("'") if lines else f"exit status {exc.status}"
            raise GitFailed(f"git {args[0]} failed in {self.root}: {detail}") from None

    def _try(self, *args: str) -> str | None:
        try:
            return str(self._git(*args))
        except GitFailed:
            return None

    def relative(self, path: Path) -> str:
        """``path`` relative to the repository root, POSIX, "" for the root itself."""
        try:
            rel = path.resolve().relative_to(self.root)
        except ValueError:
            raise UsageError(f"{path} is outside the git repository at {self.root}") from None
        text = PurePosixPath(rel.as_posix()).as_posix()
        return "" if text == "." else text

    def is_shallow(self) -> bool:
        return self._try("rev-parse", "--is-shallow-repository") == "true"

    def uncommitted(self, path: str) -> list[str]:
        """Repository paths under ``path`` that differ from HEAD (modified, added, untracked)."""
        args = ("status", "--porcelain", "-z", "--no-renames", "--untracked-files=all", "--", path or ".")
        raw = self._try(*args) or ""
        entries = [entry for entry in raw.split("\0") if entry]
        return sorted({entry[3:] for entry in entries if len(entry) > 3 and entry[2] == " "})

    # ------------------------------------------------------------------ refs

    def resolve(self, ref: str, option: str) -> str:
        """The commit sha ``ref`` names (a branch also as ``origin/<branch>``), or a UsageError."""
        candidates = [ref]
        if not ref.startswith(("origin/", "refs/")) and len(ref) != 40:
            candidates.append(f"origin/{ref}")
        for candidate in candidates:
            if candidate.startswith("-"):
                break
            sha = self._try("rev-parse", "--verify", "--quiet", "--end-of-options", f"{candidate}^{{commit}}")
            if sha:
                return sha.strip()
        if self.is_shallow():
            hint = f"; the clone is shallow: {FETCH_HINT}"
        elif option == "--base":
            hint = f"; if it is a branch of the remote, fetch it first (`git fetch origin {ref}`)"
        else:
            hint = ""
        raise UsageError(f"{option} {ref}: unknown revision (not a branch, tag or commit here){hint}")

    def head(self) -> str:
        sha = self._try("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
        if not sha:
            raise UsageError(f"{self.root}: the repository has no commits yet (HEAD is unborn)")
        return sha.strip()

    def merge_base(self, base: str, head: str, shown: str) -> str:
        sha = self._try("merge-base", base, head)
        if sha:
            return sha.strip()
        if self.is_shallow():
            raise UsageError(
                f"--base {shown}: no merge base with the head in this shallow clone; {FETCH_HINT}"
            )
        raise UsageError(f"--base {shown}: it shares no history with the head (no merge base)")

    def has_commit(self, sha: str) -> bool:
        return self._try("cat-file", "-e", f"{sha}^{{commit}}") is not None

    def parents(self, sha: str) -> list[str]:
        line = self._try("rev-list", "--parents", "-n", "1", sha) or ""
        return line.split()[1:]

    def first_parent_chain(self, sha: str) -> list[str]:
        """``sha`` and its first-parent ancestors, newest first."""
        return str(self._git("rev-list", "--first-parent", sha)).split()

    def last_before(self, rev: str, epoch: int) -> CommitInfo | None:
        """The newest commit on ``rev``'s first-parent line committed strictly before ``epoch``
        (committer date, seconds since 1970), or None when there is none."""
        sha = self._try("rev-list", "--first-parent", "-n", "1", f"--min-age={epoch - 1}", rev)
        if not sha or not sha.strip():
            return None
        return self.commit_info(sha.strip())

    def commit_info(self, sha: str) -> CommitInfo:
        text = str(self._git("show", "-s", "--format=%H%x1f%ct%x1f%an%x1f%ae", sha))
        full, epoch, name, email = text.split("\x1f")
        return CommitInfo(full, _timestamp(epoch), name, email)

    def signature(self, sha: str) -> tuple[bool, bool, str]:
        """(signed, verifies, detail) for one commit; ``git verify-commit`` decides."""
        commit = self._repo.commit(sha)
        if not getattr(commit, "gpgsig", None):
            return False, False, "unsigned"
        try:
            self._git("verify-commit", sha)
        except GitFailed as exc:
            return True, False, str(exc).rpartition(": ")[2] or "signature does not verify"
        return True, True, "signature verified"

    # ------------------------------------------------------------------ trees and blobs

    def tree(self, commit: str) -> dict[str, tuple[str, str]]:
        """Every file of a commit: repository path -> (mode, blob sha)."""
        found = self._trees.get(commit)
        if found is None:
            raw: bytes = self._git("ls-tree", "-r", "-z", "--full-tree", commit, raw=True)
            found = {}
            for record in raw.split(b"\0"):
                if not record:
                    continue
                meta, _, path = record.partition(b"\t")
                mode, kind, sha = meta.split()
                if kind == b"blob":
                    found[_text(path)] = (mode.decode(), sha.decode())
            self._trees[commit] = found
        return found

    def blob(self, sha: str) -> bytes:
        data = self._blobs.get(sha)
        if data is None:
            try:
                data = bytes(self._repo.odb.stream(bytes.fromhex(sha)).read())
            except (ValueError, OSError) as exc:
                raise GitFailed(f"cannot read blob {sha[:12]} in {self.root}: {exc}") from None
            self._blobs[sha] = data
        return data

    # ------------------------------------------------------------------ log passes

    def log(self, rev: str, paths: list[str], *, first_parent: bool) -> Iterator[LogEntry]:
        """Commits reachable from ``rev`` that touch ``paths``, oldest first, with changed blobs.

        ``first_parent``: follow only first parents and diff merges against their first parent
        (the history of a branch as it was merged); else every commit in topological order
        (merges contribute no changes of their own).
        """
        args = ["log", "--reverse", "-z", "--no-renames", "--raw", "--no-abbrev", f"--format={_LOG_FORMAT}"]
        args += ["--first-parent", "-m"] if first_parent else ["--topo-order"]
        raw: bytes = self._git(*args, rev, "--", *(paths or ["."]), raw=True)
        for record in raw.split(b"\x01")[1:]:
            header, _, body = record.partition(b"\0")
            sha, epoch, name, email = _text(header).split("\x1f")
            tokens = body.lstrip(b"\n").split(b"\0")
            changes: list[FileChange] = []
            for index in range(0, len(tokens) - 1, 2):
                meta, path = tokens[index], tokens[index + 1]
                if not meta.startswith(b":"):
                    continue
                fields = meta[1:].split()
                new_mode, new_sha = fields[1].decode(), fields[3].decode()
                deleted = new_sha == _NULL_SHA or new_mode == "000000"
                changes.append(FileChange(_text(path), None if deleted else new_sha))
            yield LogEntry(CommitInfo(sha, _timestamp(epoch), name, email), tuple(changes))


class GitTreeSource:
    """A ``FileSource`` over one commit's tree, rooted at a subdirectory (the portfolio root)."""

    def __init__(self, repo: GitRepo, commit: str, root: str = "") -> None:
        self.repo = repo
        self.commit = commit
        self.root = root.strip("/")

    def _full(self, path: str) -> str:
        path = path.strip("/")
        return f"{self.root}/{path}" if self.root and path else (self.root or path)

    def read(self, path: str) -> bytes | None:
        entry = self.repo.tree(self.commit).get(self._full(path))
        if entry is None:
            return None
        mode, sha = entry
        if mode == "120000":
            raise PermissionError(f"{path} is a symbolic link in commit {self.commit[:12]}; not followed")
        return self.repo.blob(sha)

    def list(self, directory: str, suffixes: tuple[str, ...]) -> list[str]:
        base = self._full(directory)
        prefix = f"{base}/" if base else ""
        strip = f"{self.root}/" if self.root else ""
        found = []
        for path in self.repo.tree(self.commit):
            if not path.startswith(prefix) or not path.endswith(suffixes):
                continue
            rel = path[len(strip) :]
            below = path[len(prefix) :]
            if any(part.startswith(".") for part in below.split("/")):
                continue
            found.append(rel)
        return sorted(found)
