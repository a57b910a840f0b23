"""Git faults in pull-request mode: each is exit 2 with a message that says what to do, or (for
a legal but risky state) a result plus a warning; never a traceback.

``tests/git/test_pull_request.py`` already covers an unknown ``--base``, a shallow clone
without the base (single- and multi-branch) and a directory outside any repository; these are
the rest.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from tests.git.conftest import PEOPLE, PORT, T0, Repo, portfolio_doc, production_version


def _describe_chat(repo: Repo) -> str:
    repo.edit("models/chat.yaml", lambda d: d.update(description="Chat assistant"))
    return repo.commit("describe chat")


def _clean(result: Any) -> None:
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr


def test_detached_head_is_checked_like_a_branch(repo: Repo) -> None:
    """actions/checkout leaves HEAD detached on the pull request's merge commit."""
    head = _describe_chat(repo)
    repo.git("checkout", "-q", "--detach", head)
    result = repo.check("--base", "main")
    _clean(result)
    assert result.code == 0, result.stderr
    assert result.report["base"] == repo.shas["sign chat@1 fin"]
    assert result.one("canary.max-duration", "rank@2")["status"] == "pre_existing"


def test_dirty_tree_is_evaluated_with_a_warning(repo: Repo) -> None:
    _describe_chat(repo)
    repo.edit("models/rank.yaml", lambda d: d["versions"][0]["canary"].update(traffic_percent=20))
    repo.write({"models/untracked.yaml": {"id": "extra", "owner_team": "ml", "versions": []}})
    result = repo.check("--base", "main")
    _clean(result)
    assert result.code == 1  # the uncommitted edit touches the aged-out canary
    assert (
        f"warning: uncommitted changes ({PORT}/models/rank.yaml, {PORT}/models/untracked.yaml)"
        in result.stderr
    )
    assert "pass --head HEAD to check the commit alone" in result.stderr
    committed = repo.check("--base", "main", "--head", "HEAD")
    _clean(committed)
    assert committed.code == 0
    assert "warning" not in committed.stderr


def test_portfolio_missing_at_the_base(repo: Repo) -> None:
    """A pull request that creates the portfolio has no base rules to be judged by."""
    repo.git("checkout", "-q", "--orphan", "fresh")
    repo.git("rm", "-rq", "--cached", ".")
    (repo.root / "README.md").write_text("nothing yet\n", encoding="utf-8")
    repo.git("add", "README.md")
    repo.git("commit", "-q", "-m", "start", date=T0)
    base = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "-q", "-b", "add-portfolio")
    repo.git("add", "-A")
    repo.commit("add the portfolio")
    result = repo.check("--base", "fresh")
    _clean(result)
    assert result.code == 2
    assert f"{base[:12]}:{PORT}/portfolio.yaml:1:1: the base revision has no portfolio here" in result.stderr
    assert "check the change that creates a portfolio without --base" in result.stderr
    assert result.report == {}


def test_unknown_head_ref(repo: Repo) -> None:
    result = repo.check("--base", "main", "--head", "no-such-branch")
    _clean(result)
    assert result.code == 2
    assert "--head no-such-branch: unknown revision (not a branch, tag or commit here)" in result.stderr


def test_unknown_base_ref_says_how_to_fetch_it(repo: Repo) -> None:
    result = repo.check(env={"GITHUB_BASE_REF": "release/2025"})
    _clean(result)
    assert result.code == 2
    assert "--base release/2025: unknown revision" in result.stderr
    assert "git fetch origin release/2025" in result.stderr


def test_base_that_is_not_a_commit(repo: Repo) -> None:
    blob = repo.git("rev-parse", f"HEAD:{PORT}/portfolio.yaml")
    tree = repo.git("rev-parse", "HEAD^{tree}")
    for ref in (blob, tree, "HEAD~99", "--upload-pack=evil", "main..feature"):
        result = repo.check("--base", ref)
        _clean(result)
        assert result.code == 2, ref
        assert f"--base {ref}: unknown revision" in result.stderr


def test_base_with_unrelated_history(repo: Repo) -> None:
    repo.git("checkout", "-q", "--orphan", "elsewhere")
    repo.commit("unrelated root")
    repo.git("checkout", "-q", "feature")
    result = repo.check("--base", "elsewhere")
    _clean(result)
    assert result.code == 2
    assert "--base elsewhere: it shares no history with the head (no merge base)" in result.stderr


