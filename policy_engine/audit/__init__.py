"""The quarterly portfolio review (``policy-engine audit``).

``quarters`` names the period, ``collect`` reads everything (the only I/O), ``sections``
computes the review as one ``model.AuditReport``, and each renderer is a pure function of it,
registered in ``RENDERERS`` and imported only when its format is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from policy_engine.audit.model import AuditReport

RENDERERS: dict[str, str] = {
    "markdown": "policy_engine.audit.render_markdown:render",
    "html": "policy_engine.audit.render_html:render",
    "json": "policy_engine.audit.render_json:render",
}


def renderer(name: str) -> Callable[[AuditReport], str]:
    module, function = RENDERERS[name].split(":")
    found: Callable[[AuditReport], str] = getattr(importlib.import_module(module), function)
    return found
