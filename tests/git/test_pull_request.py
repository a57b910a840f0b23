"""Pull-request mode: base rules, old/change facts, pre-existing findings, git errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.git.conftest import (
    EVE,
    PORT,
    T0,
    Repo,
    portfolio_doc,
    production_version,
    signoff,
)

TEAM_POLICY = """\
apiVersion: policy-engine/v1
kind: Policy
metadata: {id: team.canary-controller, severity: error}
spec:
  scope: version
  match: version.stage == 'canary'
  validations:
    - expression: has(version.canary.controller.kind)
      message: canary names no controller
"""


def _describe_chat(repo: Repo) -> None:
    repo.edit("models/chat.yaml", lambda d: d.update(description="Chat assistant"))
    repo.commit("describe chat")


# ---------------------------------------------------------------------------- pre-existing


def test_pre_existing_findings_on_untouched_targets_do_not_block(repo: Repo) -> None:
    _describe_chat(repo)
    result = repo.check("--base", "main")
    assert result.code == 0, result.stderr
    overrun = result.one("canary.max-duration", "rank@2")
    assert overrun["status"] == "pre_existing"
    assert overrun["blocking"] is False
    summary = result.report["summary"]
    assert summary["by_status"]["pre_existing"] >= 1
    assert summary["blocking"] == 0
    assert result.report["base"] == repo.shas["sign chat@1 fin"]
    assert result.report["head"] == "working tree"
    assert result.probe("rank@2")["kind"] == "unchanged"


def test_touching_a_failing_target_makes_its_findings_block(repo: Repo) -> None:
    repo.edit("models/rank.yaml", lambda d: d["versions"][0]["canary"].update(traffic_percent=20))
    repo.commit("more canary traffic")
    result = repo.check("--base", "main")
    assert result.code == 1
    overrun = result.one("canary.max-duration", "rank@2")
    assert (overrun["status"], overrun["blocking"]) == ("fail", True)
    facts = result.probe("rank@2")
    assert (facts["kind"], facts["from_stage"], facts["to_stage"]) == ("modified", "canary", "canary")


def test_new_only_hides_pre_existing_findings(repo: Repo) -> None:
    _describe_chat(repo)
    result = repo.check("--base", "main", "--new-only")
    assert result.code == 0, result.stderr
    assert not result.findings("canary.max-duration")
    assert all(f["status"] != "pre_existing" for f in result.findings())
    assert result.report["summary"]["by_status"]["pre_existing"] >= 1  # still counted
    assert result.findings("probe.facts")  # new findings are still reported


# ---------------------------------------------------------------------------- change facts


def test_change_facts_of_an_added_version(repo: Repo) -> None:
    repo.edit("models/chat.yaml", lambda d: d["versions"].append(production_version("2", 900.0)))
    repo.commit("chat@2")
    result = repo.check("--base", "main")
    added = result.probe("chat@2")
    assert added["kind"] == "added"
    assert (added["from_stage"], added["to_stage"]) == ("", "production")
    assert added["delta"] == 900.0
    assert added["old_stage"] == "-"
    kept = result.probe("chat@1")
    assert (kept["kind"], kept["delta"], kept["old_stage"]) == ("unchanged", 0.0, "production")
    gate = result.one("production.entry.four-signoffs", "chat@2")
    assert gate["blocking"] is True  # a new target blocks as its enforcement says


def test_renamed_model_file_keeps_its_identity(repo: Repo) -> None:
    (repo.port / "models" / "assistants").mkdir()
    repo.git("mv", f"{PORT}/models/chat.yaml", f"{PORT}/models/assistants/chat-assistant.yaml")
    repo.commit("move chat")
    result = repo.check("--base", "main", "--signoff-verification", "git")
    assert result.code == 0, result.report.get("findings")
    facts = result.probe("chat@1")
    assert facts["kind"] == "unchanged"
    assert facts["old_stage"] == "production"
    assert facts["first_seen"] == T0  # history follows the model id, not the file
    assert {f["values"]["kind"] for f in result.findings("probe.facts")} == {"unchanged"}
    assert not result.findings("production.entry.four-signoffs")
    assert not result.findings("signoff.verified")  # the signers' own commits, before the move
    assert result.one("probe.facts", "chat@1")["location"]["file"] == (
        f"{PORT}/models/assistants/chat-assistant.yaml"
    )


def test_head_ref_and_github_base_ref(repo: Repo) -> None:
    _describe_chat(repo)
    head = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "-q", "main")
    by_ref = repo.check("--base", "main", "--head", "feature")
    assert by_ref.report["head"] == head
    assert by_ref.probe("rank@2")["kind"] == "unchanged"
    assert by_ref.one("canary.max-duration", "rank@2")["status"] == "pre_existing"
    repo.git("checkout", "-q", "feature")
    from_env = repo.check(env={"GITHUB_BASE_REF": "main"})
    assert from_env.report["base"] == repo.shas["sign chat@1 fin"]
    assert from_env.one("canary.max-duration", "rank@2")["status"] == "pre_existing"


# ---------------------------------------------------------------------------- rules from the base


def _eve() -> dict[str, Any]:
    return {"login": "eve", "name": EVE[0], "email": EVE[1], "team": "finance", "roles": ["finance"]}


def test_pull_request_adding_its_author_to_the_roster(repo: Repo) -> None:
    repo.write({"portfolio.yaml": portfolio_doc(extra_roster=[_eve()])})

    def promote(data: Any) -> None:
        version = production_version("2")
        version["signoffs"] = [signoff(login, version) for login in ("pat", "mel", "ann")]
        version["signoffs"].append(signoff("eve", version, role="finance"))
        data["versions"].append(version)

    repo.edit("models/chat.yaml", promote)
    repo.commit("eve joins finance and signs chat@2", who=EVE)
    result = repo.check("--base", "main")
    assert result.code == 1
    rules = result.one("governance.rules-changed", "portfolio")
    assert (rules["status"], rules["blocking"]) == ("fail", True)
    assert f"{PORT}/portfolio.yaml" in rules["message"]
    gate = result.one("production.entry.four-signoffs", "chat@2")
    assert "finance: signer is not in the roster with that role" in gate["message"]  # the base roster


def _reviews(path: Path, *reviews: tuple[str, str, str]) -> Path:
    path.write_text(
        json.dumps(
            [
                {
                    "id": index + 1,
                    "user": {"login": login},
                    "state": state,
                    "commit_id": commit,
                    "submitted_at": f"2025-05-03T{index:02d}:00:00Z",
                }
                for index, (login, state, commit) in enumerate(reviews)
            ]
        ),
        encoding="utf-8",
    )
    return path


def test_rules_change_needs_approvals_by_base_roster_roles(repo: Repo, tmp_path: Path) -> None:
    repo.write({"portfolio.yaml": portfolio_doc(extra_roster=[_eve()])})
    head = repo.commit("eve joins finance", who=EVE)
    base = repo.shas["sign chat@1 fin"]
    reviews = tmp_path / "reviews.json"

    def rules(*given: tuple[str, str, str]) -> dict[str, Any]:
        return repo.check("--base", "main", "--reviews", str(_reviews(reviews, *given))).one(
            "governance.rules-changed", "portfolio"
        )

    self_approved = rules(("pat", "APPROVED", head), ("eve", "APPROVED", head))
    assert self_approved["status"] == "fail"
    assert self_approved["message"].endswith("holding: finance")
    assert rules(("pat", "APPROVED", base), ("fin", "APPROVED", base))["status"] == "fail"  # stale
    withdrawn = rules(
        ("pat", "APPROVED", head), ("fin", "APPROVED", head), ("fin", "CHANGES_REQUESTED", head)
    )
    assert withdrawn["status"] == "fail"
    approved = repo.check(
        "--base",
        "main",
        "--reviews",
        str(_reviews(reviews, ("pat", "APPROVED", head), ("fin", "APPROVED", head))),
    )
    assert not approved.findings("governance.rules-changed")
    assert approved.code == 0, approved.report.get("findings")


def test_loosened_parameter_does_not_apply_in_its_own_pull_request(repo: Repo) -> None:
    repo.write({"portfolio.yaml": portfolio_doc(max_days=60)})
    repo.edit("models/rank.yaml", lambda d: d["versions"][0]["canary"].update(max_duration="1440h"))
    repo.commit("give the canary 60 days")
    result = repo.check("--base", "main")
    assert result.code == 1
    cap = result.one("canary.max-duration", "rank@2")  # 60 days declared, the base caps at 14
    assert (cap["validation"], cap["status"], cap["blocking"]) == ("declared-limit", "fail", True)
    assert cap["values"]["params.max_days"] == 14.0
    assert f"{PORT}/portfolio.yaml" in result.one("governance.rules-changed", "portfolio")["message"]
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--ff-only", "feature")
    merged = repo.check("--base", "main")  # once merged, the new parameter is the rule
    assert not merged.findings("canary.max-duration")
    assert not merged.findings("governance.rules-changed")


def test_deleted_policy_is_still_evaluated_from_the_base(repo: Repo) -> None:
    repo.git("checkout", "-q", "main")
    repo.write({"policies/team.canary-controller.yaml": TEAM_POLICY})
    repo.commit("team policy")
    repo.git("checkout", "-q", "-B", "feature")
    repo.write({"policies/team.canary-controller.yaml": None})
    repo.edit("models/rank.yaml", lambda d: d["versions"][0]["canary"].update(traffic_percent=20))
    repo.commit("drop the policy that fails my canary")
    result = repo.check("--base", "main")
    assert result.code == 1
    kept = result.one("team.canary-controller", "rank@2")
    assert (kept["status"], kept["blocking"]) == ("fail", True)
    rules = result.one("governance.rules-changed", "portfolio")
    assert f"{PORT}/policies/team.canary-controller.yaml" in rules["message"]


def test_working_tree_rules_are_not_used(repo: Repo) -> None:
    """Uncommitted edits to the rules do not apply either: the base's git objects are read."""
    repo.write({"portfolio.yaml": portfolio_doc(max_days=60)})
    result = repo.check("--base", "main")
    overrun = result.one("canary.max-duration", "rank@2")
    assert overrun["status"] == "pre_existing"
    assert overrun["values"]["params.max_days"] == 14.0
    assert result.one("governance.rules-changed", "portfolio")["status"] == "fail"


