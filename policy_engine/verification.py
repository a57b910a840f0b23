"""Sign-off verification: does evidence show that the signer approved this content?

Modes (DESIGN §6):

- ``github-reviews``: an APPROVED review by the signer's login on a commit whose content has
  the signed digest (reviews in the GitHub REST API's JSON shape, from ``--reviews FILE``);
- ``git``: the commit that added the sign-off was authored by that roster member (roster
  email, or the login as the author name or e-mail local part); a signed commit must verify;
- ``declared``: trusted as written and reported as unverified.

The result reaches policies as computed fields: each sign-off target's ``signoff`` gets
``verified`` and ``verification`` ("<mode>: <reason>"). In the verifying modes the same two
fields are added to every entry of ``version.signoffs``, so a version policy can count only
verified sign-offs with ``(!has(s.verified) || s.verified)``; in ``declared`` mode they are
left out there, and declared sign-offs keep counting.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from policy_engine.errors import UsageError
from policy_engine.gitrepo import CommitInfo
from policy_engine.history import SignoffKey
from policy_engine.loading import Portfolio
from policy_engine.models.portfolio import Person, Signoff
from policy_engine.targets import TargetSet

Mode = Literal["github-reviews", "git", "declared"]
MODES: tuple[Mode, ...] = ("github-reviews", "git", "declared")


@dataclass(frozen=True, slots=True)
class Review:
    id: int
    login: str
    state: str
    commit_id: str
    submitted_at: str


@dataclass(frozen=True, slots=True)
class Verdict:
    verified: bool
    verification: str


def parse_reviews(raw: bytes, shown: str) -> list[Review]:
    """Reviews as the GitHub REST API lists them (a list, or a list of pages)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"--reviews {shown}: not JSON ({exc})") from None
    except RecursionError:
        raise UsageError(f"--reviews {shown}: nested too deeply to be a list of reviews") from None
    if isinstance(data, list) and all(isinstance(page, list) for page in data):
        data = [item for page in data for item in page]
    if not isinstance(data, list):
        raise UsageError(f"--reviews {shown}: expected a JSON list of pull request reviews")
    reviews = []
    for index, item in enumerate(data):
        user = item.get("user") if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(user, dict) or not isinstance(user.get("login"), str):
            raise UsageError(f"--reviews {shown}: item {index} has no user.login (expected a review object)")
        review_id = item.get("id") or 0
        if not isinstance(review_id, int) or isinstance(review_id, bool):
            raise UsageError(f"--reviews {shown}: item {index} has id {review_id!r}, not a number")
        reviews.append(
            Review(
                id=review_id,
                login=user["login"],
                state=str(item.get("state") or ""),
                commit_id=str(item.get("commit_id") or ""),
                submitted_at=str(item.get("submitted_at") or ""),
            )
        )
    return reviews


def current_approvals(reviews: list[Review], commits: set[str]) -> set[str]:
    """Logins whose latest decisive review on one of ``commits`` is APPROVED."""
    latest: dict[str, Review] = {}
    for review in sorted(reviews, key=lambda r: (r.submitted_at, r.id)):
        if review.commit_id in commits and review.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[review.login] = review
    return {login for login, review in latest.items() if review.state == "APPROVED"}


def same_person(person: Person, name: str, email: str) -> bool:
    """Whether a commit identity is this roster member: roster e-mail, or the login as the
    author name or as the e-mail's local part (GitHub's ``123+login@users.noreply...``)."""
    email = email.strip().lower()
    login = person.login.lower()
    if person.email and email == person.email.strip().lower():
        return True
    local = email.partition("@")[0]
    return local.rpartition("+")[2] == login or name.strip().lower() == login


