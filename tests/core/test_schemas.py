"""The committed JSON Schemas: current, valid, and in agreement with the loader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from policy_engine import schema
from policy_engine.yamlsource import parse

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = REPO_ROOT / "schemas"
EXAMPLE = REPO_ROOT / "examples" / "acme-portfolio"


def validator(name: str) -> jsonschema.protocols.Validator:
    document = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(document)
    result: jsonschema.protocols.Validator = cls(document)
    return result


def load_yaml(path: Path) -> Any:
    data, _ = parse(path.read_text(encoding="utf-8"), path.name)
    return data


def test_committed_schemas_are_current(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    assert schema.stale(Path("schemas")) == [], "run `policy-engine schema --write` and commit schemas/"


def test_schema_check_command_agrees(run_cli: Any) -> None:
    code, _, stderr = run_cli("schema", "--check", cwd=REPO_ROOT)
    assert code == 0, stderr
    assert stderr == ""


def test_no_orphan_schema_files() -> None:
    committed = {p.name for p in SCHEMAS.glob("*.schema.json")}
    assert committed == set(schema.generate())


def test_stale_detects_drift_and_missing_files(tmp_path: Path) -> None:
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, copy)
    baseline = set(schema.stale(copy))  # empty when the committed schemas are current
    (copy / "model.schema.json").write_text("{}\n", encoding="utf-8")
    (copy / "report.schema.json").unlink()
    assert set(schema.stale(copy)) == baseline | {"model.schema.json", "report.schema.json"}


@pytest.mark.parametrize("name", sorted(p.name for p in SCHEMAS.glob("*.schema.json")))
def test_every_schema_is_a_valid_json_schema(name: str) -> None:
    document = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"].endswith(f"/{name}")
    jsonschema.validators.validator_for(document).check_schema(document)


def test_example_portfolio_validates_against_the_published_schemas() -> None:
    validator("portfolio").validate(load_yaml(EXAMPLE / "portfolio.yaml"))
    validator("exceptions").validate(load_yaml(EXAMPLE / "exceptions.yaml"))
    models = sorted((EXAMPLE / "models").glob("*.yaml"))
    assert models
    for path in models:
        validator("model").validate(load_yaml(path))


def test_builtin_policies_validate_against_the_policy_schema() -> None:
    policies = sorted((REPO_ROOT / "policies").glob("*.yaml"))
    assert policies
    for path in policies:
        validator("policy").validate(load_yaml(path))


def test_schemas_reject_unknown_fields_like_the_loader() -> None:
    model = load_yaml(EXAMPLE / "models" / "doc-summarizer.yaml")
    model["owner_tem"] = "ml"
    errors = list(validator("model").iter_errors(model))
    assert any("owner_tem" in error.message for error in errors)
