"""Invalid input: exit 2, every problem as ``file:line:col: message``, never a traceback.

Each case writes real files over a minimal valid portfolio and names the file, the line and
the words the message must contain.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

AS_OF = "2025-06-30T00:00:00Z"

# models/m.yaml, with line numbers that the cases below rely on.
MODEL = """\
id: m
owner_team: ml
versions:
  - version: "2"
    stage: canary
    canary:
      of_version: "1"
      started_at: "2025-06-20T00:00:00Z"
      max_duration: 14d
      traffic_percent: 5
    deployments:
      - id: m-2-use1
        endpoint: m
        region: us-east-1
        traffic_percent: 5
        replicas: {min: 1, max: 2}
        accelerator: {type: nvidia-l4, count: 1}
"""


def model(old: str = "", new: str = "") -> str:
    """``MODEL`` with one line replaced (the replacement must not change the line count)."""
    if not old:
        return MODEL
    assert MODEL.count(old) == 1, old
    return MODEL.replace(old, new)


def policy(validation: str, *, policy_id: str = "acme.check", scope: str = "version") -> str:
    """A policy file whose first validation starts on line 9."""
    return (
        "apiVersion: policy-engine/v1\n"  # 1
        "kind: Policy\n"  # 2
        "metadata:\n"  # 3
        f"  id: {policy_id}\n"  # 4
        "  severity: error\n"  # 5
        "spec:\n"  # 6
        f"  scope: {scope}\n"  # 7
        "  validations:\n" + validation  # 8  # 9...
    )


OK_VALIDATION = '    - expression: "true"\n      message: ok\n'

EXCEPTION = """\
exceptions:
  - id: EXC-1
    policy: canary.max-duration
    target: "m@2"
    reason: Waiting for the load test
    created_at: "2025-06-20T00:00:00Z"
    expires_at: "2025-07-20T00:00:00Z"
"""

# portfolio.yaml, with policy parameters on line 10.
PORTFOLIO = """\
schema_version: 1
kind: InferencePortfolio
portfolio: {id: test, name: Test portfolio, currency: USD}
roster:
  - {login: pat, name: Pat, team: platform, roles: [platform]}
  - {login: fin, name: Fin, team: finops, roles: [finance]}
rates:
  gpu_hour: {nvidia-l4: 0.7}
policy_params:
  acme.check: {max_pct: 20}
