"""The exception ledger and per-context enforcement, end to end through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

PORTFOLIO = """\
schema_version: 1
kind: InferencePortfolio
portfolio: {id: t, name: Test portfolio, currency: USD}
teams:
  - {id: plat, function: platform, cost_center: CC-1}
  - {id: fin, function: finance, cost_center: CC-9}
  - {id: ml, function: ml, cost_center: CC-5}
roster:
  - {login: pat, name: Pat, team: plat, roles: [platform], limits: {approve_monthly_delta: 5000}}
  - {login: fay, name: Fay, team: fin, roles: [finance], limits: {approve_monthly_delta: 50000}}
  - {login: mo, name: Mo, team: ml, roles: [ml]}
rates: {gpu_hour: {nvidia-l4: 0.71}, overhead_per_replica_hour: 0.09}
"""

MODEL = """\
id: clf
owner_team: ml
versions:
  - version: "1"
    stage: retired
    deployments: []
  - version: "2"
    stage: canary
    canary: {of_version: "1", started_at: "2025-05-01T00:00:00Z", max_duration: "336h", traffic_percent: 10}
    deployments:
      - id: clf-v2
        endpoint: clf
        region: us-east-1
        traffic_percent: 10
        replicas: {min: 1, max: 2}
        accelerator: {type: nvidia-l4, count: 1}
        owner_team: ml
        cost_center: CC-5
        selectors: {k8s_labels: {portfolio.acme.io/deployment: clf-v2}}
