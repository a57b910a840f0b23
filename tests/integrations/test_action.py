"""The GitHub Action: action.yml's shape, and its check script in a simulated GitHub runner.

scripts/action-check.sh runs for real (bash, the installed policy-engine) with the variables a
runner sets for a composite step: GITHUB_ACTIONS, GITHUB_EVENT_PATH (a pull_request payload),
GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, GITHUB_WORKSPACE, RUNNER_TEMP and the INPUT_* variables that
action.yml maps from its inputs (with action.yml's defaults).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integrations.conftest import (
    EXAMPLE,
    EXAMPLE_AS_OF,
    REPO_ROOT,
    clean_env,
    find_tool,
    git,
    git_env,
    init_repo,
    path_with_venv,
    validate_sarif,
)

ACTION = REPO_ROOT / "action.yml"
SCRIPT = REPO_ROOT / "scripts" / "action-check.sh"
SCRIPTS = REPO_ROOT / "scripts"
REPOSITORY = "acme/inference-portfolio"
PR_NUMBER = 42
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def load_action() -> dict[str, Any]:
    action: dict[str, Any] = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    return action


def check_step(action: Mapping[str, Any]) -> dict[str, Any]:
    steps = [step for step in action["runs"]["steps"] if step.get("id") == "check"]
    assert len(steps) == 1, "action.yml needs exactly one step with id: check"
    step: dict[str, Any] = steps[0]
    return step


def bash() -> str:
    found = shutil.which("bash")
    assert found, "bash is required to run the action's script"
    return found


# ---------------------------------------------------------------------------- action.yml


def test_action_is_a_composite_action_that_installs_and_checks() -> None:
    action = load_action()
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    assert steps[0]["uses"].startswith("actions/setup-python@")
    assert steps[0]["with"]["python-version"] == "${{ inputs.python-version }}"
    assert '"$GITHUB_ACTION_PATH"' in steps[1]["run"]
    assert "pip install" in steps[1]["run"]
    assert check_step(action)["run"] == 'bash "$GITHUB_ACTION_PATH/scripts/action-check.sh"'
    for step in steps:
        if "run" in step:
            assert step["shell"] == "bash", step


def test_run_steps_reference_only_environment_variables() -> None:
    """No ``${{ }}`` in any ``run:``: values reach the shell through ``env:`` only."""
    for step in load_action()["runs"]["steps"]:
        if "run" in step:
            assert "${{" not in step["run"], f"expression in run: of step {step.get('name')!r}"
    for script in SCRIPTS.iterdir():
        if script.is_file():
            assert "${{" not in script.read_text(encoding="utf-8"), f"expression in {script.name}"


def test_inputs_map_to_the_variables_the_script_reads() -> None:
    action = load_action()
    declared = set(action["inputs"])
    env = check_step(action)["env"]
    mapped: dict[str, str] = {}
    for variable, value in env.items():
        match = EXPRESSION.fullmatch(str(value))
        assert match, f"{variable}: expected a single ${{{{ inputs.… }}}} expression, got {value!r}"
        name = match.group(1).removeprefix("inputs.")
        assert variable == "INPUT_" + name.upper().replace("-", "_"), variable
        mapped[name] = variable
    # python-version is used by setup-python; every other input reaches the script
    assert set(mapped) == declared - {"python-version"}
    used_in_action = {m.group(1).removeprefix("inputs.") for m in EXPRESSION.finditer(ACTION.read_text())}
    assert declared <= used_in_action | set(mapped), "an input is declared but never used"
    script_text = "".join(p.read_text(encoding="utf-8") for p in sorted(SCRIPTS.glob("action*")))
    read = set(re.findall(r"\bINPUT_[A-Z_]+\b", script_text))
    assert read == set(mapped.values()), "the script reads INPUT_* variables that action.yml does not set"
    for name in declared:
        assert action["inputs"][name].get("description"), f"input {name} has no description"


def test_outputs_come_from_the_check_step() -> None:
    action = load_action()
    script_text = "".join(p.read_text(encoding="utf-8") for p in sorted(SCRIPTS.glob("action*")))
    assert set(action["outputs"]) == {"blocking", "failed", "errors", "waived", "sarif-file"}
    for name, output in action["outputs"].items():
        assert output["value"] == f"${{{{ steps.check.outputs.{name} }}}}"
        assert output.get("description")
        assert name in script_text, f"the script never writes output {name}"


def test_input_defaults() -> None:
    inputs = load_action()["inputs"]
    defaults = {name: spec.get("default") for name, spec in inputs.items()}
    assert defaults == {
        "path": ".",
        "policies": "",
        "base": "",
        "context": "pull-request",
        "fail-on": "error",
        "as-of": "",
        "sarif-file": "policy-engine.sarif",
        "markdown-file": "",
        "token": "",
        "python-version": "3.11",
    }
    assert not any(spec.get("required") for spec in inputs.values())


# ---------------------------------------------------------------------------- a simulated runner


@dataclass
class Runner:
    """A workspace with a git repository holding a copy of the example portfolio."""

    root: Path
    workspace: Path
    event: Path
    base_sha: str
    git_home: Path

    @property
    def output_file(self) -> Path:
        return self.root / "github_output"

    @property
    def summary_file(self) -> Path:
        return self.root / "step_summary.md"

    @property
    def temp(self) -> Path:
        return self.root / "runner_temp"

    def env(self, inputs: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
        """What a runner sets for the check step: GitHub variables plus action.yml's env."""
        action = load_action()
        values = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
        values.update(inputs or {})
        mapped = {}
        for variable, expression in check_step(action)["env"].items():
            match = EXPRESSION.fullmatch(str(expression))
            assert match
            mapped[variable] = values[match.group(1).removeprefix("inputs.")]
        self.temp.mkdir(exist_ok=True)
        github = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(self.event),
            "GITHUB_OUTPUT": str(self.output_file),
            "GITHUB_STEP_SUMMARY": str(self.summary_file),
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_API_URL": "http://127.0.0.1:9",  # nothing listens: no test reaches GitHub
            "GITHUB_ACTION_PATH": str(REPO_ROOT),
            "RUNNER_TEMP": str(self.temp),
            "PATH": path_with_venv(),
        }
        return git_env(self.git_home, {**github, **mapped, **extra})

    def run(self, inputs: Mapping[str, str] | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [bash(), str(SCRIPT)],
            cwd=self.workspace,
            env=self.env(inputs, **extra),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=300,
            check=False,
        )

    def outputs(self) -> dict[str, str]:
        lines = self.output_file.read_text(encoding="utf-8").splitlines()
        pairs = [line.split("=", 1) for line in lines]
        assert all(len(pair) == 2 for pair in pairs), lines
        result = dict(pairs)
        assert len(result) == len(lines), f"an output is written twice: {lines}"
        return result

    def kept_report(self) -> dict[str, Any]:
        reports = list(self.temp.glob("policy-engine.*/report.json"))
        assert len(reports) == 1, reports
        report: dict[str, Any] = json.loads(reports[0].read_text(encoding="utf-8"))
        return report


