"""Real git repositories for pull-request mode, history and sign-off verification tests.

Every commit pins author, committer and both dates, so shas and history facts are the same on
every run. The portfolio lives in ``port/`` inside the repository (not at its root), so paths
relative to the repository and to the portfolio are both exercised.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from policy_engine.digest import version_digest
from policy_engine.models.portfolio import Version

REPO_ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2025-05-20T00:00:00Z"
T0 = "2025-05-01T00:00:00Z"  # the base's first commit; rank@2 became a canary then
PORT = "port"

# login -> (name, email, role)
PEOPLE = {
    "pat": ("Pat Platform", "pat@example.com", "platform"),
    "mel": ("Mel Learning", "mel@example.com", "ml"),
    "ann": ("Ann App", "ann@example.com", "app"),
    "fin": ("Fin Ance", "fin@example.com", "finance"),
}
EVE = ("Eve Outsider", "eve@example.com")
ROLES = {login: role for login, (_, _, role) in PEOPLE.items()}

# The built-in policies these tests rely on, plus a probe that shows the git-derived facts.
PACK = (
    "production.entry.four-signoffs",
    "canary.max-duration",
    "governance.rules-changed",
    "signoff.verified",
)
CLOCK_POLICIES = ("canary.clock-drift", "canary.declared-start")
PROBE = """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: probe.facts, severity: info}
spec:
  scope: version
  requires: [change]
  variables:
    - {name: kind, expression: change.kind}
    - {name: from_stage, expression: change.from_stage}
    - {name: to_stage, expression: change.to_stage}
    - {name: delta, expression: change.monthly_delta}
    - {name: old_stage, expression: "has(old.stage) ? old.stage : '-'"}
    - {name: first_seen, expression: "has(history.first_seen) ? history.first_seen : '-'"}
    - {name: stage_since, expression: "has(history.stage_since) ? history.stage_since : '-'"}
  validations:
    - {expression: "false", message: facts}
  enforcement: {pre-commit: advisory, pull-request: advisory, audit: advisory}
"""


def clock_policy() -> str:
    """The built-in policy that compares a canary's declared start with git history."""
    for name in CLOCK_POLICIES:
        if (REPO_ROOT / "policies" / f"{name}.yaml").is_file():
            return name
    raise AssertionError("no canary clock policy in the built-in pack")


# ---------------------------------------------------------------------------- documents


def portfolio_doc(*, extra_roster: list[dict[str, Any]] | None = None, max_days: int = 14) -> dict[str, Any]:
    roster = [
        {
            "login": login,
            "name": name,
            "email": email,
            "team": role,
            "roles": [role],
            "limits": {"approve_monthly_delta": 100000},
        }
        for login, (name, email, role) in PEOPLE.items()
    ]
    return {
        "schema_version": 1,
        "kind": "InferencePortfolio",
        "portfolio": {"id": "t", "name": "Test portfolio", "currency": "USD"},
        "teams": [{"id": r, "function": r, "cost_center": f"CC-{r}"} for r in ROLES.values()],
        "roster": roster + (extra_roster or []),
        "authority": {"rules_change_roles": ["platform", "finance"]},
        "rates": {"gpu_hour": {"nvidia-l4": 0.7}},
        "policy_params": {"canary.max-duration": {"max_days": max_days}},
    }


def deployment(deployment_id: str, replicas_min: int = 1) -> dict[str, Any]:
    return {
        "id": deployment_id,
        "endpoint": deployment_id.split("-")[0],
        "region": "us-east-1",
        "traffic_percent": 100,
        "replicas": {"min": replicas_min, "max": 4},
        "accelerator": {"type": "nvidia-l4", "count": 1},
    }


def production_version(version: str, expected: float = 600.0) -> dict[str, Any]:
    return {
        "version": version,
        "stage": "production",
        "entry_evidence": {"residency_estimate": {"monthly_expected": expected}},
        "deployments": [deployment(f"chat-{version}-use1")],
        "signoffs": [],
    }


def canary_version(started_at: str = T0, max_duration: str = "336h") -> dict[str, Any]:
    return {
        "version": "2",
        "stage": "canary",
        "canary": {
            "of_version": "1",
            "started_at": started_at,
            "max_duration": max_duration,
            "traffic_percent": 10,
        },
        "deployments": [],
    }


def digest_of(version: dict[str, Any]) -> str:
    content = {k: v for k, v in version.items() if k != "signoffs"}
    return version_digest(Version.model_validate(content))


def signoff(login: str, version: dict[str, Any], *, role: str | None = None) -> dict[str, Any]:
    return {
        "role": role or ROLES[login],
        "by": login,
        "at": "2025-05-02T00:00:00Z",
        "expires_at": "2025-07-30T00:00:00Z",
        "scope": {"kind": "promotion", "subject_digest": digest_of(version)},
    }


