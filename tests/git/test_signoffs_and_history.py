"""Sign-off verification (git, github-reviews, declared) and history facts in real repositories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.git.conftest import PEOPLE, ROLES, T0, Repo, clock_policy, production_version


def _add_chat_2(repo: Repo) -> str:
    repo.edit("models/chat.yaml", lambda d: d["versions"].append(production_version("2", 900.0)))
    return repo.commit("chat@2", who=PEOPLE["mel"][:2])


def test_git_mode_rejects_a_signoff_committed_by_someone_else(repo: Repo) -> None:
    _add_chat_2(repo)
    for login in ("pat", "mel", "ann"):
        repo.sign("chat", "2", login)
    repo.sign("chat", "2", "fin", who=PEOPLE["ann"][:2])  # ann types fin's approval
    result = repo.check("--base", "main", "--signoff-verification", "git")
    assert result.code == 1
    forged = result.one("signoff.verified", "chat@2/signoff:finance:fin")
    assert forged["status"] == "fail"
    assert "by Ann App <ann@example.com>, not by fin" in forged["message"]
    gate = result.one("production.entry.four-signoffs", "chat@2")
    assert gate["blocking"] is True
    assert "finance: sign-off not verified (git: added in" in gate["message"]
    for login in ("pat", "mel", "ann"):
        assert not result.findings("signoff.verified", f"chat@2/signoff:{ROLES[login]}:{login}")
    assert not result.findings("production.entry.four-signoffs", "chat@1")

    declared = repo.check("--base", "main")  # the default: trusted, reported as unverified
    assert declared.code == 0, declared.report.get("findings")
    claim = declared.one("signoff.verified", "chat@2/signoff:finance:fin")
    assert claim["message"].endswith(
        "not verified: declared: trusted as written; not checked against git or reviews"
    )
    assert (claim["status"], claim["blocking"], claim["enforcement"]) == ("fail", False, "advisory")
    assert declared.one("signoff.verified", "chat@1/signoff:finance:fin")["status"] == "pre_existing"


def test_git_mode_without_a_commit_and_in_a_plain_check(repo: Repo) -> None:
    _add_chat_2(repo)
    for login in PEOPLE:
        repo.sign("chat", "2", login)

    def renew(data: Any) -> None:
        signoffs = data["versions"][1]["signoffs"]
        signoffs[-1] = {**signoffs[-1], "at": "2025-05-03T00:00:00Z"}  # not committed yet

    repo.edit("models/chat.yaml", renew)
    plain = repo.check("--signoff-verification", "git")  # no base: a plain check with verification
    pending = plain.one("signoff.verified", "chat@2/signoff:finance:fin")
    assert "no commit adds this sign-off yet" in pending["message"]
    assert plain.one("production.entry.four-signoffs", "chat@2")["status"] == "fail"
    assert not plain.findings("probe.facts")  # no change facts outside pull-request mode


def test_signoff_made_stale_by_a_later_edit(repo: Repo) -> None:
    repo.edit("models/chat.yaml", lambda d: d["versions"][0]["deployments"][0]["replicas"].update(min=2))
    repo.commit("scale chat")
    result = repo.check("--base", "main", "--signoff-verification", "git")
    gate = result.one("production.entry.four-signoffs", "chat@1")
    assert (gate["status"], gate["blocking"]) == ("fail", True)
    assert "platform: signed an earlier digest (stale after an edit)" in gate["message"]
    assert result.probe("chat@1")["kind"] == "modified"
    assert result.code == 1


def test_github_reviews_mode(repo: Repo, tmp_path: Path) -> None:
    reviewed = _add_chat_2(repo)
    for login in PEOPLE:
        repo.sign("chat", "2", login, who=PEOPLE["mel"][:2])
    base = repo.shas["sign chat@1 fin"]
    reviews = [
        {"id": 1, "user": {"login": "pat"}, "state": "APPROVED", "commit_id": reviewed},
        {"id": 2, "user": {"login": "mel"}, "state": "APPROVED", "commit_id": base},
        {"id": 3, "user": {"login": "ann"}, "state": "COMMENTED", "commit_id": reviewed},
        {"id": 4, "user": {"login": "fin"}, "state": "APPROVED", "commit_id": "f" * 40},
    ]
    for review in reviews:
        review["submitted_at"] = "2025-05-03T00:00:00Z"
    path = tmp_path / "reviews.json"
    path.write_text(json.dumps(reviews), encoding="utf-8")
    result = repo.check("--base", "main", "--signoff-verification", "github-reviews", "--reviews", str(path))
    assert not result.findings("signoff.verified", "chat@2/signoff:platform:pat")
    messages = {
        f["target"]: f["message"] for f in result.findings("signoff.verified") if "chat@2" in f["target"]
    }
    assert "chat@2 does not exist" in messages["chat@2/signoff:ml:mel"]
    assert "no APPROVED review by ann" in messages["chat@2/signoff:app:ann"]
    assert "not fetched" in messages["chat@2/signoff:finance:fin"]
    assert result.one("production.entry.four-signoffs", "chat@2")["blocking"] is True
    missing = repo.check("--base", "main", "--signoff-verification", "github-reviews")
    assert missing.code == 2
    assert "needs --reviews FILE" in missing.stderr


def test_canary_clock_reset_is_caught(repo: Repo) -> None:
    repo.edit(
        "models/rank.yaml", lambda d: d["versions"][0]["canary"].update(started_at="2025-05-18T00:00:00Z")
    )
    repo.commit("restart the canary clock")
    policy = clock_policy()
    result = repo.check("--base", "main")
    assert result.code == 1
    drift = result.one(policy, "rank@2")
    assert (drift["status"], drift["blocking"]) == ("fail", True)
    assert "2025-05-01" in drift["message"]
    assert not result.findings("canary.max-duration", "rank@2")  # what the reset was hiding
    facts = result.probe("rank@2")
    assert (facts["first_seen"], facts["stage_since"]) == (T0, T0)

    with_history = repo.check("--history")  # a plain check computes history when asked
    assert with_history.one(policy, "rank@2")["status"] == "fail"
    assert not repo.check().findings(policy)  # and skips the policy otherwise


def test_history_of_stage_changes(repo: Repo) -> None:
    def promote(data: Any) -> None:
        data["versions"][0]["stage"] = "production"
        del data["versions"][0]["canary"]

    repo.edit("models/rank.yaml", promote)
    repo.commit("promote rank@2", date="2025-05-10T12:00:00Z")
    facts = repo.check("--base", "main").probe("rank@2")
    assert (facts["from_stage"], facts["to_stage"]) == ("canary", "production")
    assert facts["first_seen"] == T0
    assert facts["stage_since"] == "2025-05-10T12:00:00Z"
    repo.edit("models/rank.yaml", lambda d: d["versions"][0].update(stage="deprecated"))
    uncommitted = repo.check("--base", "main").probe("rank@2")
    assert uncommitted["stage_since"] == "2025-05-20T00:00:00Z"  # not committed: as of now
