"""``policy-engine audit``: golden reports on a scripted two-quarter history, determinism,
self-contained HTML, git semantics (the commit before the quarter end, "no data" trends),
audits without residency, exceptions decided by ``waivers.assess``, formats and streams.

Regenerate the golden reports after an intended change, and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/audit
"""

from __future__ import annotations

import difflib
import io
import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from policy_engine.commands.audit import Progress
from tests.audit.conftest import AuditRepo
from tests.conftest import EXAMPLE, REPO_ROOT, CliResult, run_policy_engine

GOLDEN = Path(__file__).resolve().parent / "golden"
REGENERATE = "UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/audit"
FORMATS = {"markdown": "acme-2025Q2.md", "json": "acme-2025Q2.json", "html": "acme-2025Q2.html"}


def audit(*args: str | Path) -> CliResult:
    return run_policy_engine("audit", *args)


def audit_json(*args: str | Path) -> dict[str, Any]:
    result = audit(*args, "--format", "json")
    assert result.code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def render_all(portfolio: Path, out: Path) -> dict[str, bytes]:
    """One run of the Q2 audit: Markdown on stdout, JSON and HTML to files."""
    out.mkdir(parents=True, exist_ok=True)
    result = audit(
        portfolio,
        "--quarter",
        "2025Q2",
        "--format",
        "markdown",
        "--format",
        f"json={out / 'report.json'}",
        "--format",
        f"html={out / 'report.html'}",
    )
    assert result.code == 0, result.stderr
    assert result.stderr == "", "nothing but errors may go to stderr when it is not a terminal"
    return {
        "markdown": result.stdout.encode("utf-8"),
        "json": (out / "report.json").read_bytes(),
        "html": (out / "report.html").read_bytes(),
    }


@pytest.fixture(scope="module")
def q2(audit_repo: AuditRepo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return render_all(audit_repo.portfolio, tmp_path_factory.mktemp("q2-first"))


@pytest.fixture(scope="module")
def q2_json(q2: dict[str, bytes]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(q2["json"])
    return data


# ---------------------------------------------------------------------------- golden and determinism


def _diff(expected: bytes, actual: bytes, name: str) -> str:
    lines = difflib.unified_diff(
        expected.decode("utf-8").splitlines(keepends=True),
        actual.decode("utf-8").splitlines(keepends=True),
        fromfile=f"golden/{name}",
        tofile="policy-engine audit",
        n=2,
    )
    text = "".join(lines)
    return text if len(text) < 6000 else text[:6000] + "\n… (diff truncated)\n"


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_report_matches_golden_file(q2: dict[str, bytes], fmt: str) -> None:
    name = FORMATS[fmt]
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        golden.write_bytes(q2[fmt])
        return
    assert golden.is_file(), f"golden/{name} is missing; create it with:\n    {REGENERATE}"
    expected = golden.read_bytes()
    if q2[fmt] != expected:
        pytest.fail(
            f"the 2025Q2 {fmt} audit no longer matches golden/{name}. If the change is intended, "
            f"regenerate and review:\n    {REGENERATE}\n\n{_diff(expected, q2[fmt], name)}",
            pytrace=False,
        )


def test_two_runs_give_identical_bytes(q2: dict[str, bytes], audit_repo: AuditRepo, tmp_path: Path) -> None:
    again = render_all(audit_repo.portfolio, tmp_path / "second")
    for fmt, first in q2.items():
        assert again[fmt] == first, f"{fmt} differs between two runs on the same inputs"


def test_the_json_report_validates_against_the_published_schema(q2_json: dict[str, Any]) -> None:
    schema = json.loads((REPO_ROOT / "schemas" / "audit.schema.json").read_text(encoding="utf-8"))
    jsonschema.validators.validator_for(schema)(schema).validate(q2_json)
    assert q2_json["schema_version"] == 1
    assert q2_json["kind"] == "audit"
    assert q2_json["context"] == "audit"


def test_no_absolute_paths_or_timings(q2: dict[str, bytes], audit_repo: AuditRepo) -> None:
    for fmt, data in q2.items():
        text = data.decode("utf-8")
        assert str(audit_repo.root) not in text, fmt
        assert str(REPO_ROOT) not in text, fmt
        assert "elapsed" not in text.lower(), fmt


# ---------------------------------------------------------------------------- HTML


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, name, value) for name, value in attrs]


