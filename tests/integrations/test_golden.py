"""Golden outputs: every reporter on the example portfolio at its fixed as-of, byte for byte.

Each golden file is the exact stdout of

    policy-engine check examples/acme-portfolio --as-of 2025-06-30T00:00:00Z --context audit --format X

run from the repository root. When the example, the built-in policies or a reporter change on
purpose, regenerate them all and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/integrations/test_golden.py
"""

from __future__ import annotations

import difflib
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from tests.integrations.conftest import EXAMPLE_AS_OF, REPO_ROOT, run_cli, validate_sarif

GOLDEN = Path(__file__).resolve().parent / "golden"
GOLDEN_FILES = {
    "text": "acme.txt",
    "json": "acme.json",
    "sarif": "acme.sarif",
    "junit": "acme.junit.xml",
    "github": "acme.github",
    "markdown": "acme.md",
}
REGENERATE = "UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/integrations/test_golden.py"
COMMAND = ("check", "examples/acme-portfolio", "--as-of", EXAMPLE_AS_OF, "--context", "audit")


def _render(fmt: str) -> bytes:
    result = run_cli(*COMMAND, "--format", fmt)
    assert result.returncode == 1, (
        f"expected exit 1 (the example blocks on purpose), got {result.returncode}\n"
        + result.stderr.decode("utf-8", "replace")
    )
    assert result.stdout, "the report is empty"
    return result.stdout


def _diff(expected: bytes, actual: bytes, name: str) -> str:
    lines = difflib.unified_diff(
        expected.decode("utf-8", "replace").splitlines(keepends=True),
        actual.decode("utf-8", "replace").splitlines(keepends=True),
        fromfile=f"golden/{name}",
        tofile="policy-engine output",
        n=2,
    )
    text = "".join(lines)
    return text if len(text) < 6000 else text[:6000] + "\n… (diff truncated)\n"


@pytest.mark.parametrize("fmt", list(GOLDEN_FILES))
def test_output_matches_golden_file(fmt: str) -> None:
    name = GOLDEN_FILES[fmt]
    golden = GOLDEN / name
    actual = _render(fmt)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        golden.write_bytes(actual)
        return
    assert golden.is_file(), f"golden/{name} is missing; create it with:\n    {REGENERATE}"
    expected = golden.read_bytes()
    if actual != expected:
        pytest.fail(
            f"`policy-engine {' '.join(COMMAND)} --format {fmt}` no longer matches golden/{name}.\n"
            f"If the change is intended (example, policies or reporter), regenerate and review:\n"
            f"    {REGENERATE}\n\n{_diff(expected, actual, name)}",
            pytrace=False,
        )


def test_every_format_has_a_golden_file() -> None:
    from policy_engine.reporters import REPORTERS

    assert set(GOLDEN_FILES) == set(REPORTERS)


def test_same_inputs_give_byte_identical_output() -> None:
    assert _render("json") == _render("json")


def test_golden_json_is_valid_against_the_report_schema() -> None:
    report = json.loads((GOLDEN / GOLDEN_FILES["json"]).read_text(encoding="utf-8"))
    schema = json.loads((REPO_ROOT / "schemas" / "report.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(report, schema)
    assert report["as_of"] == EXAMPLE_AS_OF
    assert report["context"] == "audit"
    assert report["summary"]["exit_code"] == 1


def test_golden_sarif_is_valid_sarif_2_1_0() -> None:
    validate_sarif(json.loads((GOLDEN / GOLDEN_FILES["sarif"]).read_text(encoding="utf-8")))


def test_golden_junit_is_well_formed() -> None:
    root = ET.fromstring((GOLDEN / GOLDEN_FILES["junit"]).read_bytes())
    assert root.tag in ("testsuites", "testsuite")
