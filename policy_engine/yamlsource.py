"""The only module that imports PyYAML: safe parsing with a source position for every value.

Files are composed to nodes with the C parser (when present) and built into plain Python
values here, so that every mapping key and sequence item keeps its line and column, duplicate
keys are caught at every level, timestamps stay the strings the user wrote, and aliases cannot
expand a small file into an enormous document.
"""

from __future__ import annotations

import functools
import gc
import marshal
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml

from policy_engine import parsecache
from policy_engine.errors import InputError, json_path

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc]
    """The safe loader with plain-scalar resolution memoised: keys and enum values repeat a lot."""

    _tags: ClassVar[dict[tuple[str, tuple[bool, bool]], str]] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0]:
            memo = (value, implicit)
            tag = self._tags.get(memo)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(self._tags) < 100_000:
                    self._tags[memo] = tag
            return tag
        return super().resolve(kind, value, implicit)


_SCALARS = yaml.constructor.SafeConstructor()

# A document may not expand (through aliases) to more values than this, nor nest deeper.
MAX_VALUES = 5_000_000
MAX_DEPTH = 100
# Values that aliases (and merge keys) may add by repeating an anchored collection: checked
# before each repetition is built, so an alias bomb is refused at once, not after millions.
MAX_ALIAS_VALUES = 250_000
# Larger files are refused before parsing: one model per file never comes near this, and
# parsing YAML costs about 0.3 s per MB, so a 50 MB file would take many seconds.
MAX_FILE_BYTES = 10 * 1024 * 1024
# CEL integers are 64-bit; a YAML integer outside that range is an input error.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1

_TAG = "tag:yaml.org,2002:"
Path = tuple[str | int, ...]


# Decoded positions kept at once; the others stay packed (see SourceMap.packed).
DECODED_MAPS = 64
_decoded: dict[int, SourceMap] = {}  # insertion order = least recently decoded first


@dataclass(slots=True)
class SourceMap:
    """Where each value of one file came from: path tuple -> (line, column), 1-based."""

    file: str
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    # Start of scalar values (line, column, style), kept only when asked for: policy files
    # need it to place CEL compile errors inside the expression text.
    values: dict[Path, tuple[int, int, str]] = field(default_factory=dict)
    track_values: bool = False
    # The file's text, kept with ``track_values`` to map positions inside folded scalars.
    text: str = ""
    # The positions marshalled: a tenth of their size as a dict. Large portfolios keep only
    # this and decode a few files' positions at a time, when a finding or error needs them.
    packed: bytes = b""
    # The parse-cache key of the file's text: names its content, for caches of what is derived
    # from it (see ``factcache``). Empty when not known.
    content_key: str = ""

    def pack(self) -> SourceMap:
        """Keep the positions packed only; ``locate`` decodes them again when asked."""
        self.packed = marshal.dumps(self.positions)
        self.positions = {}
        return self

    def locate(self, path: Path) -> tuple[int, int]:
        """Position of ``path`` or of its nearest recorded ancestor."""
        positions = self.positions or self._decode()
        while True:
            pos = positions.get(path)
            if pos is not None:
                return pos
            if not path:
                return (1, 1)
            path = path[:-1]

    def _decode(self) -> dict[Path, tuple[int, int]]:
        if not self.packed:
            return self.positions
        self.positions = marshal.loads(self.packed)
        _decoded[id(self)] = self
        while len(_decoded) > DECODED_MAPS:
            oldest = next(iter(_decoded))
            _decoded.pop(oldest).positions = {}
        return self.positions

    def value_position(self, path: Path, value: str, line: int, column: int) -> tuple[int, int]:
        """File position of ``line:column`` (1-based) inside the scalar ``value`` at ``path``.

        Walks the scalar's source text alongside its value, so folded (``>``), plain multi-line
        and quoted scalars map back to the line the user wrote, whatever the indentation.
        """
        start = self.values.get(path)
        if start is None or not self.text:
            return self.locate(path)
        lines = value.split("\n")
        line = max(1, min(line, len(lines)))
        target = sum(len(text) + 1 for text in lines[: line - 1]) + max(column, 1) - 1
        target = min(target, len(value.rstrip()))  # "unexpected end of input" -> after the last token
        text = self.text
        start_line, start_column, style = start
        pos = 0
        for _ in range(start_line - 1):
            pos = text.index("\n", pos) + 1
        pos += start_column - 1
        if style in ("|", ">"):
            pos = text.find("\n", pos) + 1 or len(text)  # content starts on the next line
        elif style in ("'", '"'):
            pos += 1
        blank = " \t\r\n"
        index = 0
        while index < target and pos < len(text):
            char = value[index]
            if style == '"' and text[pos] == "\\":
                pos += 2
            elif char in blank:
                while pos < len(text) and text[pos] in blank:
                    pos += 1
            else:
                while pos < len(text) and text[pos] in blank:
                    pos += 1
                pos += 2 if style == "'" and char == "'" and text.startswith("''", pos) else 1
            index += 1
        if index < len(value) and value[index] not in blank:
            while pos < len(text) and text[pos] in blank:
                pos += 1
        pos = min(pos, len(text))
        return text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1

    def error(self, path: Path, message: str, expected: str = "") -> InputError:
        line, column = self.locate(path)
        return InputError(self.file, line, column, message, json_path(path), expected)