# ---------------------------------------------------------------------------- git errors


def test_unknown_ref_is_a_usage_error(repo: Repo) -> None:
    result = repo.check("--base", "no-such-branch")
    assert result.code == 2
    assert "--base no-such-branch: unknown revision" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.report == {}
    assert repo.check("--new-only").code == 2  # --new-only needs a base


def test_shallow_clone_without_the_base(repo: Repo, tmp_path: Path) -> None:
    _describe_chat(repo)
    first = repo.shas["init"]
    url = repo.root.as_uri()
    single = Repo(tmp_path / "single", repo.pack)
    repo.git("clone", "-q", "--depth", "1", "--branch", "feature", url, str(single.root))
    for base in (first, "main"):
        result = single.check("--base", base)
        assert result.code == 2, result.stderr
        assert "shallow" in result.stderr
        assert "fetch-depth: 0" in result.stderr
        assert "Traceback" not in result.stderr
    both = Repo(tmp_path / "both", repo.pack)
    repo.git("clone", "-q", "--depth", "1", "--no-single-branch", "--branch", "feature", url, str(both.root))
    result = both.check("--base", "main")
    assert result.code == 2
    assert "no merge base" in result.stderr
    assert "fetch-depth: 0" in result.stderr


def test_outside_a_git_repository(repo: Repo, tmp_path: Path) -> None:
    loose = Repo(tmp_path / "loose", repo.pack)
    shutil.copytree(repo.port, loose.port)
    result = loose.check("--base", "main")
    assert result.code == 2
    assert "not inside a git repository" in result.stderr


def test_approvals_on_the_pull_request_head_count_for_its_merge_commit(repo: Repo, tmp_path: Path) -> None:
    """GitHub checks out ``refs/pull/N/merge``; reviews name the pull request's head, its second parent."""
    repo.write({"portfolio.yaml": portfolio_doc(extra_roster=[_eve()])})
    head = repo.commit("eve joins finance", who=EVE)
    repo.git("checkout", "-q", "--detach", "main")
    repo.git("merge", "-q", "--no-ff", "feature", "-m", "Merge pull request")
    reviews = _reviews(tmp_path / "reviews.json", ("pat", "APPROVED", head), ("fin", "APPROVED", head))
    result = repo.check("--base", "main", "--reviews", str(reviews))
    assert not result.findings("governance.rules-changed")
    unreviewed = repo.check("--base", "main")
    assert unreviewed.one("governance.rules-changed", "portfolio")["status"] == "fail"
