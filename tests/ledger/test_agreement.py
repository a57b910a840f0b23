"""check, test and audit agree on whether an exception applies, at the boundary instant."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .test_exceptions import exception, make_portfolio, policy_dir

PERIOD_END = "2025-07-01T00:00:00Z"  # the first instant after 2025Q2: the audit's as-of


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_") and k != "PRE_COMMIT"}
    return subprocess.run(
        [sys.executable, "-m", "policy_engine", *args], capture_output=True, text=True, env=env, check=False
    )


@pytest.mark.parametrize(("expires_at", "applies"), [(PERIOD_END, False), ("2025-07-01T00:00:01Z", True)])
def test_check_test_and_audit_agree(tmp_path: Path, expires_at: str, applies: bool) -> None:
    root = make_portfolio(tmp_path / "portfolio", [exception(expires_at=expires_at)])
    policies = policy_dir(root)
    common = ("--no-builtin", "--policies", str(policies))

    checked = cli("check", str(root), "--as-of", PERIOD_END, "--format", "json", *common)
    [finding] = [f for f in json.loads(checked.stdout)["findings"] if f["policy_id"] == "canary.max-duration"]
    assert finding["status"] == ("waived" if applies else "fail")

    suite = policies / "agreement.test.yaml"  # beside the policies under test
    suite.write_text(
        json.dumps(
            {
                "apiVersion": "policy-engine/v1",
                "kind": "PolicyTest",
                "fixture": str(root),
                "as_of": PERIOD_END,
                "cases": [
                    {
                        "name": "the exception at the period end",
                        "expect": [
                            {
                                "policy": "canary.max-duration",
                                "target": "clf@2",
                                "status": "waived" if applies else "fail",
                            }
                        ],
                    }
                ],
            }
        )
    )
    tested = cli("test", str(policies), "--no-builtin")
    assert tested.returncode == 0, tested.stdout + tested.stderr

    audited = cli("audit", str(root), "--quarter", "2025Q2", "--working-tree", "--format", "json", *common)
    assert audited.returncode in (0, 1), audited.stderr
    report: dict[str, Any] = json.loads(audited.stdout)
    [state] = report["governance"]["exceptions"]
    assert (state["state"] in ("active", "expiring")) is applies
    assert state["waived"] == (1 if applies else 0)