def signoff_key(model_id: str, version: str, signoff: Signoff) -> SignoffKey:
    return (model_id, version, signoff.role, signoff.by, signoff.scope.subject_digest, signoff.at)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the chosen mode needs, gathered by the caller from git and the reviews file."""

    mode: Mode
    roster: dict[str, Person]
    introductions: dict[SignoffKey, CommitInfo] | None = None  # git
    signature: Callable[[str], tuple[bool, bool, str]] | None = None  # git: (signed, ok, detail)
    reviews: list[Review] | None = None  # github-reviews
    # github-reviews: the digest of (model, version) at a commit; None when not there.
    digest_at: Callable[[str, str, str], str | None] | None = None
    has_commit: Callable[[str], bool] | None = None


def verify(model_id: str, version: str, signoff: Signoff, evidence: Evidence) -> Verdict:
    if evidence.mode == "git":
        return _verify_git(signoff_key(model_id, version, signoff), signoff, evidence)
    if evidence.mode == "github-reviews":
        return _verify_reviews(model_id, version, signoff, evidence)
    return Verdict(False, "declared: trusted as written; not checked against git or reviews")


def _verify_git(key: SignoffKey, signoff: Signoff, evidence: Evidence) -> Verdict:
    commit = (evidence.introductions or {}).get(key)
    if commit is None:
        return Verdict(False, "git: no commit adds this sign-off yet (commit it as the signer)")
    who = f"{commit.author_name} <{commit.author_email}>"
    person = evidence.roster.get(signoff.by)
    if person is None:
        return Verdict(False, f"git: {signoff.by} is not in the roster; added in {commit.sha[:12]} by {who}")
    if not same_person(person, commit.author_name, commit.author_email):
        return Verdict(False, f"git: added in {commit.sha[:12]} by {who}, not by {signoff.by}")
    detail = "unsigned commit"
    if evidence.signature is not None:
        signed, ok, detail = evidence.signature(commit.sha)
        if signed and not ok:
            return Verdict(
                False,
                f"git: added in {commit.sha[:12]} by {who}, but its signature does not verify: {detail}",
            )
    return Verdict(True, f"git: added in {commit.sha[:12]} by {who} ({detail})")


def _verify_reviews(model_id: str, version: str, signoff: Signoff, evidence: Evidence) -> Verdict:
    approvals = [r for r in evidence.reviews or [] if r.login == signoff.by and r.state == "APPROVED"]
    if not approvals:
        return Verdict(False, f"github-reviews: no APPROVED review by {signoff.by}")
    seen: list[str] = []
    for review in sorted(approvals, key=lambda r: (r.submitted_at, r.id), reverse=True):
        if evidence.has_commit is not None and not evidence.has_commit(review.commit_id):
            seen.append(f"review {review.id} is on {review.commit_id[:12]}, which is not fetched")
            continue
        digest = evidence.digest_at(review.commit_id, model_id, version) if evidence.digest_at else None
        if digest == signoff.scope.subject_digest:
            return Verdict(
                True,
                f"github-reviews: {signoff.by} approved {review.commit_id[:12]} (review {review.id}), "
                "whose content has the signed digest",
            )
        seen.append(
            f"review {review.id} approved {review.commit_id[:12]}, where {model_id}@{version} "
            + (f"has digest {digest[:19]}…" if digest else "does not exist")
        )
    return Verdict(
        False,
        f"github-reviews: no APPROVED review by {signoff.by} on content with digest "
        f"{signoff.scope.subject_digest[:19]}… ({'; '.join(seen)})",
    )


def verdicts(portfolio: Portfolio, evidence: Evidence) -> dict[str, list[Verdict]]:
    """One verdict per sign-off, by version target id, in the order of ``version.signoffs``."""
    found: dict[str, list[Verdict]] = {}
    for entry in portfolio.models:
        for version in entry.model.versions:
            found[f"{entry.model.id}@{version.version}"] = [
                verify(entry.model.id, version.version, s, evidence) for s in version.signoffs
            ]
    return found


def signoff_fields(
    targets: TargetSet, found: dict[str, list[Verdict]], mode: Mode
) -> dict[str, dict[str, dict[str, Any]]]:
    """``Facts.extra`` entries: the verdict on each sign-off target, and (in the verifying modes)
    on every entry of ``version.signoffs`` wherever a target binds ``version``."""
    extra: dict[str, dict[str, dict[str, Any]]] = {}
    for target in targets.all():
        if target.model is None or target.version is None:
            continue
        results = found.get(f"{target.model}@{target.version}")
        if results is None:
            continue
        fields: dict[str, dict[str, Any]] = {}
        if target.scope == "signoff" and isinstance(target.path[-1], int):
            verdict = results[target.path[-1]]
            fields["signoff"] = {"verified": verdict.verified, "verification": verdict.verification}
        if mode != "declared":
            listed = target.data["version"]["signoffs"]
            fields["version"] = {
                "signoffs": [
                    {**s, "verified": v.verified, "verification": v.verification}
                    for s, v in zip(listed, results, strict=True)
                ]
            }
        if fields:
            extra[target.id] = fields
    return extra
