"""Where portfolio files come from: a directory on disk (or, in pull-request mode, a git tree).

Loaders read through this interface, so the same loading code serves the working tree and
any revision without knowing which it is.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath
from typing import Protocol


class FileSource(Protocol):
    """Read-only view of a portfolio root. Paths are POSIX, relative to that root."""

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""

    def list(self, directory: str, suffixes: tuple[str, ...]) -> list[str]:
        """Files under ``directory`` (recursively) with one of ``suffixes``, sorted."""


class DirectorySource:
    """A portfolio root on disk. Symlinks that leave the root are refused."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._real_directories: dict[str, bool] = {}  # directory -> resolves inside the root

    def _inside(self, path: Path) -> bool:
        try:
            path.resolve().relative_to(self.root)
        except ValueError:
            return False
        return True

    def read(self, path: str) -> bytes | None:
        full = os.path.join(self.root, path)
        try:
            mode = os.lstat(full).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return None
        directory = os.path.dirname(full)
        inside = self._real_directories.get(directory)
        if inside is None:
            inside = self._real_directories[directory] = self._inside(Path(directory))
        # A plain file in a directory inside the root is inside; anything else (a symlink, a
        # path through one or through "..") is resolved in full. Two system calls per file
        # instead of one per path component.
        if stat.S_ISLNK(mode) or not inside:
            if not os.path.isfile(full):
                return None
            if not self._inside(Path(full)):
                raise PermissionError(f"{path} points outside the portfolio directory")
        elif not stat.S_ISREG(mode):
            return None
        with open(full, "rb") as handle:
            return handle.read()

    def list(self, directory: str, suffixes: tuple[str, ...]) -> list[str]:
        base = self.root / directory
        if not base.is_dir():
            return []
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                if name.endswith(suffixes) and not name.startswith("."):
                    rel = Path(dirpath, name).relative_to(self.root)
                    found.append(PurePosixPath(rel).as_posix())
        return sorted(found)


def repo_root_of(path: Path) -> Path:
    """The enclosing git work tree's root, or ``path`` itself outside git."""
    path = path.resolve()
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return candidate
    return path


def display_prefix(root: Path) -> str:
    """Prefix that makes a root-relative path repo-relative, e.g. ``examples/acme/``."""
    root = root.resolve()
    rel = PurePosixPath(root.relative_to(repo_root_of(root)).as_posix())
    return "" if str(rel) == "." else f"{rel}/"
