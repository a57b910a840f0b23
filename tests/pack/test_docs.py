"""docs/policies.md is generated from the pack and its tests, and is committed current."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy_engine.commands.docs import generate, run_docs
from policy_engine.policies import builtin_source, load_policies

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs" / "policies.md"


def test_docs_policies_md_is_current() -> None:
    assert DOCS.is_file(), "docs/policies.md is missing; run `policy-engine docs`"
    assert DOCS.read_text(encoding="utf-8") == generate(), (
        "docs/policies.md is stale; run `policy-engine docs` (or "
        "`.venv/bin/python -c 'from pathlib import Path; from policy_engine.commands.docs import "
        'run_docs; run_docs(False, Path("docs/policies.md"))\'`)'
    )


def test_every_policy_has_a_section_with_what_passes_and_fails() -> None:
    text = generate()
    for policy in load_policies([builtin_source()]):
        section = text.split(f"\n## {policy.id}\n", 1)[1].split("\n## ", 1)[0]
        for heading in ("### Intent", "### Parameters", "### Checks", "### What passes", "### What fails"):
            assert heading in section, (policy.id, heading)
        assert "No test asserts" not in section, policy.id


def test_run_docs_writes_then_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "docs" / "policies.md"
    assert run_docs(True, output) == 1
    assert "stale" in capsys.readouterr().err
    assert run_docs(False, output) == 0
    assert output.read_text(encoding="utf-8") == generate()
    assert run_docs(True, output) == 0
    output.write_text(generate() + "edited\n", encoding="utf-8")
    assert run_docs(True, output) == 1
