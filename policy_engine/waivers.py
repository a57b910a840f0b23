"""Exceptions: whether one is active, and what is wrong with it. Every command uses ``assess``.

An exception waives a failing finding only while it is *active*: inside its time window
[created_at, expires_at), approved by roster members holding every required role, within the
maximum lifetime for the waived policy's severity, and for a policy that is not ``hard`` in the
current context. Anything else is reported by the ledger policies and waives nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from policy_engine.models.config import ExceptionsConfig
from policy_engine.models.portfolio import Person, PolicyException
from policy_engine.models.types import parse_timestamp


@dataclass(frozen=True, slots=True)
class LedgerRules:
    """What the run knows that decides an exception: roster, roles, limits, policy levels."""

    roster: dict[str, Person]
    approver_roles: list[str]
    config: ExceptionsConfig = field(default_factory=ExceptionsConfig)
    severity: dict[str, str] = field(default_factory=dict)  # policy id -> severity
    hard: frozenset[str] = frozenset()  # policy ids that are hard in this context


@dataclass(frozen=True, slots=True)
class Assessment:
    active: bool
    in_window: bool
    expired: bool
    expires_in_days: float
    problems: list[str]
    missing_roles: list[str]


def in_window(exception: PolicyException, as_of: datetime) -> bool:
    """Half-open [created_at, expires_at): at ``expires_at`` exactly it has lapsed."""
    if exception.created_at is not None and as_of < parse_timestamp(exception.created_at):
        return False
    return as_of < parse_timestamp(exception.expires_at)


def assess(exception: PolicyException, as_of: datetime, rules: LedgerRules) -> Assessment:
    expires = parse_timestamp(exception.expires_at)
    problems: list[str] = []
    if exception.policy not in rules.severity:
        problems.append(f"policy {exception.policy!r} is not loaded")
    if exception.policy in rules.hard:
        problems.append(f"{exception.policy} is hard-enforced here and cannot be waived")
    approved_roles: set[str] = set()
    for signoff in exception.signoffs:
        person = rules.roster.get(signoff.by)
        if person is None:
            problems.append(f"approver {signoff.by} is not in the roster")
        elif signoff.role not in person.roles:
            problems.append(f"approver {signoff.by} does not hold the {signoff.role} role")
        else:
            approved_roles.add(signoff.role)
    missing = [role for role in rules.approver_roles if role not in approved_roles]
    if missing:
        problems.append("no approval from " + ", ".join(missing))
    start_text = exception.created_at or min((s.at for s in exception.signoffs), default=None)
    severity = rules.severity.get(exception.policy, "error")
    limit_days = rules.config.max_lifetime_days.get(severity, 90.0)  # type: ignore[call-overload]
    if start_text is None:
        problems.append("no created_at (and no approval time) to measure its lifetime from")
    elif expires - parse_timestamp(start_text) > timedelta(days=limit_days):
        lifetime = (expires - parse_timestamp(start_text)).total_seconds() / 86400
        problems.append(
            f"lifetime {lifetime:.0f} days exceeds the {limit_days:.0f}-day maximum for {severity} policies"
        )
    window = in_window(exception, as_of)
    return Assessment(
        active=window and not problems,
        in_window=window,
        expired=as_of >= expires,
        expires_in_days=(expires - as_of).total_seconds() / 86400,
        problems=problems,
        missing_roles=missing,
    )


def is_active(exception: PolicyException, as_of: datetime, rules: LedgerRules) -> bool:
    return assess(exception, as_of, rules).active