def test_shallow_clone_with_the_base_warns_that_history_is_cut(repo: Repo, tmp_path: Path) -> None:
    """The merge base is there (fetch-depth 2 on a one-commit branch), but older history is not."""
    _describe_chat(repo)
    clone = Repo(tmp_path / "clone", repo.pack)
    repo.git("clone", "-q", "--depth", "2", "--branch", "feature", repo.root.as_uri(), str(clone.root))
    clone.git("fetch", "-q", "--depth", "2", "origin", "main:main")
    result = clone.check("--base", "main")
    _clean(result)
    assert result.code in (0, 1), result.stderr
    assert "warning: the clone is shallow" in result.stderr
    assert "fetch-depth: 0" in result.stderr


def test_broken_rules_at_the_base_name_the_base_revision(repo: Repo) -> None:
    """The base is judged as committed; its errors say which revision they are in."""
    repo.git("checkout", "-q", "main")
    (repo.port / "portfolio.yaml").write_text("schema_version: 1\nkind: [\n", encoding="utf-8")
    base = repo.commit("break the portfolio")
    repo.git("checkout", "-q", "-b", "fix")
    repo.write({"portfolio.yaml": portfolio_doc()})
    repo.commit("fix the portfolio")
    result = repo.check("--base", "main")
    _clean(result)
    assert result.code == 2
    assert f"{base[:12]}:{PORT}/portfolio.yaml:" in result.stderr
    assert "invalid YAML" in result.stderr


def test_symbolic_links_among_the_rules(repo: Repo, tmp_path: Path) -> None:
    """A rule file that is a symlink (out of the repository) is refused, never followed."""
    outside = tmp_path / "outside.yaml"
    outside.write_text("apiVersion: policy-engine/v1\n", encoding="utf-8")
    (repo.port / "policies").mkdir()
    os.symlink(outside, repo.port / "policies" / "evil.yaml")
    result = repo.check("--base", "main")
    _clean(result)
    assert result.code == 1
    rules = result.one("governance.rules-changed", "portfolio")
    assert f"{PORT}/policies/evil.yaml" in rules["message"]
    repo.commit("link a policy")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--ff-only", "feature")
    repo.git("checkout", "-q", "-b", "next")
    result = repo.check("--base", "main")  # the base itself now holds the link
    _clean(result)
    assert result.code == 2
    assert f"{PORT}/policies/evil.yaml:1:1: policies/evil.yaml is a symbolic link in commit" in result.stderr


def test_head_commit_that_is_a_tag(repo: Repo) -> None:
    head = _describe_chat(repo)
    repo.git("tag", "-a", "v1", "-m", "release", head, who=PEOPLE["pat"][:2])
    result = repo.check("--base", "main", "--head", "v1")
    _clean(result)
    assert result.code == 0
    assert result.report["head"] == head


def test_added_model_version_is_not_a_fault(repo: Repo) -> None:
    """Control case: an ordinary change in the same repository is judged normally."""
    repo.edit("models/chat.yaml", lambda d: d["versions"].append(production_version("2")))
    repo.commit("chat@2")
    result = repo.check("--base", "main")
    _clean(result)
    assert result.code == 1
    assert result.one("production.entry.four-signoffs", "chat@2")["blocking"] is True


def test_alias_bomb_in_an_intermediate_commit_is_bounded(repo: Repo) -> None:
    """History passes read every commit of the pull request, not only its head: a billion laughs
    committed and then reverted must not stall them (they read only scalars from old blobs)."""
    lines = ["id: rank", "owner_team: ml", "bomb:", "  - &l0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  - &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 12)]
    lines.append("versions:")
    lines.append("  - {version: *l11, stage: *l11, signoffs: [{role: *l11, by: *l11, at: *l11}]}")
    (repo.port / "models" / "rank.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    repo.commit("a bomb")
    repo.git("checkout", "main", "--", f"{PORT}/models/rank.yaml")
    repo.commit("and it is gone")
    for args in (("--base", "main"), ("--base", "main", "--signoff-verification", "git"), ("--history",)):
        started = time.perf_counter()
        result = repo.check(*args)
        _clean(result)
        assert result.code in (0, 1), result.stderr
        assert time.perf_counter() - started < 20, args


def test_malformed_reviews_file_is_a_usage_error(repo: Repo, tmp_path: Path) -> None:
    """The reviews file comes from the GitHub API through the action; a broken one is exit 2."""
    path = tmp_path / "reviews.json"
    for raw, needle in (
        (b"\xff\xfe", "not JSON"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"reviews": []}', "expected a JSON list of pull request reviews"),
        (b'[{"id": "seven", "user": {"login": "pat"}}]', "item 0 has id 'seven', not a number"),
        (b'[{"id": 1, "user": "pat"}]', "item 0 has no user.login"),
    ):
        path.write_bytes(raw)
        result = repo.check("--base", "main", "--reviews", str(path))
        _clean(result)
        assert result.code == 2, raw[:20]
        assert needle in result.stderr, result.stderr