def test_html_parses_and_holds_charts_and_tables(q2: dict[str, bytes]) -> None:
    parser = _Collector()
    parser.feed(q2["html"].decode("utf-8"))
    parser.close()
    assert parser.tags[0] == "html"
    assert parser.tags.count("svg") >= 3  # cost by team, cost by stage across the quarter, warm floor trend
    assert parser.tags.count("table") >= 10
    html = q2["html"].decode("utf-8")
    for title in ("Residency cost by owner team", "Residency cost by stage, per month", "Warm GPU floor"):
        assert f"<title>{title}" in html, title


def test_html_is_self_contained(q2: dict[str, bytes]) -> None:
    parser = _Collector()
    html = q2["html"].decode("utf-8")
    parser.feed(html)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(parser.tags)
    for tag, name, value in parser.attributes:
        if name in ("href", "src"):
            assert (value or "").startswith("#"), f"<{tag} {name}={value!r}> leaves the file"
    assert "url(" not in html
    assert "@import" not in html
    assert html.count("http") == html.count('xmlns="http://www.w3.org/2000/svg"')


# ---------------------------------------------------------------------------- git semantics


def test_manifest_is_the_last_commit_before_the_quarter_end(
    q2_json: dict[str, Any], audit_repo: AuditRepo
) -> None:
    provenance = q2_json["provenance"]
    assert provenance["manifest"]["pinned"] is True
    assert provenance["manifest"]["commit"] == audit_repo.commits["q2"]
    assert provenance["previous_manifest"]["commit"] == audit_repo.commits["q1"]
    assert q2_json["evidence"]["manifest_commit"] == audit_repo.commits["q2"]
    # HEAD retired fraud-scorer@11 after the quarter; the Q2 review still sees it deprecated
    past = {row["target"]: row for row in q2_json["past_exit"]}
    assert past["fraud-scorer@11"]["stage"] == "deprecated"
    manifest_files = [f for f in q2_json["evidence"]["files"] if f["role"] == "manifest"]
    assert manifest_files
    assert {f["commit"] for f in manifest_files} == {audit_repo.commits["q2"]}
    assert all(f["path"].startswith("inference/") for f in manifest_files)


def test_trends_against_the_previous_quarter(q2_json: dict[str, Any], audit_repo: AuditRepo) -> None:
    summary = q2_json["summary"]
    assert summary["warm_gpu_floor"]["value"] == 55
    assert summary["warm_gpu_floor"]["previous"] == 35
    assert summary["warm_gpu_floor"]["change"] == 20
    assert summary["residency_cost"]["previous"] is not None
    assert summary["open_blocking_findings"]["previous"] is not None
    churn = q2_json["churn"]
    assert churn["available"] is True
    kinds = {t["target"]: t["kind"] for t in churn["transitions"]}
    assert kinds["fraud-scorer@12"] == "entered"
    assert kinds["support-intent-classifier@8"] == "entered"
    assert kinds["embedding-encoder@1"] == "exited"
    assert kinds["doc-summarizer@1"] == "added"
    assert (churn["entered"], churn["exited"]) == (4, 2)
    trend = [(p["at"][:10], p["commit"], p["warm_gpus"]) for p in churn["floor_trend"]]
    assert trend[0] == ("2025-04-01", audit_repo.commits["q1"], 35)
    assert trend[2][1] == audit_repo.commits["mid"]
    assert trend[-1] == ("2025-07-01", audit_repo.commits["q2"], 55)
    governance = q2_json["governance"]
    assert governance["opened"] is not None
    assert governance["closed"] is not None


def test_no_commit_before_the_previous_quarter_means_no_data(audit_repo: AuditRepo) -> None:
    data = audit_json(audit_repo.portfolio, "--quarter", "2025Q1")
    assert data["provenance"]["manifest"]["commit"] == audit_repo.commits["q1"]
    assert data["provenance"]["previous_manifest"] is None
    assert data["provenance"]["previous_note"].startswith("no data: no commit before 2025-01-01T00:00:00Z")
    assert data["churn"]["available"] is False
    assert data["summary"]["warm_gpu_floor"]["previous"] is None
    assert any("Trends against 2024Q4" in note for note in data["missing"])


