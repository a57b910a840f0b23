"""A cache of parsed YAML files keyed by the sha256 of their bytes.

Parsing YAML, not evaluating CEL, is what costs at scale; a file whose bytes have not changed
parses to the same values and positions, so its result can be reused. The key covers the
content, the engine version and the parse mode, so an entry is never stale, and the whole
directory is safe to delete. Entries are written atomically; an unreadable entry is a miss.
The CLI configures the directory (``${POLICY_ENGINE_CACHE_DIR:-$XDG_CACHE_HOME/policy-engine}``);
without it nothing is cached.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import tempfile
from pathlib import Path
from typing import Any

from policy_engine import __version__

_directory: Path | None = None


def configure(directory: Path | None) -> None:
    """Use ``directory`` (created on first write) for this process; None turns caching off."""
    global _directory
    _directory = directory / f"v{__version__}" if directory is not None else None


def key(raw: bytes, mode: str) -> str:
    return hashlib.sha256(mode.encode() + b"\0" + raw).hexdigest()


def contains(digest: str) -> bool:
    return _directory is not None and (_directory / digest[:2] / digest).is_file()


def lookup(digest: str) -> Any | None:
    if _directory is None:
        return None
    try:
        return marshal.loads((_directory / digest[:2] / digest).read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None


def store(digest: str, value: Any) -> None:
    if _directory is None:
        return
    folder = _directory / digest[:2]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".entry.", dir=folder)
        with os.fdopen(fd, "wb") as handle:
            marshal.dump(value, handle)
        os.replace(tmp, folder / digest)
    except (OSError, ValueError):
        pass  # a cache that cannot be written only costs time
