"""The command line: exit codes, output formats and streams, contexts, digest, help."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from policy_engine import __version__

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "acme-portfolio"
AS_OF = "2025-06-30T00:00:00Z"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def report_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((REPO_ROOT / "schemas" / "report.schema.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def line_of(path: Path, text: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    found = [number for number, line in enumerate(lines, 1) if text in line]
    assert len(found) == 1, (text, found)
    return found[0]


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.fixture(scope="module")
def example_json(run_cli: Any) -> tuple[int, str, str]:
    result: tuple[int, str, str] = run_cli("check", EXAMPLE, "--as-of", AS_OF, "--format", "json", "--all")
    return result


# ---------------------------------------------------------------------------- entry points


def test_python_dash_m_help_lists_the_subcommands(run_cli: Any) -> None:
    code, stdout, stderr = run_cli("--help")
    assert code == 0, stderr
    assert "Usage:" in stdout
    for command in ("check", "validate", "schema", "digest"):
        assert re.search(rf"^\s+{command}\s", stdout, re.MULTILINE), command


def test_check_help_documents_the_options(run_cli: Any) -> None:
    code, stdout, _ = run_cli("check", "--help")
    assert code == 0
    for option in ("--as-of", "--format", "--output", "--context", "--fail-on", "--cel-backend", "--all"):
        assert option in stdout


def test_version(run_cli: Any) -> None:
    code, stdout, _ = run_cli("--version")
    assert code == 0
    assert __version__ in stdout


# ---------------------------------------------------------------------------- exit codes


def test_blocking_findings_exit_1(example_json: tuple[int, str, str]) -> None:
    code, stdout, stderr = example_json
    assert code == 1, stderr
    report = json.loads(stdout)
    assert report["summary"]["exit_code"] == 1
    assert report["summary"]["blocking"] == sum(f["blocking"] for f in report["findings"]) > 0


def test_clean_portfolio_exits_0(run_cli: Any, write_portfolio: Any) -> None:
    model = {
        "id": "m",
        "owner_team": "ml",
        "versions": [{"version": "1", "stage": "proposed", "created_at": "2025-06-01T00:00:00Z"}],
    }
    root = write_portfolio(models={"m.yaml": model})
    code, stdout, stderr = run_cli("check", root, "--as-of", AS_OF)
    assert code == 0, stdout + stderr
    assert stderr == ""
    assert "exit 0" in stdout


def test_fail_on_never_exits_0_on_the_example(run_cli: Any) -> None:
    code, stdout, stderr = run_cli(
        "check", EXAMPLE, "--as-of", AS_OF, "--format", "json", "--fail-on", "never"
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["summary"]["blocking"] == 0
    assert report["summary"]["exit_code"] == 0
    assert report["summary"]["by_status"]["fail"] > 0


def test_validate_exits_0_on_the_example(run_cli: Any) -> None:
    code, stdout, stderr = run_cli("validate", EXAMPLE)
    assert code == 0, stderr
    assert re.match(
        r"valid: \d+ models, \d+ versions, \d+ policies compiled \((cpp|python)\)$", stdout.strip()
    )


# ---------------------------------------------------------------------------- JSON report


def test_json_report_validates_against_the_published_schema(example_json: tuple[int, str, str]) -> None:
    report = json.loads(example_json[1])
    report_validator().validate(report)
    assert report["schema_version"] == 1
    assert report["tool"]["name"] == "policy-engine"
    assert report["tool"]["version"] == __version__
    assert report["as_of"] == AS_OF
    assert report["context"] == "audit"
    assert (report["base"], report["head"]) == (None, None)


def test_json_report_without_all_validates_too(run_cli: Any) -> None:
    code, stdout, _ = run_cli("check", EXAMPLE, "--as-of", AS_OF, "--format", "json")
    assert code == 1
    report = json.loads(stdout)
    report_validator().validate(report)
    assert {f["status"] for f in report["findings"]}.isdisjoint({"pass", "skip"})
    assert report["summary"]["by_status"]["pass"] > 0


def test_json_findings_are_sorted_and_paths_are_repo_relative(example_json: tuple[int, str, str]) -> None:
    stdout = example_json[1]
    report = json.loads(stdout)
    keys = [
        (f["location"]["file"] or "", f["location"]["line"] or 0, f["policy_id"], f["target"])
        for f in report["findings"]
    ]
    assert keys == sorted(keys)
    files = {f["location"]["file"] for f in report["findings"]}
    assert files
    assert all(file.startswith("examples/acme-portfolio/") for file in files)
    assert str(REPO_ROOT) not in stdout


def test_paths_do_not_depend_on_the_working_directory(run_cli: Any, tmp_path: Path) -> None:
    code, stdout, _ = run_cli("check", EXAMPLE, "--as-of", AS_OF, "--format", "json", cwd=tmp_path)
    assert code == 1
    files = {f["location"]["file"] for f in json.loads(stdout)["findings"]}
    assert all(file.startswith("examples/acme-portfolio/models/") for file in files if "models/" in file)


def test_same_inputs_give_byte_identical_output(
    run_cli_many: Any, example_json: tuple[int, str, str]
) -> None:
    text = ["check", EXAMPLE, "--as-of", AS_OF]
    again, text_once, text_twice = run_cli_many([[*text, "--format", "json", "--all"], text, text])
    assert again.stdout == example_json[1]
    assert text_once.stdout == text_twice.stdout
    assert "Summary:" in text_once.stdout


# ---------------------------------------------------------------------------- formats and streams


def test_format_with_path_writes_a_file_and_stdout_has_only_the_report(run_cli: Any, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.json"
    code, stdout, stderr = run_cli(
        "check", EXAMPLE, "--as-of", AS_OF, "--format", "text", "--format", f"json={target}"
    )
    assert code == 1  # files are written on exit 1 too
    assert stderr == ""
    assert stdout.startswith("policy-engine ")
    assert "Summary:" in stdout
    assert '"findings"' not in stdout
    report = json.loads(target.read_text(encoding="utf-8"))
    report_validator().validate(report)
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"], "no temporary files left"


def test_only_file_formats_leave_stdout_empty(run_cli: Any, tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("stale content from an earlier run", encoding="utf-8")
    code, stdout, stderr = run_cli("check", EXAMPLE, "--as-of", AS_OF, "--format", f"json={target}")
    assert code == 1
    assert (stdout, stderr) == ("", "")
    assert json.loads(target.read_text(encoding="utf-8"))["as_of"] == AS_OF


def test_output_names_the_file_of_the_stdout_format(run_cli: Any, tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    code, stdout, _ = run_cli("check", EXAMPLE, "--as-of", AS_OF, "--format", "json", "--output", target)
    assert code == 1
    assert stdout == ""
    assert json.loads(target.read_text(encoding="utf-8"))["summary"]["exit_code"] == 1


def test_invalid_input_leaves_an_existing_report_untouched(
    run_cli: Any, portfolio_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "report.json"
    target.write_text('{"previous": true}', encoding="utf-8")
    (portfolio_dir / "models" / "broken.yaml").write_text("id: [\n", encoding="utf-8")
    code, stdout, stderr = run_cli("check", portfolio_dir, "--as-of", AS_OF, "--format", f"json={target}")
    assert code == 2
    assert "models/broken.yaml:2:1: invalid YAML" in stderr
    assert stdout == ""
    assert target.read_text(encoding="utf-8") == '{"previous": true}'


# ---------------------------------------------------------------------------- contexts

CONTEXT_POLICY = """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: acme.context, severity: error}
spec:
  scope: version
  match: version.stage == 'production'
  enforcement: {pre-commit: advisory, pull-request: hard, audit: soft}
  validations:
    - expression: size(version.deployments) > 1
      message: Production runs in two regions