def test_no_commit_for_the_quarter_is_a_usage_error(audit_repo: AuditRepo) -> None:
    result = audit(audit_repo.portfolio, "--quarter", "2024Q4")
    assert result.code == 2
    assert "no commit before 2025-01-01T00:00:00Z" in result.stderr
    assert "--working-tree" in result.stderr
    assert result.stdout == ""


def test_working_tree_audits_the_files_on_disk(audit_repo: AuditRepo) -> None:
    data = audit_json(audit_repo.portfolio, "--quarter", "2025Q2", "--working-tree")
    manifest = data["provenance"]["manifest"]
    assert manifest["pinned"] is False
    assert manifest["commit"] is None
    assert "not pinned to a commit" in manifest["note"]
    # the working tree is HEAD: fraud-scorer@11 has been retired there
    assert "fraud-scorer@11" not in {row["target"] for row in data["past_exit"]}
    assert "--working-tree" in data["evidence"]["command"]


def test_a_custom_range(audit_repo: AuditRepo) -> None:
    data = audit_json(audit_repo.portfolio, "--since", "2025-06-01", "--until", "2025-07-01")
    assert data["period"] == {
        "label": "2025-06-01..2025-06-30",
        "kind": "range",
        "start": "2025-06-01T00:00:00Z",
        "end": "2025-07-01T00:00:00Z",
        "days": 30,
    }
    assert data["previous_period"]["start"] == "2025-05-02T00:00:00Z"
    assert data["provenance"]["manifest"]["commit"] == audit_repo.commits["q2"]
    assert data["provenance"]["days_with_data"] == 29


# ---------------------------------------------------------------------------- no residency


def test_without_residency_the_governance_sections_remain(example_without_residency: Path) -> None:
    result = audit(example_without_residency, "--quarter", "2025Q2")
    assert result.code == 0, result.stderr
    text = result.stdout
    for heading in (
        "## Executive summary",
        "## Versions past their exit criteria",
        "## Governance health",
        "## Churn and trend",
        "## Decisions requested",
    ):
        assert heading in text
    assert "No measured residency: there are no residency records under residency/" in text
    assert "not pinned to a commit (not inside a git repository)" in text
    data = audit_json(example_without_residency, "--quarter", "2025Q2")
    assert data["summary"]["residency_cost"]["value"] is None
    assert data["summary"]["lifecycle_overhead_share"]["note"].startswith("share of the declared warm floor")
    assert data["teams"]["owners"][0]["cost"] is None
    assert {row["target"] for row in data["past_exit"]} == {
        "assistant-llm-small@1",
        "fraud-scorer@11",
        "support-intent-classifier@8",
    }
    assert data["governance"]["exceptions"][0]["state"] == "active"
    assert data["idle"]["rows"] == []
    assert data["attribution"]["total_cost"] is None
    assert data["attribution"]["gaps"] == [
        {"target": "doc-summarizer@1/docsum-v1-euw1", "missing": ["cost_center"]}
    ]


# ---------------------------------------------------------------------------- exceptions


def _exceptions(root: Path, entries: list[dict[str, Any]]) -> None:
    (root / "exceptions.yaml").write_text(
        yaml.safe_dump({"exceptions": entries}, sort_keys=False), encoding="utf-8"
    )


def _approvals(at: str, expires: str) -> list[dict[str, Any]]:
    digest = "sha256:" + "0" * 63 + "7"
    return [
        {
            "role": role,
            "by": login,
            "at": at,
            "expires_at": expires,
            "scope": {"kind": "retention_exception", "subject_digest": digest},
        }
        for role, login in (("platform", "tomasz-k"), ("finance", "marta-f"))
    ]