def _commit_env(git_home: Path, when: str) -> dict[str, str]:
    return git_env(git_home, {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when})


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    """The example at the pull request's base; the head commit edits the overdue canary."""
    workspace = tmp_path / "workspace"
    shutil.copytree(EXAMPLE, workspace / "portfolio")
    git_home = tmp_path / "git-home"
    base_sha = init_repo(workspace, _commit_env(git_home, "2025-06-29T12:00:00Z"), "the example portfolio")
    model = workspace / "portfolio" / "models" / "support-intent-classifier.yaml"
    text = model.read_text(encoding="utf-8")
    assert "monthly_expected: 700.0" in text, (
        "the example changed: pick another edit of support-intent-classifier@8"
    )
    model.write_text(text.replace("monthly_expected: 700.0", "monthly_expected: 720.0"), encoding="utf-8")
    head_env = _commit_env(git_home, "2025-06-29T13:00:00Z")
    git(
        workspace,
        "commit",
        "--quiet",
        "--all",
        "-m",
        "support-intent-classifier@8: new estimate",
        env=head_env,
    )
    head_sha = git(workspace, "rev-parse", "HEAD", env=head_env)
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps(
            {
                "action": "synchronize",
                "number": PR_NUMBER,
                "pull_request": {
                    "number": PR_NUMBER,
                    "base": {"ref": "main", "sha": base_sha},
                    "head": {"ref": "sic-estimate", "sha": head_sha},
                },
                "repository": {"full_name": REPOSITORY},
            }
        ),
        encoding="utf-8",
    )
    return Runner(tmp_path, workspace, event, base_sha, git_home)