# ---------------------------------------------------------------------------- repository


@dataclass
class Repo:
    root: Path
    pack: Path
    clock: int = 0
    shas: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> Path:
        return self.root / PORT

    def git(self, *args: str, who: tuple[str, str] = PEOPLE["pat"][:2], date: str = T0) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": who[0],
            "GIT_AUTHOR_EMAIL": who[1],
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": who[0],
            "GIT_COMMITTER_EMAIL": who[1],
            "GIT_COMMITTER_DATE": date,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        done = subprocess.run(
            ["git", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    # -- files

    def write(self, files: Mapping[str, Any]) -> None:
        """``{path under port/: data or text}``; ``None`` deletes."""
        for relative, content in files.items():
            path = self.port / relative
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
            path.write_text(text, encoding="utf-8")

    def read(self, relative: str) -> Any:
        return yaml.safe_load((self.port / relative).read_text(encoding="utf-8"))

    def edit(self, relative: str, change: Callable[[Any], None]) -> None:
        data = copy.deepcopy(self.read(relative))
        change(data)
        self.write({relative: data})

    def commit(
        self, message: str, *, who: tuple[str, str] = PEOPLE["pat"][:2], date: str | None = None
    ) -> str:
        """Commit everything; dates advance one hour per commit unless given."""
        if date is None:
            self.clock += 1
            date = f"2025-05-01T{self.clock:02d}:00:00Z"
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message, who=who, date=date)
        sha = self.git("rev-parse", "HEAD")
        self.shas[message] = sha
        return sha

    def sign(self, model: str, version: str, login: str, *, who: tuple[str, str] | None = None) -> str:
        """Add ``login``'s sign-off on the version's current content, committed by ``who``
        (default: the signer)."""

        def add(data: Any) -> None:
            entry = next(v for v in data["versions"] if v["version"] == version)
            entry.setdefault("signoffs", []).append(signoff(login, entry))

        self.edit(f"models/{model}.yaml", add)
        return self.commit(f"sign {model}@{version} {login}", who=who or PEOPLE[login][:2])

    # -- running the engine

    def check(self, *args: str, env: Mapping[str, str] | None = None) -> Result:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
        environment.pop("PRE_COMMIT", None)
        environment.update(env or {})
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "policy_engine",
                "check",
                PORT,
                "--no-builtin",
                "--policies",
                str(self.pack),
                "--as-of",
                AS_OF,
                "--format",
                "json",
                *args,
            ],
            cwd=self.root,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        report = json.loads(done.stdout) if done.returncode in (0, 1) and done.stdout else {}
        return Result(done.returncode, report, done.stderr)


@dataclass
class Result:
    code: int
    report: dict[str, Any]
    stderr: str

    def findings(self, policy: str | None = None, target: str | None = None) -> list[dict[str, Any]]:
        return [
            f
            for f in self.report.get("findings", [])
            if (policy is None or f["policy_id"] == policy) and (target is None or f["target"] == target)
        ]

    def one(self, policy: str, target: str) -> dict[str, Any]:
        found = self.findings(policy, target)
        assert len(found) == 1, (policy, target, self.report.get("findings"))
        return found[0]

    def probe(self, target: str) -> dict[str, Any]:
        values: dict[str, Any] = self.one("probe.facts", target)["values"]
        return values


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    """The policies under test, outside the repository (so the base cannot change them)."""
    directory = tmp_path / "pack"
    directory.mkdir()
    for name in (*PACK, clock_policy()):
        shutil.copy(REPO_ROOT / "policies" / f"{name}.yaml", directory / f"{name}.yaml")
    (directory / "probe.facts.yaml").write_text(PROBE, encoding="utf-8")
    return directory


@pytest.fixture
def repo(tmp_path: Path, pack: Path) -> Repo:
    """``main``: chat@1 in production with four sign-offs, each committed by its signer, and
    rank@2 a canary since T0 that has outlived its 14 days at AS_OF (a pre-existing failure)."""
    root = tmp_path / "repo"
    root.mkdir()
    repo = Repo(root, pack)
    repo.git("init", "-q")
    chat = {"id": "chat", "owner_team": "ml", "versions": [production_version("1")]}
    rank = {"id": "rank", "owner_team": "ml", "versions": [canary_version()]}
    repo.write({"portfolio.yaml": portfolio_doc(), "models/chat.yaml": chat, "models/rank.yaml": rank})
    repo.commit("init", date=T0)
    for login in PEOPLE:
        repo.sign("chat", "1", login)
    repo.git("checkout", "-q", "-b", "feature")
    return repo