"""

PARAM_POLICY = policy(
    "    - expression: version.canary.traffic_percent <= params.max_pct\n      message: too much\n"
).replace("spec:\n", "spec:\n  params: {max_pct: {default: 50}}\n")

M = "models/m.yaml"
P = "portfolio.yaml"
POL = "policies/check.yaml"

CASES: list[Any] = [
    # --- YAML itself
    pytest.param(
        {M: "id: m\nowner_team: ml\n  bad: indent\nversions: []\n"},
        M,
        3,
        ["invalid YAML", "mapping values are not allowed"],
        id="broken-yaml",
    ),
    pytest.param(
        {M: 'id: m\nowner_team: ml\nversions:\n  - version: "1"\n   stage: canary\n'},
        M,
        5,
        ["invalid YAML", "expected '-' indicator"],
        id="broken-yaml-indentation",
    ),
    pytest.param(
        {M: model("      max_duration: 14d\n", '      started_at: "2025-06-21T00:00:00Z"\n')},
        M,
        9,
        ["duplicate key 'started_at'", "first defined on line 8", "$.versions[0].canary.started_at"],
        id="duplicate-key",
    ),
    pytest.param({M: ""}, M, 1, ["file is empty"], id="empty-file"),
    pytest.param({M: "# to be written\n"}, M, 1, ["file is empty"], id="comment-only-file"),
    pytest.param(
        {M: b"id: m\nowner_team: ml\ndescription: caf\xe9 au lait\nversions: []\n"},
        M,
        3,
        ["invalid UTF-8 byte 0xe9", "expected UTF-8"],
        id="non-utf8-file",
    ),
    pytest.param({M: "- id: m\n- id: n\n"}, M, 1, ["top level is not a mapping"], id="top-level-list"),
    pytest.param(
        {M: "id: m\nowner_team: ml\n---\nid: n\n"},
        M,
        3,
        ["invalid YAML", "single document", "another document"],
        id="two-documents",
    ),
    pytest.param(
        {M: "id: m\nowner_team: ml\nversions: []\nregistry: !!python/object:os.system {kind: hf}\n"},
        M,
        4,
        ["unsupported YAML tag", "python/object"],
        id="unsafe-tag",
    ),
    pytest.param(
        {M: "id: m\nowner_team: ml\n42: answer\n"},
        M,
        3,
        ["mapping key '42' is not a string", "quote it"],
        id="non-string-key",
    ),
    # --- schema: types, fields, values
    pytest.param(
        {M: model("owner_team: ml\n", "owner_team: 5\n")},
        M,
        2,
        ["expected a valid string", "got int 5", "$.owner_team"],
        id="wrong-type-string",
    ),
    pytest.param(
        {M: model("\n      traffic_percent: 5\n", "\n      traffic_percent: lots\n")},
        M,
        10,
        ["expected a number", "$.versions[0].canary.traffic_percent"],
        id="wrong-type-number",
    ),
    pytest.param(
        {M: model("        replicas: {min: 1, max: 2}\n", "        replicas: {min: -1, max: 2}\n")},
        M,
        16,
        ["greater than or equal to 0", "$.versions[0].deployments[0].replicas.min"],
        id="negative-count",
    ),
    pytest.param(
        {M: model("owner_team: ml\n", "owner_tem: ml\n")},
        M,
        2,
        ["unknown field 'owner_tem'", "did you mean 'owner_team'?"],
        id="unknown-field",
    ),
    pytest.param(
        {M: model("      max_duration: 14d\n", "      max_duraton: 14d\n")},
        M,
        9,
        ["unknown field 'max_duraton'", "did you mean 'max_duration'?", "$.versions[0].canary"],
        id="unknown-nested-field",
    ),
    pytest.param(
        {M: model('      started_at: "2025-06-20T00:00:00Z"\n', "      controller: {kind: argo, ref: x}\n")},
        M,
        6,
        ["missing required field 'started_at'", "$.versions[0].canary.started_at"],
        id="missing-field",
    ),
    pytest.param(
        {M: model('"2025-06-20T00:00:00Z"', '"2025-06-20 00:00"')},
        M,
        8,
        ["'2025-06-20 00:00'", "no time zone", "add Z"],
        id="timestamp-without-zone",
    ),
    pytest.param(
        {M: model('"2025-06-20T00:00:00Z"', '"2025-02-30T00:00:00Z"')},
        M,
        8,
        ["'2025-02-30T00:00:00Z'", "not a real date"],
        id="timestamp-impossible-date",
    ),
    pytest.param(
        {M: model('"2025-06-20T00:00:00Z"', '"last tuesday"')},
        M,
        8,
        ["'last tuesday' is not an RFC 3339 timestamp"],
        id="timestamp-garbage",
    ),
    pytest.param(
        {M: model("max_duration: 14d", "max_duration: 14 days")},
        M,
        9,
        ["'14 days' is not a duration", "'14d'"],
        id="bad-duration",
    ),
    pytest.param(
        {M: model('  - version: "2"\n', "  - version: 8\n")},
        M,
        4,
        ["a version is a string", "quote it", '"8"'],
        id="version-as-number",
    ),
    pytest.param(
        {M: model('  - version: "2"\n', "  - version: 1.10\n")},
        M,
        4,
        ["quote it", "1.10 would read as 1.1"],
        id="version-as-float",
    ),
    pytest.param(
        {M: model("    stage: canary\n", "    stage: canry\n")},
        M,
        5,
        ["'canry' is not allowed", "'canary'", "$.versions[0].stage"],
        id="unknown-stage",
    ),
    pytest.param(
        {M: model("    stage: canary\n", "    stage: prodution\n")},
        M,
        5,
        ["'prodution' is not allowed; did you mean 'production'?", "$.versions[0].stage"],
        id="misspelt-stage-suggestion",
    ),
    pytest.param(
        {P: "schema_version: 2\nkind: InferencePortfolio\n"},
        P,
        1,
        ["2 is not allowed", "$.schema_version"],
        id="portfolio-schema-version",
    ),
    pytest.param({P: None}, P, 1, ["portfolio.yaml not found"], id="no-portfolio-file"),
    # --- identities
    pytest.param(
        {"models/n.yaml": "# a copy under another file name\n" + MODEL.replace("m-2-use1", "n-2-use1")},
        "models/n.yaml",
        2,
        ["model id 'm' is also defined in models/m.yaml"],
        id="duplicate-model-id",
    ),
    pytest.param(
        {M: MODEL + '  - version: "2"\n    stage: retired\n'},
        M,
        18,
        ["version '2' of m is listed twice"],
        id="duplicate-version",
    ),
    pytest.param(
        {"models/n.yaml": MODEL.replace("id: m\n", "id: n\n")},
        "models/n.yaml",
        12,
        ["deployment id 'm-2-use1' is also used by m@2"],
        id="duplicate-deployment-id",
    ),
    # --- exceptions.yaml and .policy-engine.yaml
    pytest.param(
        {"exceptions.yaml": EXCEPTION.replace('"2025-07-20T00:00:00Z"', "2025-07-20")},
        "exceptions.yaml",
        7,
        ["'2025-07-20' is not an RFC 3339 timestamp", "$.exceptions[0].expires_at"],
        id="exception-date-only",
    ),
    pytest.param(
        {"exceptions.yaml": EXCEPTION + "    match: version.stage == 'canary'\n"},
        "exceptions.yaml",
        2,
        ["exactly one of 'target' or 'match'"],
        id="exception-target-and-match",
    ),
    pytest.param(
        {"exceptions.yaml": EXCEPTION.replace('    target: "m@2"\n', "    match: version.stage ==\n")},
        "exceptions.yaml",
        4,
        ["CEL", "Syntax error"],
        id="exception-match-cel-error",
    ),
    pytest.param(
        {".policy-engine.yaml": "policies:\n  disabel: [canary.max-duration]\n"},
        ".policy-engine.yaml",
        2,
        ["unknown field 'disabel'", "did you mean 'disable'?"],
        id="config-unknown-field",
    ),
    # --- policy_params (acme.check declares max_pct)
    pytest.param(
        {P: PORTFOLIO.replace("  acme.check:", "  acme.chek:"), POL: PARAM_POLICY},
        P,
        10,
        ["no loaded policy has id 'acme.chek'", "did you mean 'acme.check'?"],
        id="policy-params-unknown-policy",
    ),
    pytest.param(
        {P: PORTFOLIO.replace("{max_pct: 20}", "{max_pc: 20}"), POL: PARAM_POLICY},
        P,
        10,
        ["acme.check has no parameter 'max_pc'", "did you mean 'max_pct'?"],
        id="policy-params-unknown-param",
    ),
    pytest.param(
        {P: PORTFOLIO.replace("{max_pct: 20}", "{max_pct: twenty}"), POL: PARAM_POLICY},
        P,
        10,
        ["parameter 'max_pct' of acme.check is a string", "a number"],
        id="policy-params-wrong-type",
    ),
    # --- policy files
    pytest.param(
        {
            POL: policy(
                "    - expression: >-\n"  # 9
                "        version.stage == 'canary' &&\n"  # 10
                "        version.canary.traffic_percent < 50.0 )\n"  # 11
                "      message: Canary traffic is capped\n"
            )
        },
        POL,
        11,
        ["CEL", "Syntax error", "$.spec.validations[0].expression"],
        id="cel-syntax-error",
    ),
    pytest.param(
        {POL: policy("    - expression: \"verison.stage == 'canary'\"\n      message: typo\n")},
        POL,
        9,
        ["CEL", "undeclared reference to 'verison"],
        id="cel-undeclared-variable",
    ),
    pytest.param(
        {POL: policy("    - expression: version.stage + '!'\n      message: not a bool\n")},
        POL,
        9,
        ["expression gives string, expected bool"],
        id="cel-not-boolean",
    ),
    pytest.param(
        {
            POL: policy(
                "    - expression: version.stage == 'canary'\n"
                "      message: x\n"
                "      messageExpression: 1 + 2\n"
            )
        },
        POL,
        11,
        ["expression gives int, expected string", "messageExpression"],
        id="cel-message-not-string",
    ),
    pytest.param(
        {
            POL: policy(
                "    - expression: version.canary.traffic_percent < params.max_pct\n      message: x\n"
            )
        },
        POL,
        9,
        ["unknown parameter 'max_pct'"],
        id="cel-unknown-parameter",
    ),
    pytest.param(
        {POL: policy("    - expression: variables.age > duration('1h')\n      message: x\n")},
        POL,
        9,
        ["unknown or later variable 'age'"],
        id="cel-unknown-variable",
    ),
    pytest.param(
        {POL: policy("    - expression: \"cel.bind(s, version.stage, s != 'x')\"\n      message: x\n")},
        POL,
        9,
        ["cel.bind is not part of it", "declare a variable under spec.variables"],
        id="cel-not-portable-bind",
    ),
    pytest.param(
        {
            POL: policy(
                '    - expression: "has(version.canary) && version.?canary.hasValue()"\n      message: x\n'
            )
        },
        POL,
        9,
        ["optional field syntax is not part of it", "guard the field with has()"],
        id="cel-not-portable-optional",
    ),
    pytest.param(
        {POL: policy("    - expression: \"'%s'.format([version.stage]) != ''\"\n      message: x\n")},
        POL,
        9,
        ["string format() is not part of it", "join with + and fmt()"],
        id="cel-not-portable-format",
    ),
    pytest.param(
        {POL: policy(OK_VALIDATION, scope="versions")},
        POL,
        7,
        ["'versions' is not allowed", "'version'", "$.spec.scope"],
        id="policy-unknown-scope",
    ),
    pytest.param(
        {POL: policy('    - expression: "true"\n')},
        POL,
        9,
        ["missing required field 'message'"],
        id="policy-missing-message",
    ),
    pytest.param(
        {POL: policy(OK_VALIDATION).replace("kind: Policy", "kind: Polcy")},
        POL,
        2,
        ["'Polcy' is not allowed", "'Policy'"],
        id="policy-wrong-kind",
    ),
    pytest.param(
        {POL: policy(OK_VALIDATION, policy_id="Check")},
        POL,
        4,
        ["should match pattern", "$.metadata.id"],
        id="policy-id-not-namespaced",
    ),
    pytest.param(
        {POL: policy(OK_VALIDATION), "policies/copy.yaml": policy(OK_VALIDATION)},
        "policies/copy.yaml",
        4,
        ["policy id 'acme.check' is also defined in policies/check.yaml"],
        id="duplicate-policy-id",
    ),
]


def _error_lines(stderr: str, file: str, line: int) -> list[str]:
    pattern = re.compile(rf"^(?:\S*/)?{re.escape(file)}:{line}:\d+: ")
    return [text for text in stderr.splitlines() if pattern.match(text)]


@pytest.fixture(scope="module")
def case_results(
    tmp_path_factory: pytest.TempPathFactory, portfolio_builder: Any, run_cli_many: Any
) -> dict[str, Any]:
    """Every case in its own portfolio, each checked by its own subprocess, run concurrently."""
    base = tmp_path_factory.mktemp("bad-input")
    roots = [
        portfolio_builder(base / case.id, models={"m.yaml": MODEL}, files=case.values[0]) for case in CASES
    ]
    results = run_cli_many([["check", root, "--as-of", AS_OF] for root in roots])
    return {case.id: result for case, result in zip(CASES, results, strict=True)}


@pytest.mark.parametrize(("files", "file", "line", "needles"), CASES)
def test_bad_input_exits_2_with_located_message(
    case_results: dict[str, Any],
    request: pytest.FixtureRequest,
    files: dict[str, Any],
    file: str,
    line: int,
    needles: list[str],
) -> None:
    case_id = request.node.callspec.id
    code, stdout, stderr = case_results[case_id]
    assert code == 2, stderr
    assert "Traceback" not in stderr + stdout
    assert stdout == "", "no report may be printed for invalid input"
    matching = _error_lines(stderr, file, line)
    assert matching, f"no error at {file}:{line} in:\n{stderr}"
    assert any(all(needle in text for needle in needles) for text in matching), (
        f"expected {needles} in one of {matching}"
    )
    assert "nothing was evaluated" in stderr
    located = [text for text in stderr.splitlines() if re.match(r"^\S+:\d+:\d+: ", text)]
    others = [text for text in located if not re.match(rf"^(?:\S*/)?{re.escape(file)}:", text)]
    assert not others, "only the broken file is reported (the built-in pack still compiles)"


def test_cases_are_many_and_distinct() -> None:
    ids = [case.id for case in CASES]
    assert len(set(ids)) == len(ids)
    assert len(ids) >= 15


def test_every_input_error_of_a_run_is_reported(run_cli: Any, write_portfolio: Any) -> None:
    root = write_portfolio(
        models={
            "a.yaml": model("owner_team: ml\n", "owner_team: [ml\n"),
            "b.yaml": MODEL.replace("id: m\n", "id: b\n").replace("14d", "two weeks"),
        },
        files={"policies/check.yaml": policy("    - expression: version.stage ==\n      message: x\n")},
    )
    code, stdout, stderr = run_cli("check", root, "--as-of", AS_OF)
    assert code == 2
    assert stdout == ""
    assert "Traceback" not in stderr
    assert _error_lines(stderr, "models/a.yaml", 3), stderr
    assert any("'two weeks' is not a duration" in t for t in _error_lines(stderr, "models/b.yaml", 9)), stderr
    assert any("CEL" in t for t in _error_lines(stderr, "policies/check.yaml", 9)), stderr
    assert "3 input errors; nothing was evaluated." in stderr


def test_validate_reports_the_same_errors(run_cli: Any, write_portfolio: Any) -> None:
    root = write_portfolio(models={"m.yaml": model('  - version: "2"\n', "  - version: 8\n")})
    code, stdout, stderr = run_cli("validate", root)
    assert code == 2
    assert stdout == ""
    assert any("quote it" in text for text in _error_lines(stderr, "models/m.yaml", 4)), stderr


def test_every_error_of_one_file_is_reported(run_cli: Any, write_portfolio: Any) -> None:
    text = model("owner_team: ml\n", "owner_team: 7\n").replace("stage: canary", "stage: canry")
    root = write_portfolio(models={"m.yaml": text})
    code, _, stderr = run_cli("check", root, "--as-of", AS_OF)
    assert code == 2
    assert _error_lines(stderr, "models/m.yaml", 2)
    assert _error_lines(stderr, "models/m.yaml", 5)
    assert "2 input errors" in stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--as-of", "yesterday"], "--as-of: 'yesterday' is not an RFC 3339 timestamp"),
        (["--as-of", "2025-06-30T00:00:00"], "no time zone"),
        (["--format", "xml"], "unknown format 'xml'"),
        (["--format", "json", "--format", "text"], "at most one --format may go to stdout"),
        (["--cel-backend", "java"], "Invalid value for '--cel-backend'"),
        (["--fail-on", "sometimes"], "Invalid value for '--fail-on'"),
    ],
    ids=["as-of-garbage", "as-of-no-zone", "unknown-format", "two-stdout-formats", "backend", "fail-on"],
)
def test_bad_command_line_exits_2(run_cli: Any, args: list[str], needle: str) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "acme-portfolio"
    code, stdout, stderr = run_cli("check", example, *args)
    assert code == 2
    assert needle in stderr
    assert stdout == ""
    assert "Traceback" not in stderr


def test_missing_portfolio_directory_exits_2(run_cli: Any, tmp_path: Path) -> None:
    code, _, stderr = run_cli("check", tmp_path / "nowhere")
    assert code == 2
    assert "no such directory" in stderr
    assert "Traceback" not in stderr
