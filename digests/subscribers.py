"""Newsletter subscribers as values: their states and cadences, and how two addresses are the same address.

States run ``pending → confirmed → unsubscribed | bounced | complained``; only ``confirmed`` subscribers receive
digests, and an address that left (any of the last three) must confirm again to come back. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class SubscriberState(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


LEFT = frozenset({SubscriberState.UNSUBSCRIBED, SubscriberState.BOUNCED, SubscriberState.COMPLAINED})
CADENCES = ("weekly", "daily")
"""``weekly``: the weekly digest (the default); ``daily``: the daily alerts on notable days."""


def address_key(address: str) -> str:
    """What makes two addresses the same: the local part as written (it may be case-sensitive, RFC 5321), the
    domain in lower case (it never is)."""
    local, _, domain = address.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


@dataclass(frozen=True, slots=True)
class Subscriber:
    address: str
    state: SubscriberState
    cadence: str
    key: str
    """Random and opaque: what tokens and Message-IDs carry instead of a row id."""
    created_at: datetime
    confirmed_at: datetime | None = None
    confirmed_ip: str | None = None
    soft_bounces: int = 0

    @property
    def receives(self) -> bool:
        return self.state is SubscriberState.CONFIRMED