"""


@pytest.fixture(scope="module")
def context_portfolio(tmp_path_factory: pytest.TempPathFactory, portfolio_builder: Any) -> Path:
    root: Path = portfolio_builder(tmp_path_factory.mktemp("context") / "portfolio")
    (root / "policies").mkdir()
    (root / "policies" / "context.yaml").write_text(CONTEXT_POLICY, encoding="utf-8")
    return root


CONTEXT_CASES = [
    pytest.param({}, [], "audit", "soft", 1, id="default-audit"),
    pytest.param({"PRE_COMMIT": "1"}, [], "pre-commit", "advisory", 0, id="pre-commit-env"),
    pytest.param({"GITHUB_ACTIONS": "true"}, [], "pull-request", "hard", 1, id="github-actions-env"),
    pytest.param(
        {"PRE_COMMIT": "1", "GITHUB_ACTIONS": "true"}, [], "pre-commit", "advisory", 0, id="pre-commit-wins"
    ),
    pytest.param({"PRE_COMMIT": "0", "GITHUB_ACTIONS": "false"}, [], "audit", "soft", 1, id="falsy-values"),
    pytest.param(
        {"GITHUB_ACTIONS": "true"},
        ["--context", "pre-commit"],
        "pre-commit",
        "advisory",
        0,
        id="flag-beats-github",
    ),
    pytest.param({"PRE_COMMIT": "1"}, ["--context", "audit"], "audit", "soft", 1, id="flag-beats-pre-commit"),
]


@pytest.fixture(scope="module")
def context_results(run_cli_many: Any, context_portfolio: Path) -> dict[str, Any]:
    calls = [
        ["check", context_portfolio, "--as-of", AS_OF, "--format", "json", "--no-builtin", *case.values[1]]
        for case in CONTEXT_CASES
    ]
    results = run_cli_many(calls, envs=[case.values[0] for case in CONTEXT_CASES])
    return {case.id: result for case, result in zip(CONTEXT_CASES, results, strict=True)}


@pytest.mark.parametrize(("env", "args", "context", "enforcement", "code"), CONTEXT_CASES)
def test_context_detection_and_enforcement(
    context_results: dict[str, Any],
    request: pytest.FixtureRequest,
    env: dict[str, str],
    args: list[str],
    context: str,
    enforcement: str,
    code: int,
) -> None:
    result = context_results[request.node.callspec.id]
    assert result.code == code, result.stderr
    report = json.loads(result.stdout)
    assert report["context"] == context
    (found,) = [f for f in report["findings"] if f["policy_id"] == "acme.context"]
    assert found["status"] == "fail"
    assert found["enforcement"] == enforcement
    assert found["blocking"] is (code == 1)


def test_tests_run_without_ci_variables(run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    assert not [name for name in os.environ if name.startswith("GITHUB_") or name == "PRE_COMMIT"]
    monkeypatch.setenv("PRE_COMMIT", "1")
    code, stdout, _ = run_cli("check", EXAMPLE, "--as-of", AS_OF, "--format", "json", "--fail-on", "never")
    assert code == 0
    assert json.loads(stdout)["context"] == "audit", "run_cli only passes context variables given in env="


def test_text_header_names_the_context(run_cli: Any) -> None:
    code, stdout, _ = run_cli("check", EXAMPLE, "--as-of", AS_OF, env={"PRE_COMMIT": "1"})
    assert code in (0, 1)
    assert "context pre-commit" in stdout.splitlines()[0]


# ---------------------------------------------------------------------------- overrides


def test_overrides_are_listed_in_the_json_report(run_cli: Any, portfolio_dir: Path) -> None:
    portfolio = portfolio_dir / "portfolio.yaml"
    replace_once(portfolio, "canary.max-duration: {max_days: 14}", "canary.max-duration: {max_days: 21}")
    config = portfolio_dir / ".policy-engine.yaml"
    config.write_text(
        "policies:\n  overrides:\n    signoff.expiry:\n      severity: info\n",
        encoding="utf-8",
    )
    code, stdout, stderr = run_cli("check", portfolio_dir, "--as-of", AS_OF, "--format", "json", "--all")
    assert code == 1, stderr
    report = json.loads(stdout)
    report_validator().validate(report)
    overrides = {(o["policy_id"], o["setting"]): o for o in report["overrides"]}
    assert overrides[("canary.max-duration", "params.max_days")] == {
        "policy_id": "canary.max-duration",
        "setting": "params.max_days",
        "default": 14.0,
        "value": 21.0,
        "source": f"portfolio.yaml:{line_of(portfolio, 'canary.max-duration: {max_days: 21}')}",
    }
    severity = overrides[("signoff.expiry", "severity")]
    assert (severity["default"], severity["value"]) == ("warning", "info")
    assert severity["source"] == ".policy-engine.yaml:4"
    expiry = [f for f in report["findings"] if f["policy_id"] == "signoff.expiry"]
    assert expiry
    assert {f["severity"] for f in expiry} == {"info"}
    assert {p["severity"] for p in report["policies"] if p["id"] == "signoff.expiry"} == {"info"}


# ---------------------------------------------------------------------------- digest


@pytest.fixture(scope="module")
def example_digest(run_cli: Any) -> str:
    code, stdout, stderr = run_cli("digest", "doc-summarizer@1", EXAMPLE)
    assert code == 0, stderr
    assert DIGEST.fullmatch(stdout.strip())
    assert stdout.endswith("\n")
    assert stdout.count("\n") == 1, "stdout carries only the digest"
    return stdout.strip()


def test_digest_matches_the_signoffs_of_the_example(example_digest: str) -> None:
    signed = (EXAMPLE / "models" / "doc-summarizer.yaml").read_text(encoding="utf-8")
    assert f'subject_digest: "{example_digest}"' in signed


DOC = "models/doc-summarizer.yaml"

# Each edit is applied to a private copy of the example; True = the digest of doc-summarizer@1
# must change, False = it must stay the same.
DIGEST_EDITS = [
    pytest.param(DOC, [("@4c1d2e", "@4c1d2f")], True, id="artifact-uri-edited"),
    pytest.param(
        DOC, [("replicas: {min: 4, max: 8}", "replicas: {min: 3, max: 8}")], True, id="replicas-edited"
    ),
    pytest.param(
        DOC,
        [
            ('at: "2025-06-23T12:00:00Z"', 'at: "2025-06-24T12:00:00Z"'),
            ("review_id: 2011020}", "review_id: 1}"),
        ],
        False,
        id="only-signoffs-edited",
    ),
    pytest.param(
        DOC,
        [
            ('traffic_window: "720h"', 'traffic_window: "30d"'),
            ('created_at: "2025-06-20T10:00:00Z"', 'created_at: "2025-06-20T12:00:00+02:00"'),
        ],
        False,
        id="equivalent-spellings",
    ),
    pytest.param(
        DOC, [("slo: {p95_latency_ms: 4000,", "slo: {p95_latency_ms: 5000,")], False, id="model-level-edit"
    ),
    pytest.param(
        "models/fraud-scorer.yaml",
        [("    stage: deprecated", "    stage: retired")],
        False,
        id="other-model-edit",
    ),
]


@pytest.mark.parametrize(("file", "replacements", "changes"), DIGEST_EDITS)
def test_digest_binds_to_the_version_entry_without_signoffs(
    run_cli: Any,
    portfolio_dir: Path,
    example_digest: str,
    file: str,
    replacements: list[tuple[str, str]],
    changes: bool,
) -> None:
    path = portfolio_dir / file
    text = path.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)  # the first occurrence: in doc-summarizer@1
    path.write_text(text, encoding="utf-8")
    code, stdout, stderr = run_cli("digest", "doc-summarizer@1", portfolio_dir)
    assert code == 0, stderr
    assert DIGEST.fullmatch(stdout.strip())
    assert (stdout.strip() != example_digest) is changes


@pytest.mark.parametrize(
    ("target", "needle"),
    [("doc-summarizer", "expected MODEL@VERSION"), ("doc-summarizer@9", "no such model version")],
)
def test_digest_of_an_unknown_target_exits_2(run_cli: Any, target: str, needle: str) -> None:
    code, stdout, stderr = run_cli("digest", target, EXAMPLE)
    assert code == 2
    assert stdout == ""
    assert needle in stderr
    assert "Traceback" not in stderr
