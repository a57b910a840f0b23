"""JSON Schemas generated from the models; committed under ``schemas/`` and drift-checked."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

# name -> "module:Model"; each becomes schemas/<name>.schema.json
SCHEMAS: dict[str, str] = {
    "portfolio": "policy_engine.models.portfolio:PortfolioFile",
    "model": "policy_engine.models.portfolio:ModelFile",
    "exceptions": "policy_engine.models.portfolio:ExceptionsFile",
    "config": "policy_engine.models.config:ConfigFile",
    "policy": "policy_engine.models.policy:PolicyFile",
    "report": "policy_engine.models.report:Report",
    "audit": "policy_engine.audit.model:AuditReport",
}
_OPTIONAL: dict[str, str] = {
    "residency": "policy_engine.residency.records:ResidencyRecord",
}


def _models() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for name, target in {**SCHEMAS, **_OPTIONAL}.items():
        module, attr = target.split(":")
        try:
            found[name] = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            if name in SCHEMAS:
                raise
    return found


def generate() -> dict[str, str]:
    """File name -> exact file text."""
    out = {}
    for name, model in sorted(_models().items()):
        schema: dict[str, Any] = model.model_json_schema(by_alias=True)
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://policy-engine.dev/schemas/{name}.schema.json",
            **schema,
        }
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def stale(directory: Path) -> list[str]:
    """Schema files that are missing or differ from what the models generate."""
    return [
        name
        for name, text in generate().items()
        if not (directory / name).is_file() or (directory / name).read_text(encoding="utf-8") != text
    ]


def write(directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generate().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(name)
    return written
