"""The pre-commit hooks (.pre-commit-hooks.yaml) under the real pre-commit framework.

pre-commit installs this repository with pip into a fresh virtualenv, as it would for a user, so
the hooks are tested exactly as published. The repository is first copied, as its working tree
(tracked and untracked files, minus what .gitignore excludes), into a temporary git repository:
``try-repo`` only picks up tracked changes, and the copy makes uncommitted work count too.

Building a hook environment takes a while. ``pre-commit try-repo`` always uses a throwaway store,
so it builds one per call: it is called once, for the blocked change. Every other case runs
``pre-commit run`` with the configuration try-repo writes ({repo, rev, hooks}), against one
PRE_COMMIT_HOME shared by the module, so their environment is built once.

The portfolio under test is tiny (portfolio.yaml and one model file) and its dates are relative
to now, because the hook checks with the real clock: the canary started 30 days ago against a
14-day limit; the clean change rolls it back (stage: retired, no deployments), as the finding's
remediation says.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integrations.conftest import REPO_ROOT, find_tool, git, git_env, init_repo

HOOKS_FILE = REPO_ROOT / ".pre-commit-hooks.yaml"
HOOK_IDS = ("policy-engine-check", "policy-engine-validate")


def _pre_commit() -> str:
    tool = find_tool("pre-commit")
    if tool is None:
        pytest.skip(
            "PRE-COMMIT IS NOT INSTALLED: the hooks were not exercised. "
            "Install the dev extra (pip install -e '.[dev]') to run these tests."
        )
    return tool


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def portfolio_files(now: datetime) -> dict[str, str]:
    portfolio = {
        "schema_version": 1,
        "kind": "InferencePortfolio",
        "portfolio": {"id": "tiny", "name": "Tiny inference portfolio", "currency": "USD"},
        "teams": [{"id": "ml-support", "function": "ml", "cost_center": "CC-5100"}],
        "roster": [{"login": "lena-ml", "name": "Lena M.", "team": "ml-support", "roles": ["ml"]}],
        "rates": {"gpu_hour": {"nvidia-l4": 0.71}, "overhead_per_replica_hour": 0.09},
    }
    return {"portfolio.yaml": yaml.safe_dump(portfolio, sort_keys=False), **model_file(now, "retired")}


def model_file(now: datetime, stage: str) -> dict[str, str]:
    """``models/intent-classifier.yaml`` with version 2 as an overdue canary or rolled back."""
    version: dict[str, Any] = {"version": "2", "stage": stage}
    if stage == "canary":
        version["canary"] = {
            "of_version": "1",
            "started_at": _stamp(now - timedelta(days=30)),
            "max_duration": "336h",
            "traffic_percent": 10,
        }
    version["deployments"] = []
    model = {"id": "intent-classifier", "owner_team": "ml-support", "versions": [version]}
    return {"models/intent-classifier.yaml": yaml.safe_dump(model, sort_keys=False)}


@dataclass(frozen=True)
class HookRepo:
    path: Path
    rev: str


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> HookRepo:
    """This repository's working tree, committed in a temporary repository."""
    snapshot = tmp_path_factory.mktemp("hook-repo")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8")
    for relative in filter(None, listed.split("\0")):
        source = REPO_ROOT / relative
        if source.is_file():
            (snapshot / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, snapshot / relative)
    assert (snapshot / ".pre-commit-hooks.yaml").is_file()
    env = git_env(tmp_path_factory.mktemp("hook-repo-git"))
    return HookRepo(snapshot, init_repo(snapshot, env, "policy-engine working tree"))


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One hook store for the module: the hook environment is built once."""
    return tmp_path_factory.mktemp("pre-commit-home")


@dataclass
class Portfolio:
    """A portfolio git repository in which hooks run; ``prefix`` is where the portfolio lives."""

    path: Path
    env: dict[str, str]
    prefix: str = ""

    def write(self, files: Mapping[str, str]) -> None:
        for relative, text in files.items():
            target = self.path / self.prefix / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        git(self.path, "add", "--all", env=self.env)

    def pre_commit(self, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "PRE_COMMIT_HOME": str(home)}
        return subprocess.run(
            [_pre_commit(), *args, "--color", "never"],
            cwd=self.path,
            env=env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=900,
            check=False,
        )

    def run_hooks(
        self, repo: HookRepo, home: Path, hooks: list[dict[str, Any]]
    ) -> subprocess.CompletedProcess[str]:
        """``pre-commit run`` on the staged files with a try-repo style configuration."""
        config = self.path.parent / f"{self.path.name}-pre-commit-config.yaml"
        config.write_text(
            yaml.safe_dump({"repos": [{"repo": str(repo.path), "rev": repo.rev, "hooks": hooks}]}),
            encoding="utf-8",
        )
        return self.pre_commit("run", "--config", str(config), home=home)


def _make_portfolio(root: Path, prefix: str = "") -> Portfolio:
    """A committed portfolio (the canary already rolled back) with a README beside it."""
    base = root / prefix
    root.mkdir(parents=True)
    (root / "README.md").write_text("# Inference portfolio\n", encoding="utf-8")
    for relative, text in portfolio_files(datetime.now(UTC)).items():
        (base / relative).parent.mkdir(parents=True, exist_ok=True)
        (base / relative).write_text(text, encoding="utf-8")
    env = git_env(root.parent / f"{root.name}-git")
    init_repo(root, env, "portfolio")
    return Portfolio(root, env, prefix)


@pytest.fixture
def portfolio(tmp_path: Path) -> Portfolio:
    return _make_portfolio(tmp_path / "portfolio")


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def test_hook_definitions() -> None:
    hooks = {hook["id"]: hook for hook in yaml.safe_load(HOOKS_FILE.read_text(encoding="utf-8"))}
    assert tuple(hooks) == HOOK_IDS
    assert hooks["policy-engine-check"]["entry"] == "policy-engine check --context pre-commit"
    assert hooks["policy-engine-validate"]["entry"] == "policy-engine validate"
    for hook in hooks.values():
        assert hook["language"] == "python"
        assert hook["pass_filenames"] is False
        assert hook["name"]
        assert hook["description"]


@pytest.mark.parametrize(
    ("path", "triggers"),
    [
        ("portfolio.yaml", True),
        ("exceptions.yaml", True),
        (".policy-engine.yaml", True),
        ("models/fraud-scorer.yaml", True),
        ("models/risk/fraud-scorer.yml", True),
        ("policies/canary.yaml", True),
        ("policies/tests/canary.test.yaml", True),
        ("inference/portfolio.yaml", True),
        ("inference/models/fraud-scorer.yaml", True),
        ("teams/inference/policies/local.yaml", True),
        ("README.md", False),
        ("myportfolio.yaml", False),
        ("models/README.md", False),
        ("src/models.py", False),
        ("docs/policies.md", False),
        ("portfolio.yaml.bak", False),
    ],
)
def test_hooks_trigger_on_portfolio_and_policy_files(path: str, triggers: bool) -> None:
    for hook in yaml.safe_load(HOOKS_FILE.read_text(encoding="utf-8")):
        assert bool(re.search(hook["files"], path)) is triggers, (hook["id"], path)


def test_try_repo_blocks_a_canary_past_its_limit(
    portfolio: Portfolio, hook_repo: HookRepo, pre_commit_home: Path
) -> None:
    portfolio.write(model_file(datetime.now(UTC), "canary"))
    result = portfolio.pre_commit(
        "try-repo", str(hook_repo.path), "policy-engine-check", home=pre_commit_home
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, _output(result)
    assert re.search(r"policy-engine check\.+Failed", output), _output(result)
    assert "context pre-commit" in output, _output(result)
    assert "BLOCK canary.max-duration  intent-classifier@2" in output, _output(result)
    assert re.search(r"canary intent-classifier@2 has run 30\.0d since .* \(limit 14\.0d\)", output), _output(
        result
    )


def test_clean_change_passes(portfolio: Portfolio, hook_repo: HookRepo, pre_commit_home: Path) -> None:
    now = datetime.now(UTC)
    portfolio.write(model_file(now, "canary"))
    git(portfolio.path, "commit", "--quiet", "--no-verify", "-m", "canary", env=portfolio.env)
    portfolio.write(model_file(now, "retired"))  # the remediation: roll the canary back
    result = portfolio.run_hooks(hook_repo, pre_commit_home, [{"id": "policy-engine-check"}])
    assert result.returncode == 0, _output(result)
    assert re.search(r"policy-engine check\.+Passed", result.stdout), _output(result)


def test_hooks_skip_commits_without_portfolio_files(
    portfolio: Portfolio, hook_repo: HookRepo, pre_commit_home: Path
) -> None:
    portfolio.write({"README.md": "# Inference portfolio\n\nOwned by the platform team.\n"})
    result = portfolio.run_hooks(
        hook_repo, pre_commit_home, [{"id": "policy-engine-check"}, {"id": "policy-engine-validate"}]
    )
    assert result.returncode == 0, _output(result)
    assert re.search(r"policy-engine check\.+\(no files to check\)Skipped", result.stdout), _output(result)
    assert re.search(r"policy-engine validate\.+\(no files to check\)Skipped", result.stdout), _output(result)


def test_portfolio_in_a_subdirectory(tmp_path: Path, hook_repo: HookRepo, pre_commit_home: Path) -> None:
    """The files pattern matches below the root; the portfolio root is given as the hook's argument."""
    portfolio = _make_portfolio(tmp_path / "monorepo", prefix="inference/portfolio")
    hooks = [
        {"id": "policy-engine-validate", "args": ["inference/portfolio"]},
        {"id": "policy-engine-check", "args": ["inference/portfolio"]},
    ]
    portfolio.write(model_file(datetime.now(UTC), "canary"))
    result = portfolio.run_hooks(hook_repo, pre_commit_home, hooks)
    assert result.returncode != 0, _output(result)
    assert re.search(r"policy-engine validate\.+Passed", result.stdout), _output(result)
    assert re.search(r"policy-engine check\.+Failed", result.stdout), _output(result)
    assert "inference/portfolio/models/intent-classifier.yaml" in result.stdout, _output(result)
    assert "BLOCK canary.max-duration  intent-classifier@2" in result.stdout, _output(result)


def test_validate_hook_rejects_invalid_input(
    portfolio: Portfolio, hook_repo: HookRepo, pre_commit_home: Path
) -> None:
    path = portfolio.path / "models" / "intent-classifier.yaml"
    text = path.read_text(encoding="utf-8")
    assert "version: '2'" in text
    portfolio.write({"models/intent-classifier.yaml": text.replace("version: '2'", "version: 2")})
    result = portfolio.run_hooks(hook_repo, pre_commit_home, [{"id": "policy-engine-validate"}])
    assert result.returncode != 0, _output(result)
    assert re.search(r"policy-engine validate\.+Failed", result.stdout), _output(result)
    assert "- exit code: 2" in result.stdout, _output(result)
    assert re.search(r"models/intent-classifier\.yaml:\d+:\d+: .*quote", result.stdout), _output(result)
