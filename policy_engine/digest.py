"""The content digest a sign-off binds to.

``sha256:`` + hex of the canonical JSON (sorted keys, ``,``/``:`` separators, UTF-8) of the
version entry as authored after normalisation (durations in hours, timestamps in ``Z``),
without ``signoffs``, defaults or derived fields. Any edit to the entry changes it.
"""

from __future__ import annotations

import hashlib
import json

from policy_engine.models.portfolio import Version


def canonical_json(version: Version) -> str:
    data = version.model_dump(mode="json", exclude_unset=True, exclude={"signoffs"}, by_alias=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def version_digest(version: Version) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(version).encode("utf-8")).hexdigest()
