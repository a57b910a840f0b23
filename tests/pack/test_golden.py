"""The example portfolio's full JSON report (passes and skips included), byte for byte.

Regenerate after an intended change to the example, the pack or the report, and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/pack/test_golden.py
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

AS_OF = "2025-06-30T00:00:00Z"
CliRunner = Callable[..., Any]
GOLDEN = Path(__file__).resolve().parent / "golden" / "acme-findings.json"
COMMAND = ("check", "examples/acme-portfolio", "--as-of", AS_OF, "--format", "json", "--all")


def test_acme_findings_match_the_golden_file(run_cli: CliRunner) -> None:
    code, stdout, stderr = run_cli(*COMMAND)
    assert code == 1, stderr
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(stdout, encoding="utf-8")
    assert GOLDEN.is_file(), "no golden file; run with UPDATE_GOLDEN=1"
    assert stdout == GOLDEN.read_text(encoding="utf-8"), (
        "the JSON report changed; if intended: UPDATE_GOLDEN=1 .venv/bin/python -m pytest "
        "tests/pack/test_golden.py and review the diff"
    )


def test_the_example_exercises_every_policy_family(run_cli: CliRunner) -> None:
    """Every family yields findings on the example (cost authority only in pull requests)."""
    _, stdout, _ = run_cli(*COMMAND)
    report = json.loads(stdout)
    statuses: dict[str, Counter[str]] = {}
    for finding in report["findings"]:
        statuses.setdefault(finding["policy_id"], Counter())[finding["status"]] += 1
    evaluated = {p for p, c in statuses.items() if c["pass"] + c["fail"] + c["waived"] > 0}
    for family in (
        "canary.",
        "shadow.",
        "fallback.",
        "production.entry.",
        "signoff.",
        "exit.",
        "attribution.",
        "endpoint.",
    ):
        assert any(p.startswith(family) for p in evaluated), family
    failing = {p for p, c in statuses.items() if c["fail"] + c["waived"] > 0}
    for policy_id in (
        "canary.max-duration",
        "fallback.retention",
        "production.entry.four-signoffs",
        "signoff.expiry",
        "exit.deprecated-retire-by",
        "attribution.completeness",
    ):
        assert policy_id in failing, policy_id
    assert statuses["cost.authority-tier"]["skip"] > 0
    assert set(statuses["cost.authority-tier"]) == {"skip"}