def test_exception_states_are_decided_by_assess(example_without_residency: Path) -> None:
    _exceptions(
        example_without_residency,
        [
            {
                "id": "EXC-EXPIRING",
                "policy": "production.entry.four-signoffs",
                "target": "search-reranker@3",
                "reason": "re-approval in progress",
                "created_at": "2025-06-16T09:00:00Z",
                "expires_at": "2025-07-20T00:00:00Z",
                "signoffs": _approvals("2025-06-16T09:00:00Z", "2025-07-20T00:00:00Z"),
            },
            {
                "id": "EXC-EXPIRED",
                "policy": "canary.max-duration",
                "target": "support-intent-classifier@8",
                "reason": "extended trial",
                "created_at": "2025-05-01T00:00:00Z",
                "expires_at": "2025-06-01T00:00:00Z",
                "signoffs": _approvals("2025-05-01T00:00:00Z", "2025-06-01T00:00:00Z"),
            },
            {
                "id": "EXC-UNAPPROVED",
                "policy": "exit.deprecated-retire-by",
                "target": "fraud-scorer@11",
                "reason": "waiting for traffic to drain",
                "created_at": "2025-06-20T00:00:00Z",
                "expires_at": "2025-08-01T00:00:00Z",
                "signoffs": _approvals("2025-06-20T00:00:00Z", "2025-08-01T00:00:00Z")[:1],
            },
        ],
    )
    data = audit_json(example_without_residency, "--quarter", "2025Q2")
    states = {e["id"]: e for e in data["governance"]["exceptions"]}
    assert states["EXC-EXPIRING"]["state"] == "expiring"
    assert states["EXC-EXPIRING"]["waived"] == 1
    assert states["EXC-EXPIRED"]["state"] == "expired"
    assert states["EXC-UNAPPROVED"]["state"] == "inactive"
    assert states["EXC-UNAPPROVED"]["problems"] == ["no approval from finance"]
    past = {row["target"]: row for row in data["past_exit"]}
    assert past["fraud-scorer@11"]["status"] == "open"  # an inactive exception waives nothing
    decided = {d["target"] for d in data["decisions"] if d["kind"] == "exception"}
    assert decided == {"exception:EXC-EXPIRING", "exception:EXC-EXPIRED", "exception:EXC-UNAPPROVED"}


# ---------------------------------------------------------------------------- exit codes, formats, streams


def test_fail_on_defaults_to_never(example_without_residency: Path) -> None:
    assert audit(example_without_residency, "--quarter", "2025Q2", "--format", "json").code == 0
    blocked = audit(
        example_without_residency, "--quarter", "2025Q2", "--format", "json", "--fail-on", "error"
    )
    assert blocked.code == 1
    assert json.loads(blocked.stdout)["exit_code"] == 1


def test_files_only_leave_stdout_empty(example_without_residency: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "review.html"
    result = audit(example_without_residency, "--quarter", "2025Q2", "--format", f"html={target}")
    assert result.code == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_output_names_the_file_of_the_stdout_format(example_without_residency: Path, tmp_path: Path) -> None:
    target = tmp_path / "review.md"
    result = audit(example_without_residency, "--quarter", "2025Q2", "--output", target)
    assert result.code == 0
    assert result.stdout == ""
    assert target.read_text(encoding="utf-8").startswith("# Quarterly portfolio review")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "sarif"], "unknown format 'sarif'"),
        (["--format", "json", "--format", "html"], "at most one --format"),
        (["--quarter", "2999Q1"], "has not ended yet"),
        (["--quarter", "2025Q2", "--since", "2025-01-01"], "cannot be combined"),
    ],
)
def test_usage_errors_exit_2(example_without_residency: Path, args: list[str], message: str) -> None:
    extra = [] if "--quarter" in args else ["--quarter", "2025Q2"]
    result = audit(example_without_residency, *extra, *args)
    assert result.code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_input_errors_exit_2_with_locations(example_without_residency: Path) -> None:
    portfolio = example_without_residency / "portfolio.yaml"
    portfolio.write_text(
        portfolio.read_text(encoding="utf-8").replace("currency: USD", "currency: dollars"), encoding="utf-8"
    )
    result = audit(example_without_residency, "--quarter", "2025Q2")
    assert result.code == 2
    assert "portfolio.yaml:" in result.stderr
    assert "currency" in result.stderr
    assert "Traceback" not in result.stderr


def test_progress_is_one_erased_line() -> None:
    stream = io.StringIO()
    progress = Progress(stream)
    progress("reading")
    progress("evaluating")
    progress.clear()
    assert stream.getvalue() == "\r\x1b[Kaudit [1] reading…\r\x1b[Kaudit [2] evaluating…\r\x1b[K"
    silent = Progress(None)
    silent("nothing")
    silent.clear()


def test_the_example_audit_runs_from_the_repository(tmp_path: Path) -> None:
    copy = tmp_path / "acme"
    shutil.copytree(EXAMPLE, copy)
    result = audit(copy, "--quarter", "2025Q2", "--format", "json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["summary"]["residency_cost"]["value"] > 0
    assert data["provenance"]["days_with_data"] == 30
