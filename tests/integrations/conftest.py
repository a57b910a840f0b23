"""Fixtures for the integrations: the pre-commit hooks, the GitHub Action and golden outputs.

Every subprocess gets an environment without the variables that select a context or GitHub
behaviour (``GITHUB_*``, ``RUNNER_*``, ``PRE_COMMIT*``); a test that simulates one of them adds
it back explicitly. Git runs with a pinned identity and without the user's configuration.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "acme-portfolio"
EXAMPLE_AS_OF = "2025-06-30T00:00:00Z"
SARIF_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Portfolio Tester",
    "GIT_AUTHOR_EMAIL": "tester@example.com",
    "GIT_COMMITTER_NAME": "Portfolio Tester",
    "GIT_COMMITTER_EMAIL": "tester@example.com",
}


def _selects_context(name: str) -> bool:
    return name.startswith(("GITHUB_", "RUNNER_", "PRE_COMMIT"))


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the CI or pre-commit environment it happens to run in."""
    for name in list(os.environ):
        if _selects_context(name):
            monkeypatch.delenv(name)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without context-selecting variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not _selects_context(k)}
    env.pop("NO_COLOR", None)
    env.update(extra or {})
    return env


def git_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Pinned identity, no global or system git configuration (``home`` holds an empty one)."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "gitconfig"
    config.touch()
    return clean_env(
        {**GIT_IDENTITY, "GIT_CONFIG_GLOBAL": str(config), "GIT_CONFIG_NOSYSTEM": "1", **(extra or {})}
    )


def git(repo: Path, *args: str, env: Mapping[str, str]) -> str:
    completed = subprocess.run(
        ["git", *args], cwd=repo, env=dict(env), capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, f"git {' '.join(args)} failed:\n{completed.stdout}{completed.stderr}"
    return completed.stdout.strip()


def init_repo(repo: Path, env: Mapping[str, str], message: str = "initial") -> str:
    """``git init`` + commit everything in ``repo``; returns the commit sha."""
    git(repo, "init", "--quiet", "--initial-branch=main", env=env)
    git(repo, "add", "--all", env=env)
    git(repo, "commit", "--quiet", "--no-verify", "-m", message, env=env)
    return git(repo, "rev-parse", "HEAD", env=env)


def venv_bin() -> Path:
    """The directory with this interpreter's console scripts (policy-engine, pre-commit, ...)."""
    return Path(sys.executable).parent


def find_tool(name: str) -> str | None:
    """A console script installed beside this interpreter, else one on PATH."""
    candidate = venv_bin() / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


def path_with_venv() -> str:
    return os.pathsep.join([str(venv_bin()), os.environ.get("PATH", "")])


def run_cli(
    *args: str | Path, cwd: Path = REPO_ROOT, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``python -m policy_engine ARGS`` for real, output kept as bytes."""
    return subprocess.run(
        [sys.executable, "-m", "policy_engine", *(str(a) for a in args)],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        timeout=120,
        check=False,
    )


def validate_sarif(log: Any) -> None:
    """Check a SARIF log against the official 2.1.0 schema; every error is reported."""
    assert SARIF_SCHEMA.is_file(), f"the SARIF 2.1.0 schema is expected at {SARIF_SCHEMA}"
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_class(schema).iter_errors(log), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:20])