"""

AS_OF = "2025-06-30T00:00:00Z"


def exception(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "EXC-1",
        "policy": "canary.max-duration",
        "target": "clf@2",
        "reason": "Decision meeting moved to July",
        "ticket": "OPS-1",
        "created_at": "2025-06-20T00:00:00Z",
        "expires_at": "2025-07-15T00:00:00Z",
        "signoffs": [
            {"role": "platform", "by": "pat", "at": "2025-06-20T00:00:00Z"},
            {"role": "finance", "by": "fay", "at": "2025-06-20T01:00:00Z"},
        ],
    }
    base.update(fields)
    return base


def make_portfolio(root: Path, exceptions: list[dict[str, Any]], config: str | None = None) -> Path:
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "portfolio.yaml").write_text(PORTFOLIO)
    (root / "models" / "clf.yaml").write_text(MODEL)
    (root / "exceptions.yaml").write_text(json.dumps({"exceptions": exceptions}, indent=2))
    if config is not None:
        (root / ".policy-engine.yaml").write_text(textwrap.dedent(config))
    return root


REPO = Path(__file__).resolve().parents[2]
# The ledger is tested with the policies it concerns only, so the rest of the pack can evolve.
POLICIES = ("canary.max-duration", "exception.valid", "exception.hygiene", "signoff.expiry")


def policy_dir(root: Path) -> Path:
    directory = root.parent / f"{root.name}-policies"
    directory.mkdir(exist_ok=True)
    for name in POLICIES:
        shutil.copy(REPO / "policies" / f"{name}.yaml", directory)
    return directory


def run(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_") and k != "PRE_COMMIT"}
    environment.update(env or {})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "policy_engine",
            "check",
            str(root),
            "--format",
            "json",
            "--no-builtin",
            "--policies",
            str(policy_dir(root)),
            *args,
        ],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, report, result.stderr


def findings(report: dict[str, Any], policy: str, target: str | None = None) -> list[dict[str, Any]]:
    return [
        f
        for f in report["findings"]
        if f["policy_id"] == policy and (target is None or f["target"] == target)
    ]


def test_active_exception_waives_with_its_id(tmp_path: Path) -> None:
    code, report, _ = run(make_portfolio(tmp_path, [exception()]), "--as-of", AS_OF)
    [waived] = findings(report, "canary.max-duration", "clf@2")
    assert waived["status"] == "waived"
    assert waived["exception_id"] == "EXC-1"
    assert waived["blocking"] is False
    assert code == 0
    assert not [f for f in report["findings"] if f["policy_id"].startswith("exception.")]


@pytest.mark.parametrize(
    ("as_of", "waived"),
    [
        ("2025-06-19T23:59:59Z", False),  # before created_at
        ("2025-06-20T00:00:00Z", True),  # the first instant of the window
        ("2025-07-14T23:59:59Z", True),  # the last second before expiry
        ("2025-07-15T00:00:00Z", False),  # at expires_at it has lapsed (half-open window)
    ],
)
def test_expiry_boundaries(tmp_path: Path, as_of: str, waived: bool) -> None:
    code, report, _ = run(make_portfolio(tmp_path, [exception()]), "--as-of", as_of)
    [finding] = findings(report, "canary.max-duration", "clf@2")
    assert finding["status"] == ("waived" if waived else "fail")
    assert code == (0 if waived else 1)


def test_expired_exception_is_itself_a_finding(tmp_path: Path) -> None:
    _, report, _ = run(make_portfolio(tmp_path, [exception()]), "--as-of", "2025-07-15T00:00:00Z")
    hygiene = findings(report, "exception.hygiene", "exception:EXC-1")
    assert [f["validation"] for f in hygiene] == ["not-expired"]
    assert "expired 2025-07-15 00:00 UTC" in hygiene[0]["message"]


def test_expiring_soon_warns(tmp_path: Path) -> None:
    _, report, _ = run(make_portfolio(tmp_path, [exception()]), "--as-of", "2025-07-05T00:00:00Z")
    [warning] = findings(report, "exception.hygiene", "exception:EXC-1")
    assert warning["validation"] == "not-expiring-soon"
    assert warning["severity"] == "warning"
    assert "in 10 days" in warning["message"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"signoffs": [{"role": "platform", "by": "pat", "at": "2025-06-20T00:00:00Z"}]},
            "no approval from finance",
        ),
        (
            {
                "signoffs": [
                    {"role": "platform", "by": "pat", "at": "2025-06-20T00:00:00Z"},
                    {"role": "finance", "by": "eve", "at": "2025-06-20T00:00:00Z"},
                ]
            },
            "approver eve is not in the roster",
        ),
        (
            {
                "signoffs": [
                    {"role": "platform", "by": "pat", "at": "2025-06-20T00:00:00Z"},
                    {"role": "finance", "by": "mo", "at": "2025-06-20T00:00:00Z"},
                ]
            },
            "approver mo does not hold the finance role",
        ),
        ({"expires_at": "2025-09-20T00:00:00Z"}, "lifetime 92 days exceeds the 90-day maximum for error"),
        ({"policy": "canary.max-durration"}, "policy 'canary.max-durration' is not loaded"),
    ],
)
def test_invalid_exception_waives_nothing(tmp_path: Path, change: dict[str, Any], problem: str) -> None:
    code, report, _ = run(make_portfolio(tmp_path, [exception(**change)]), "--as-of", AS_OF)
    [finding] = findings(report, "canary.max-duration", "clf@2")
    assert finding["status"] == "fail"
    assert finding["blocking"] is True
    [ledger] = findings(report, "exception.valid", "exception:EXC-1")
    assert problem in ledger["message"]
    assert ledger["location"]["file"] == "exceptions.yaml"
    assert code == 1


def test_hard_policy_cannot_be_waived(tmp_path: Path) -> None:
    config = """\
    policies:
      overrides:
        canary.max-duration:
          enforcement: {audit: hard}
    """
    code, report, _ = run(make_portfolio(tmp_path, [exception()], config), "--as-of", AS_OF)
    [finding] = findings(report, "canary.max-duration", "clf@2")
    assert (finding["status"], finding["enforcement"], finding["blocking"]) == ("fail", "hard", True)
    [ledger] = findings(report, "exception.valid", "exception:EXC-1")
    assert "hard-enforced here and cannot be waived" in ledger["message"]
    assert code == 1


def test_stale_exception_is_reported(tmp_path: Path) -> None:
    stale = exception(id="EXC-2", target="clf@1")  # clf@1 is retired: nothing to waive
    _, report, _ = run(make_portfolio(tmp_path, [exception(), stale]), "--as-of", AS_OF)
    [used] = findings(report, "exception.hygiene", "exception:EXC-2")
    assert used["validation"] == "used"
    assert "waived nothing" in used["message"]
    assert not findings(report, "exception.hygiene", "exception:EXC-1")


def test_cel_match_exception(tmp_path: Path) -> None:
    matched = exception(target=None, match="version.stage == 'canary' && model.id == 'clf'")
    code, report, _ = run(make_portfolio(tmp_path, [matched]), "--as-of", AS_OF)
    [finding] = findings(report, "canary.max-duration", "clf@2")
    assert finding["status"] == "waived"
    assert code == 0


def test_cel_match_compile_error_is_located(tmp_path: Path) -> None:
    broken = exception(target=None, match="version.stage ==")
    code, _, stderr = run(make_portfolio(tmp_path, [broken]), "--as-of", AS_OF)
    assert code == 2
    assert "exceptions.yaml:" in stderr
    assert "CEL:" in stderr
    assert "[$.exceptions[0].match]" in stderr


def test_enforcement_per_context(tmp_path: Path) -> None:
    config = """\
    policies:
      overrides:
        canary.max-duration:
          enforcement: {pre-commit: advisory}
    """
    root = make_portfolio(tmp_path, [], config)
    code, report, _ = run(root, "--as-of", AS_OF, "--context", "pre-commit")
    [finding] = findings(report, "canary.max-duration", "clf@2")
    assert (finding["enforcement"], finding["blocking"], code) == ("advisory", False, 0)
    code, report, _ = run(root, "--as-of", AS_OF, env={"PRE_COMMIT": "1"})
    assert report["context"] == "pre-commit"
    assert code == 0
    code, report, _ = run(root, "--as-of", AS_OF, env={"GITHUB_ACTIONS": "true"})
    assert report["context"] == "pull-request"
    assert code == 1


def test_overrides_are_listed_and_can_be_forbidden(tmp_path: Path) -> None:
    config = """\
    policies:
      disable: [signoff.expiry]
      overrides:
        canary.max-duration:
          severity: warning
          params: {max_days: 30}
    """
    root = make_portfolio(tmp_path, [], config)
    code, report, _ = run(root, "--as-of", AS_OF)
    settings = {(o["policy_id"], o["setting"]): (o["default"], o["value"]) for o in report["overrides"]}
    assert settings[("canary.max-duration", "severity")] == ("error", "warning")
    assert settings[("canary.max-duration", "params.max_days")] == (14.0, 30.0)
    assert settings[("signoff.expiry", "enabled")] == (True, False)
    assert "signoff.expiry" not in {p["id"] for p in report["policies"]}
    [finding] = findings(report, "canary.max-duration", "clf@2")
    assert finding["severity"] == "warning"
    assert code == 0  # a warning does not block with --fail-on error

    code, _, stderr = run(root, "--as-of", AS_OF, "--disallow-overrides")
    assert code == 2
    assert ".policy-engine.yaml:2:" in stderr
    assert "not allowed (--disallow-overrides)" in stderr
    assert "Traceback" not in stderr


def test_unknown_policy_in_config_gets_a_hint(tmp_path: Path) -> None:
    root = make_portfolio(tmp_path, [], "policies:\n  disable: [canary.max-durations]\n")
    code, _, stderr = run(root, "--as-of", AS_OF)
    assert code == 2
    assert ".policy-engine.yaml:2:" in stderr
    assert "did you mean 'canary.max-duration'?" in stderr
