"""A model file's facts (``filefacts``) remembered by its content, in the parse cache.

On 10,000 versions, validating the files again took about 0.6 s of a run that had every parse
cached, and converting them to CEL data (with digests and positions) about 0.8 s more; a file
that has not changed since the last run gives the same facts. An entry is keyed by the file's
content key and by a fingerprint of the code that defines a valid file and its facts (this
package's models and conversions, and pydantic's version), so it is never stale; a summary is
only stored for a file that validated, which is what lets ``loading`` skip validating a file
whose summary it finds. Deleting the cache only costs the time again.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from policy_engine import digest, filefacts, parsecache
from policy_engine.filefacts import FileSummary, Material, Position
from policy_engine.models import portfolio, types

if TYPE_CHECKING:
    from policy_engine.loading import ModelEntry

_SUMMARY = "model-summary:1"
_MATERIAL = "model-material:1"
_TRAFFIC = "model-traffic-positions:1"


def known_summary(content_key: str) -> FileSummary | None:
    """The summary of a file with this content, if a run has validated one."""
    if not content_key:
        return None
    found = parsecache.lookup(_key(content_key, _SUMMARY))
    return filefacts.summary_from_plain(found) if found is not None else None


def remember_summary(content_key: str, summary: FileSummary) -> None:
    """Called only for a file that validated."""
    if content_key:
        parsecache.store(_key(content_key, _SUMMARY), filefacts.summary_to_plain(summary))


def known_traffic_positions(content_key: str, summary: FileSummary) -> list[list[Position]] | None:
    """Where each deployment's traffic is in a file with this content, if a run has noted it
    (``cached_material`` does, where the file's positions are decoded anyway)."""
    if not content_key:
        return None
    found = parsecache.lookup(_key(content_key, _TRAFFIC))
    return filefacts.traffic_positions_from_plain(found, summary) if found is not None else None


def cached_material(entry: ModelEntry) -> Material:
    """The entry's material, remembered by its content (``targets.build_targets(materials=)``)."""
    from policy_engine.targets import computed_material  # targets imports loading, which imports this

    if not entry.key:
        return computed_material(entry)
    key = _key(entry.key, _MATERIAL)
    found = parsecache.lookup(key)
    material = filefacts.material_from_plain(found) if found is not None else None
    if material is None or len(material.versions) != len(entry.summary.versions):
        material = computed_material(entry)
        parsecache.store(key, filefacts.material_to_plain(material))
    traffic = _key(entry.key, _TRAFFIC)
    if not parsecache.contains(traffic):
        parsecache.store(traffic, filefacts.traffic_positions(entry.source, entry.summary))
    return material


def _key(content_key: str, mode: str) -> str:
    return parsecache.key(content_key.encode(), mode + _code())


@cache
def _code() -> str:
    """A fingerprint of what a file's facts depend on: the modules that define them and the
    validating library's version."""
    import pydantic
    import pydantic_core

    from policy_engine import targets, yamlsource
    from policy_engine.residency import join

    modules = (digest, filefacts, portfolio, types, targets, yamlsource, join)
    return parsecache.code_fingerprint(modules, f"{pydantic.VERSION}/{pydantic_core.__version__}")