def _supports(option: str) -> bool:
    tool = find_tool("policy-engine")
    assert tool, "policy-engine is not installed"
    help_text = subprocess.run([tool, "check", "--help"], capture_output=True, text=True, check=True).stdout
    return re.search(rf"(^|[\s,]){re.escape(option)}([\s,=]|$)", help_text) is not None


def test_pull_request_run_on_the_example(runner: Runner) -> None:
    result = runner.run({"path": "portfolio", "as-of": EXAMPLE_AS_OF})
    report = runner.kept_report()
    summary = report["summary"]

    # outputs: the JSON report's counts and the SARIF file, nothing else
    outputs = runner.outputs()
    assert set(outputs) == set(load_action()["outputs"])
    assert outputs == {
        "blocking": str(summary["blocking"]),
        "failed": str(summary["by_status"]["fail"]),
        "errors": str(summary["by_status"]["error"]),
        "waived": str(summary["by_status"]["waived"]),
        "sarif-file": "policy-engine.sarif",
    }
    assert report["context"] == "pull-request"
    assert report["as_of"] == EXAMPLE_AS_OF

    # the pull request touches the overdue canary, so its finding blocks: exit 1
    assert result.returncode == summary["exit_code"] == 1, result.stderr
    blocking = {(f["policy_id"], f["target"]) for f in report["findings"] if f["blocking"]}
    assert ("canary.max-duration", "support-intent-classifier@8") in blocking
    if _supports("--base"):
        assert report["base"] == runner.base_sha  # from the event payload
    else:
        assert "no --base" in result.stderr

    # SARIF kept in the workspace and valid
    sarif = json.loads((runner.workspace / "policy-engine.sarif").read_text(encoding="utf-8"))
    validate_sarif(sarif)
    assert sarif["runs"][0]["tool"]["driver"]["name"] == "policy-engine"

    # annotations on stdout, pointing into the workspace's portfolio
    annotations = [line for line in result.stdout.splitlines() if line.startswith("::")]
    assert any(
        line.startswith("::error file=portfolio/models/support-intent-classifier.yaml,line=")
        and "title=canary.max-duration · support-intent-classifier@8::" in line
        for line in annotations
    ), annotations

    # the job summary: the Markdown report with its verdict
    text = runner.summary_file.read_text(encoding="utf-8")
    assert text.startswith("<!-- policy-engine:report -->")
    assert "Context `pull-request`" in text
    assert f"as of `{EXAMPLE_AS_OF}`" in text
    assert f"{summary['blocking']} blocking finding" in text
    assert "`canary.max-duration` on `support-intent-classifier@8`" in text


