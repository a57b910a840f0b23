"""Reporters: one module per output format, each a pure function of the ``Report``.

The registry maps a format name to ``module:function``; a module is imported only when its
format is asked for, so the pre-commit path never pays for SARIF or JUnit.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator

from policy_engine.errors import UsageError
from policy_engine.models.report import Report

# A report as one string, or as pieces to write one after another (a very large report):
# strings, or bytes already encoded as UTF-8.
Rendered = str | Iterator[str] | Iterator[bytes]
Renderer = Callable[[Report], Rendered]

REPORTERS: dict[str, str] = {
    "text": "policy_engine.reporters.text:render",
    "json": "policy_engine.reporters.json_:render",
    "sarif": "policy_engine.reporters.sarif:render",
    "junit": "policy_engine.reporters.junit:render",
    "github": "policy_engine.reporters.github:render",
    "markdown": "policy_engine.reporters.markdown:render",
}


def get(name: str) -> Renderer:
    target = REPORTERS.get(name)
    if target is None:
        raise UsageError(f"unknown format {name!r}; choose from {', '.join(REPORTERS)}")
    module, function = target.split(":")
    renderer: Renderer = getattr(importlib.import_module(module), function)
    return renderer
