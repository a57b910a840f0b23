"""A cache of parsed YAML files keyed by the sha256 of their bytes.

Parsing YAML, not evaluating CEL, is what costs at scale; a file whose bytes have not changed
parses to the same values and positions, so its result can be reused. The key covers the
content, the engine version and the parse mode, so an entry is never stale, and the whole
directory is safe to delete. The CLI configures the directory
(``${POLICY_ENGINE_CACHE_DIR:-$XDG_CACHE_HOME/policy-engine}``); without it nothing is cached.

Entries live in packs: the entries a run adds are written together, as one new file, when it
``flush``es. One file per entry cost a file creation each, which on this project's machine
took 0.4–1 ms (ext4 on a virtual disk): 1–2.5 s of the cold run on 10,000 versions. A pack is
written to a temporary name and renamed, so readers see whole packs or none; an unreadable
pack or entry is a miss. A run reads a pack's index, then only the entries it looks up.
Past ``MAX_PACKS`` files, a flush merges them into one, which keeps what the merging run used
and, up to ``MERGED_BYTES``, the newest of the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import tempfile
from pathlib import Path
from typing import Any

from policy_engine import __version__

MAX_PACKS = 8
MERGED_BYTES = 256 * 2**20  # what a merge keeps besides the entries the merging run used
_HEADER = 8  # bytes: the length of the pack's index, which follows; then the entries

_directory: Path | None = None
_known: dict[str, tuple[int, int, int]] | None = None  # digest -> (open pack, start, end)
_open: list[int] = []  # the packs' file descriptors
_pending: dict[str, bytes] = {}  # stored in this process, not yet in a pack
_used: set[str] = set()  # read from a pack by this process


def configure(directory: Path | None) -> None:
    """Use ``directory`` (created on first write) for this process; None turns caching off.
    Entries stored for the previous directory are written to it first."""
    global _directory
    flush()
    _directory = directory / f"v{__version__}" if directory is not None else None
    _forget_packs()
    _used.clear()


def enabled() -> bool:
    """Whether this process has a cache directory (else ``store`` keeps nothing)."""
    return _directory is not None


def code_fingerprint(modules: tuple[Any, ...], extra: str = "") -> str:
    """A fingerprint of the source of ``modules`` (and ``extra``), for keys of entries that
    code derives: changed code never reads what older code stored, even within one version.
    A module without readable source (a frozen install) counts by name: the package version,
    in the directory name, keys it then."""
    hashed = hashlib.sha256(extra.encode())
    for module in modules:
        try:
            hashed.update(Path(module.__file__ or "").read_bytes())
        except OSError:
            hashed.update(module.__name__.encode())
    return hashed.hexdigest()[:16]


def key(raw: bytes, mode: str) -> str:
    hashed = hashlib.sha256(mode.encode() + b"\0")
    hashed.update(raw)  # (not joined to the mode first: a residency file is a copy of 100 MB)
    return hashed.hexdigest()


def contains(digest: str) -> bool:
    return _directory is not None and (digest in _pending or digest in _packs())


def lookup(digest: str) -> Any | None:
    if _directory is None:
        return None
    data = _pending.get(digest)
    if data is None:
        found = _packs().get(digest)
        if found is None:
            return None
        data = _read(found)
        _used.add(digest)
    try:
        return marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None


def store(digest: str, value: Any) -> None:
    """Keep ``value`` for ``digest``; it reaches the disk with the next ``flush``."""
    if _directory is None or digest in _pending:
        return
    with contextlib.suppress(ValueError):  # not marshallable: simply not cached
        store_marshalled(digest, marshal.dumps(value))


def store_marshalled(digest: str, data: bytes) -> None:
    """``store`` for a value already marshalled (by a worker process)."""
    if _directory is not None:
        _pending.setdefault(digest, data)


def take_pending() -> dict[str, bytes]:
    """The entries stored since the last flush, marshalled, handed over instead of written (a
    worker process gives them to its parent, see ``parallel``)."""
    entries = dict(_pending)
    _pending.clear()
    return entries


def flush() -> None:
    """Write the entries stored since the last flush as one pack (merging the packs when there
    are too many). A cache that cannot be written only costs time: errors are ignored."""
    if _directory is None or not _pending:
        return
    entries = dict(_pending)
    _pending.clear()
    existing = sorted(_directory.glob("*.pack")) if _directory.is_dir() else []
    merged: list[Path] = []
    if len(existing) >= MAX_PACKS:
        entries.update(_kept(existing, entries))
        merged = existing
    try:
        _write(_directory, entries)
    except OSError:
        return
    _forget_packs()  # read them again when next asked: the new one is among them
    for path in merged:  # their entries are in the new pack; a reader holding one open keeps it
        path.unlink(missing_ok=True)


def _forget_packs() -> None:
    global _known
    for descriptor in _open:
        os.close(descriptor)
    _open.clear()
    _known = None


def _packs() -> dict[str, tuple[int, int, int]]:
    """Every entry of every pack in the directory, read (as an index only) on first use."""
    global _known
    if _known is None:
        _known = {}
        if _directory is not None and _directory.is_dir():
            for path in sorted(_directory.glob("*.pack")):
                _known.update(_index(path))
    return _known


def _index(path: Path) -> dict[str, tuple[int, int, int]]:
    """The entries of one pack, as (open file, start, end); a pack that cannot be read has none."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return {}
    _open.append(descriptor)
    try:
        length = os.fstat(descriptor).st_size
        size = int.from_bytes(os.pread(descriptor, _HEADER, 0), "little")
        index = marshal.loads(os.pread(descriptor, size, _HEADER))
        base = _HEADER + size
        return {
            digest: (descriptor, base + start, base + end)
            for digest, (start, end) in index.items()
            if isinstance(digest, str) and 0 <= start <= end and base + end <= length
        }
    except (OSError, ValueError, EOFError, TypeError, AttributeError, OverflowError):
        return {}


def _read(found: tuple[int, int, int]) -> bytes:
    descriptor, start, end = found
    try:
        return os.pread(descriptor, end - start, start)
    except OSError:
        return b""


def _kept(paths: list[Path], new: dict[str, bytes]) -> dict[str, bytes]:
    """The entries of ``paths`` worth keeping when they merge: every one this process read,
    then others from the newest packs on while the merged pack stays under ``MERGED_BYTES``
    (a cache shared by many portfolios would otherwise grow without end)."""
    indexes = [_index(path) for path in sorted(paths, key=_age)]
    budget = MERGED_BYTES - sum(len(data) for data in new.values())
    out: dict[str, bytes] = {}
    for used_only in (True, False):
        for index in indexes:
            for digest, found in index.items():
                size = found[2] - found[1]
                if digest in new or digest in out or (used_only and digest not in _used):
                    continue
                if not used_only and size > budget:
                    continue
                out[digest] = _read(found)
                budget -= size
    return out


def _age(path: Path) -> float:
    """Newest first."""
    try:
        return -path.stat().st_mtime
    except OSError:
        return 0.0


def _write(directory: Path, entries: dict[str, bytes]) -> None:
    index: dict[str, tuple[int, int]] = {}
    offset = 0
    for digest, data in entries.items():
        index[digest] = (offset, offset + len(data))
        offset += len(data)
    header = marshal.dumps(index)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".pack.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(len(header).to_bytes(_HEADER, "little"))
            handle.write(header)
            for data in entries.values():
                handle.write(data)
        os.replace(tmp, directory / f"{os.urandom(8).hex()}.pack")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