def test_script_runs_check_as_a_direct_run_would(runner: Runner, tmp_path: Path) -> None:
    """Stdout, job summary and JSON report equal those of the same check run by hand."""
    result = runner.run({"path": "portfolio", "as-of": EXAMPLE_AS_OF, "sarif-file": "out/policy.sarif"})
    assert result.returncode in (0, 1), result.stderr
    reference_summary = tmp_path / "reference-summary.md"
    reference_json = tmp_path / "reference.json"
    args = ["check", "portfolio", "--context", "pull-request", "--fail-on", "error", "--as-of", EXAMPLE_AS_OF]
    args += ["--format", "github", "--format", f"json={reference_json}"]
    if _supports("--base"):
        args += ["--base", runner.base_sha]
    env = runner.env(GITHUB_STEP_SUMMARY=str(reference_summary))
    tool = find_tool("policy-engine")
    assert tool
    reference = subprocess.run(
        [tool, *args], cwd=runner.workspace, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == reference.returncode
    assert result.stdout == reference.stdout
    assert runner.summary_file.read_text(encoding="utf-8") == reference_summary.read_text(encoding="utf-8")
    assert runner.kept_report() == json.loads(reference_json.read_text(encoding="utf-8"))
    assert runner.outputs()["sarif-file"] == "out/policy.sarif"
    assert (runner.workspace / "out" / "policy.sarif").is_file()


def test_fail_on_never_and_audit_context(runner: Runner) -> None:
    result = runner.run(
        {
            "path": "portfolio",
            "as-of": EXAMPLE_AS_OF,
            "context": "audit",
            "fail-on": "never",
            "sarif-file": "",
        }
    )
    assert result.returncode == 0, result.stderr
    outputs = runner.outputs()
    report = runner.kept_report()
    assert report["context"] == "audit"
    assert outputs["blocking"] == "0"
    assert outputs["failed"] == str(report["summary"]["by_status"]["fail"])
    assert outputs["sarif-file"] == ""
    assert not (runner.workspace / "policy-engine.sarif").exists()


def test_invalid_input_exits_2_with_empty_counts(runner: Runner) -> None:
    model = runner.workspace / "portfolio" / "models" / "fraud-scorer.yaml"
    model.write_text(model.read_text(encoding="utf-8").replace("replicas:", "replica:", 1), encoding="utf-8")
    result = runner.run({"path": "portfolio", "as-of": EXAMPLE_AS_OF})
    assert result.returncode == 2
    assert re.search(r"portfolio/models/fraud-scorer\.yaml:\d+:\d+: ", result.stderr), result.stderr
    assert runner.outputs() == {"blocking": "", "failed": "", "errors": "", "waived": "", "sarif-file": ""}


# ---------------------------------------------------------------------------- newer options


REVIEWS = [
    {
        "id": 1,
        "user": {"login": "priya-n"},
        "state": "APPROVED",
        "commit_id": "a" * 40,
        "submitted_at": "2025-06-29T14:00:00Z",
    },
    {
        "id": 2,
        "user": {"login": "marta-f"},
        "state": "COMMENTED",
        "commit_id": "a" * 40,
        "submitted_at": "2025-06-29T15:00:00Z",
    },
    {
        "id": 3,
        "user": {"login": "ben-cfo"},
        "state": "APPROVED",
        "commit_id": "b" * 40,
        "submitted_at": "2025-06-29T16:00:00Z",
    },
]


@dataclass
class FakeApi:
    url: str
    requests: list[tuple[str, str | None]]


@pytest.fixture
def github_api() -> Iterator[FakeApi]:
    """The pull request's reviews endpoint, two pages joined by a Link header."""
    requests: list[tuple[str, str | None]] = []
    pages = {"1": REVIEWS[:2], "2": REVIEWS[2:]}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append((self.path, self.headers.get("Authorization")))
            route, _, query = self.path.partition("?")
            params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
            page = params.get("page", "1")
            if route != f"/repos/{REPOSITORY}/pulls/{PR_NUMBER}/reviews" or page not in pages:
                self.send_error(404)
                return
            body = json.dumps(pages[page]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if page == "1":
                host = f"http://{self.headers.get('Host')}"
                self.send_header("Link", f'<{host}{route}?per_page=100&page=2>; rel="next"')
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeApi(f"http://127.0.0.1:{server.server_address[1]}", requests)
    finally:
        server.shutdown()
        server.server_close()


SHIM = """\
#!@PYTHON@
# policy-engine stand-in. `check --help` lists --base and --reviews only with SHIM_NEW_OPTIONS,
# whatever the real CLI supports; every other call is recorded (with a copy of the reviews
# file) and runs the real CLI without those two options.
import json, os, shutil, subprocess, sys

real, args = @REAL@, sys.argv[1:]
if args[:1] == ["check"] and "--help" in args:
    text = subprocess.run([real, *args], capture_output=True, text=True, check=True).stdout
    lines = [line for line in text.splitlines() if "--base" not in line and "--reviews" not in line]
    if os.environ.get("SHIM_NEW_OPTIONS"):
        lines += ["  --base REF      Pull-request mode against REF.", "  --reviews FILE  Reviews (JSON)."]
    print("\\n".join(lines))
    sys.exit(0)
log = os.environ["SHIM_LOG"]
with open(log, "a") as handle:
    handle.write(json.dumps(args) + "\\n")
passed, skip = [], False
for index, arg in enumerate(args):
    if skip:
        skip = False
    elif arg in ("--base", "--reviews"):
        if arg == "--reviews":
            shutil.copy(args[index + 1], log + ".reviews.json")
        skip = True
    else:
        passed.append(arg)
os.execv(real, [real, *passed])
"""


@pytest.fixture
def shim(tmp_path: Path) -> Path:
    """A bin directory whose policy-engine records its arguments."""
    real = find_tool("policy-engine")
    assert real, "policy-engine is not installed"
    directory = tmp_path / "shim-bin"
    directory.mkdir()
    script = directory / "policy-engine"
    script.write_text(
        SHIM.replace("@PYTHON@", sys.executable).replace("@REAL@", repr(real)), encoding="utf-8"
    )
    script.chmod(0o755)
    return directory


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def _option(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == name]


def test_base_and_reviews_are_passed_when_check_supports_them(
    runner: Runner, shim: Path, github_api: FakeApi, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    (runner.workspace / "extra-policies").mkdir()
    (runner.workspace / "more policies").mkdir()
    result = runner.run(
        {
            "path": "portfolio",
            "as-of": EXAMPLE_AS_OF,
            "token": "test-token",
            "policies": "  extra-policies\n\nmore policies  \n",
            "markdown-file": "comment.md",
        },
        PATH=f"{shim}:{path_with_venv()}",
        SHIM_LOG=str(log),
        SHIM_NEW_OPTIONS="1",
        GITHUB_API_URL=github_api.url,
    )
    assert result.returncode == 1, result.stderr
    (args,) = _calls(log)
    assert args[:2] == ["check", "portfolio"]
    assert _option(args, "--base") == [runner.base_sha]
    assert _option(args, "--policies") == ["extra-policies", "more policies"]
    assert _option(args, "--as-of") == [EXAMPLE_AS_OF]
    assert _option(args, "--context") == ["pull-request"]
    assert "markdown=comment.md" in _option(args, "--format")
    (reviews_file,) = _option(args, "--reviews")
    assert reviews_file.startswith(str(runner.temp))
    assert json.loads(Path(str(log) + ".reviews.json").read_text(encoding="utf-8")) == REVIEWS
    assert [auth for _, auth in github_api.requests] == ["Bearer test-token", "Bearer test-token"]
    assert github_api.requests[0][0] == f"/repos/{REPOSITORY}/pulls/{PR_NUMBER}/reviews?per_page=100"
    assert "test-token" not in json.dumps(args)
    assert (
        (runner.workspace / "comment.md").read_text(encoding="utf-8").startswith("<!-- policy-engine:report")
    )


def test_reviews_reach_the_installed_check(runner: Runner, github_api: FakeApi) -> None:
    """No stand-in: the real CLI gets the fetched reviews when it has --reviews."""
    result = runner.run(
        {"path": "portfolio", "as-of": EXAMPLE_AS_OF, "token": "test-token"},
        GITHUB_API_URL=github_api.url,
    )
    assert result.returncode == 1, result.stderr
    assert "could not read the reviews" not in result.stdout
    if _supports("--reviews"):
        assert len(github_api.requests) == 2
        (reviews,) = runner.temp.glob("policy-engine.*/reviews.json")
        assert json.loads(reviews.read_text(encoding="utf-8")) == REVIEWS
    else:
        assert github_api.requests == []
        assert "no --reviews" in result.stderr


def test_explicit_base_input_wins_over_the_event(runner: Runner, shim: Path, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    runner.run(
        {"path": "portfolio", "as-of": EXAMPLE_AS_OF, "base": "origin/main"},
        PATH=f"{shim}:{path_with_venv()}",
        SHIM_LOG=str(log),
        SHIM_NEW_OPTIONS="1",
    )
    (args,) = _calls(log)
    assert _option(args, "--base") == ["origin/main"]
    assert _option(args, "--reviews") == []  # no token


def test_newer_options_are_left_out_when_check_lacks_them(
    runner: Runner, shim: Path, github_api: FakeApi, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    result = runner.run(
        {"path": "portfolio", "as-of": EXAMPLE_AS_OF, "token": "test-token"},
        PATH=f"{shim}:{path_with_venv()}",
        SHIM_LOG=str(log),
        GITHUB_API_URL=github_api.url,
    )
    assert result.returncode == 1, result.stderr
    (args,) = _calls(log)
    assert "--base" not in args
    assert "--reviews" not in args
    assert github_api.requests == []  # nothing fetched that could not be used
    assert "no --base" in result.stderr
    assert "no --reviews" in result.stderr


def test_unreadable_reviews_warn_and_the_check_still_runs(runner: Runner, shim: Path, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    result = runner.run(
        {"path": "portfolio", "as-of": EXAMPLE_AS_OF, "token": "test-token"},
        PATH=f"{shim}:{path_with_venv()}",
        SHIM_LOG=str(log),
        SHIM_NEW_OPTIONS="1",
    )
    assert result.returncode == 1, result.stderr
    assert "::warning title=policy-engine::could not read the reviews of pull request #42" in result.stdout
    (args,) = _calls(log)
    assert "--reviews" not in args
    assert runner.outputs()["blocking"] != ""


def test_outside_a_pull_request_no_base_and_no_reviews(
    runner: Runner, shim: Path, github_api: FakeApi, tmp_path: Path
) -> None:
    runner.event.write_text(
        json.dumps({"ref": "refs/heads/main", "after": runner.base_sha}), encoding="utf-8"
    )
    log = tmp_path / "calls.jsonl"
    result = runner.run(
        {"path": "portfolio", "as-of": EXAMPLE_AS_OF, "token": "test-token", "context": "audit"},
        PATH=f"{shim}:{path_with_venv()}",
        SHIM_LOG=str(log),
        SHIM_NEW_OPTIONS="1",
        GITHUB_EVENT_NAME="push",
        GITHUB_API_URL=github_api.url,
    )
    assert result.returncode == 1, result.stderr
    (args,) = _calls(log)
    assert "--base" not in args
    assert "--reviews" not in args
    assert github_api.requests == []


def test_support_helper_reads_event_fields(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7, "base": {"sha": "abc"}}}), encoding="utf-8")
    helper = [sys.executable, str(SCRIPTS / "action_support.py")]

    def field(name: str, path: Path | None) -> str:
        env = clean_env({"GITHUB_EVENT_PATH": str(path)} if path else {})
        completed = subprocess.run(
            [*helper, "event", name], env=env, capture_output=True, text=True, check=True
        )
        return completed.stdout.strip()

    assert field("pull_request.base.sha", event) == "abc"
    assert field("pull_request.number", event) == "7"
    assert field("pull_request.head.sha", event) == ""
    assert field("pull_request", event) == ""  # objects are not values
    assert field("pull_request.base.sha", None) == ""
    assert field("pull_request.base.sha", tmp_path / "missing.json") == ""
