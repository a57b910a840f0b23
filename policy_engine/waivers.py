"""Whether an exception is active: the one function every command uses."""

from __future__ import annotations

from datetime import datetime

from policy_engine.models.portfolio import PolicyException
from policy_engine.models.types import parse_timestamp


def is_active(exception: PolicyException, as_of: datetime) -> bool:
    """Active on the half-open interval [created_at, expires_at): at ``expires_at`` it has lapsed."""
    if exception.created_at is not None and as_of < parse_timestamp(exception.created_at):
        return False
    return as_of < parse_timestamp(exception.expires_at)