class YamlError(Exception):
    def __init__(self, error: InputError) -> None:
        super().__init__(error.render())
        self.error = error


def decode(raw: bytes, file: str) -> str:
    """UTF-8 (an optional byte-order mark is dropped); anything else is an input error."""
    if len(raw) > MAX_FILE_BYTES:
        raise YamlError(
            InputError(
                file,
                1,
                1,
                f"file is {len(raw) / 2**20:.1f} MiB, above the {MAX_FILE_BYTES // 2**20} MiB limit "
                "for one YAML file",
                "",
                "a smaller file (one model per file under models/)",
            )
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise YamlError(
            InputError(file, line, column, f"invalid UTF-8 byte 0x{raw[exc.start]:02x}", "", "UTF-8 text")
        ) from None


def parse(text: str, file: str, *, track_values: bool = False) -> tuple[Any, SourceMap]:
    """Parse one YAML document into plain values plus its source map (cached by content)."""
    digest = cache_key(text, track_values)
    hit = from_cache(text, file, track_values=track_values, digest=digest)
    if hit is not None:
        return hit
    value, source = parse_uncached(text, file, track_values=track_values)
    parsecache.store(digest, cache_entry(value, source))
    source.content_key = digest
    return value, source


def parse_uncached(text: str, file: str, *, track_values: bool = False) -> tuple[Any, SourceMap]:
    """``parse`` without the cache: the source map comes back packed."""
    collecting = gc.isenabled()
    gc.disable()  # parsing allocates many long-lived objects; collecting meanwhile is wasted work
    try:
        value, source = _parse(text, file, track_values)
    finally:
        if collecting:
            gc.enable()
    return value, source.pack()


def cache_entry(value: Any, source: SourceMap) -> tuple[bytes, bytes, Any]:
    """What the parse cache keeps of a parse (``from_cache`` reads it back). The value is
    marshalled on its own, so that a reader can leave it undecoded (``Unread``)."""
    return marshal.dumps(value), source.packed, source.values


def cache_key(text: str, track_values: bool = False) -> str:
    return parsecache.key(text.encode("utf-8"), f"yaml:2:{_code()}:{int(track_values)}")


@functools.cache
def _code() -> str:
    """This module defines what a parse gives: a changed parser never reads an older one's entries."""
    return parsecache.code_fingerprint((sys.modules[__name__],))


class Unread:
    """A cached parse's value, decoded only when asked for: a caller that finds what it needs
    of the file elsewhere (a model file's facts, see ``factcache``) never decodes it."""

    __slots__ = ("_data", "file")

    def __init__(self, data: bytes, file: str) -> None:
        self._data = data
        self.file = file

    def value(self) -> Any:
        try:
            return marshal.loads(self._data)
        except (EOFError, ValueError, TypeError):
            raise YamlError(
                InputError(
                    self.file,
                    1,
                    1,
                    "its cached parse is unreadable",
                    "",
                    "a readable parse cache: delete the cache directory (it is safe to delete)",
                )
            ) from None


def from_cache(
    text: str, file: str, *, track_values: bool = False, digest: str | None = None, lazy: bool = False
) -> tuple[Any, SourceMap] | None:
    """The parse of ``text`` if the parse cache holds it; ``lazy``: its value as ``Unread``."""
    digest = digest or cache_key(text, track_values)
    cached = parsecache.lookup(digest)
    if not (isinstance(cached, tuple) and len(cached) == 3 and isinstance(cached[0], bytes)):
        return None
    marshalled, packed, values = cached
    value: Any = Unread(marshalled, file)
    if not lazy:
        try:
            value = value.value()
        except YamlError:
            return None  # parsed again
    return value, SourceMap(file, {}, values, track_values, text if track_values else "", packed, digest)


def _parse(text: str, file: str, track_values: bool) -> tuple[Any, SourceMap]:
    source = SourceMap(file, track_values=track_values, text=text if track_values else "")
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and problem.startswith("but "):  # "expected a single document…; but found…"
            problem = f"{exc.context}, {problem}"
        raise YamlError(InputError(file, line, column, f"invalid YAML: {problem}")) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, most controls)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        character = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise YamlError(
            InputError(
                file,
                line,
                column,
                f"invalid YAML: character U+{ord(character):04X} is not allowed ({exc.reason})",
                "",
                "printable text (tabs and newlines are fine)",
            )
        ) from None
    except yaml.YAMLError as exc:
        raise YamlError(InputError(file, 1, 1, f"invalid YAML: {exc}")) from None
    except RecursionError:
        raise YamlError(
            InputError(file, 1, 1, "document is nested too deeply", "", f"at most {MAX_DEPTH}")
        ) from None
    if root is None:
        raise YamlError(InputError(file, 1, 1, "file is empty", "$", "a YAML mapping"))
    builder = _Builder(source)
    value = builder.build(root, (), 0)
    return value, source


class _Builder:
    def __init__(self, source: SourceMap) -> None:
        self.source = source
        self.count = 0
        # Alias accounting: collections built so far (an alias is the same node again), the
        # values repeated through aliases, and each aliased collection's expanded size.
        self.built: set[int] = set()
        self.aliased = 0
        self.sizes: dict[int, int] = {}
        self.replaying = 0  # > 0 while building a repeated collection (counted as a whole)

    def fail(self, node: yaml.Node, path: Path, message: str, expected: str = "") -> YamlError:
        mark = node.start_mark
        return YamlError(
            InputError(
                self.source.file,
                mark.line + 1,
                mark.column + 1,
                message,
                json_path(path),
                expected,
            )
        )

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.fail(
                node,
                path,
                "document expands to too many values (an alias bomb?)",
                f"at most {MAX_VALUES:,} values",
            )
        if depth > MAX_DEPTH:
            raise self.fail(node, path, "document is nested too deeply", f"at most {MAX_DEPTH}")
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if self.repeat(node, path):
                self.replaying += 1
                try:
                    return self.build(node, path, depth)
                finally:
                    self.replaying -= 1
            plain_tag = _TAG + ("map" if isinstance(node, yaml.MappingNode) else "seq")
            if node.tag != plain_tag:
                raise self.fail(node, path, f"unsupported YAML tag {node.tag}", "plain mappings and lists")
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                item_path = (*path, index)
                self.source.positions[item_path] = (
                    item.start_mark.line + 1,
                    item.start_mark.column + 1,
                )
                items.append(self.build(item, item_path, depth + 1))
            return items
        assert isinstance(node, yaml.ScalarNode)
        return self.scalar(node, path)

    def repeat(self, node: yaml.Node, path: Path) -> bool:
        """Whether ``node`` is a collection built again through an alias (its whole expansion is
        counted here, once, aliases inside it included); refuse an alias bomb."""
        if self.replaying:
            return False
        if id(node) not in self.built:
            self.built.add(id(node))
            return False
        self.aliased += self.expansion(node, 0)
        if self.aliased > MAX_ALIAS_VALUES:
            # A list item's recorded position is the anchor's (the node is shared): point at the list.
            where = path[:-1] if path and isinstance(path[-1], int) else path
            line, column = self.source.locate(where)
            raise YamlError(
                InputError(
                    self.source.file,
                    line,
                    column,
                    f"aliases expand the document to too many values (an alias bomb?): the anchor "
                    f"on line {node.start_mark.line + 1} is repeated here",
                    json_path(path),
                    f"at most {MAX_ALIAS_VALUES:,} values repeated through aliases",
                )
            )
        return True

    def expansion(self, node: yaml.Node, depth: int) -> int:
        """How many values ``node`` expands to, counting every alias in full (memoised)."""
        known = self.sizes.get(id(node))
        if known is not None:
            return known
        if depth > MAX_DEPTH:  # as deep as the builder goes; deeper is an error there
            return MAX_ALIAS_VALUES + 1
        self.sizes[id(node)] = MAX_ALIAS_VALUES + 1  # a node that contains itself is endless
        size = 1
        if isinstance(node, yaml.MappingNode):
            size += sum(self.expansion(value, depth + 1) for _, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            size += sum(self.expansion(item, depth + 1) for item in node.value)
        self.sizes[id(node)] = size
        return size

    def mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                merged.update(self.merge_source(value_node, path, depth))
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _TAG + "str":
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "a collection"
                raise self.fail(
                    key_node,
                    path,
                    f"mapping key {shown!r} is not a string",
                    "string keys (quote it)",
                )
            key = _shared(key_node.value)
            if key in out:
                first = self.source.positions.get((*path, key), (0, 0))[0]
                raise self.fail(
                    key_node,
                    (*path, key),
                    f"duplicate key {key!r} (first defined on line {first})",
                    "each key once per mapping",
                )
            child = (*path, key)
            self.source.positions[child] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
            out[key] = self.build(value_node, child, depth + 1)
        for key, value in merged.items():
            out.setdefault(key, value)
        return out

    def merge_source(self, node: yaml.Node, path: Path, depth: int) -> dict[str, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise self.fail(source, path, "a merge key (<<) needs a mapping", "a mapping alias")
            replay = self.repeat(source, path)
            self.replaying += replay
            try:
                for key, value in self.mapping(source, path, depth).items():
                    merged.setdefault(key, value)
            finally:
                self.replaying -= replay
        return merged

    def scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        tag = node.tag
        if self.source.track_values:
            mark = node.start_mark
            style = getattr(node, "style", None) or ""
            self.source.values[path] = (mark.line + 1, mark.column + 1, style)
        if tag == _TAG + "str":
            return _shared(node.value)
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "bool":
            return _SCALARS.construct_yaml_bool(node)
        if tag == _TAG + "int":
            try:
                number = _SCALARS.construct_yaml_int(node)
            except ValueError:  # more digits than Python converts
                number = None
            if number is None or not INT_MIN <= number <= INT_MAX:
                shown = node.value if len(node.value) <= 30 else node.value[:27] + "..."
                raise self.fail(node, path, f"integer {shown} is out of range", "a 64-bit integer")
            return number
        if tag == _TAG + "float":
            return _SCALARS.construct_yaml_float(node)
        if tag == _TAG + "timestamp":
            # Kept as written: the schema checks the zone, and CEL parses RFC 3339 strings.
            return node.value
        raise self.fail(node, path, f"unsupported YAML tag {tag}", "plain strings, numbers, booleans")


# Keys and short values repeat across thousands of files ("stage", "production", a region, a
# team): one shared object each instead of one per occurrence (marshal keeps the sharing in
# the parse cache). Long strings are mostly unique (digests, descriptions): left alone.
SHARED_UP_TO = 40  # characters


def _shared(text: str) -> str:
    return sys.intern(text) if len(text) <= SHARED_UP_TO else text


class _PlainLoader(_Loader):
    """Safe loading without positions; timestamps stay the strings written, as in ``parse``."""

    _tags: ClassVar[dict[tuple[str, tuple[bool, bool]], str]] = {}  # its resolvers differ: own memo

    yaml_implicit_resolvers: ClassVar[dict[Any, Any]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TAG + "timestamp"]
        for first, resolvers in _Loader.yaml_implicit_resolvers.items()
    }


def load_plain(raw: bytes) -> Any:
    """Plain values of one document, or None when it is not valid YAML.

    For scanning many historical blobs (history, sign-off attribution) where only a few fields
    are read and nothing is reported against positions; files that are evaluated go through
    ``parse``.
    """
    try:
        return yaml.load(raw, Loader=_PlainLoader)
    except (yaml.YAMLError, RecursionError, UnicodeDecodeError):
        return None
