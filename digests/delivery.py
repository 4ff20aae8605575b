"""Delivery values (DESIGN §6): destinations and what they subscribe to, queued messages, outbox entries, and the
pure rules of the outbox — the retry schedule and who gets which variant of a digest.

Pure: no I/O, no clock (times are passed in), no randomness of its own (a ``random.Random`` is passed in).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

LEASE_MARGIN_SECONDS = 5.0
"""How much longer a worker's claim on a row lasts than the longest send it covers (room for clock skew and
database latency): ``claim_lease_seconds`` ≥ every destination's ``timeout_seconds`` + this."""

Payloads = Mapping[str, str]
"""A message's rendered forms by format: ``text``, ``markdown``, ``json``."""


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    """The last try failed; another is scheduled at ``next_attempt_at``."""
    DEAD = "dead"
    """No more tries: the retry limit was reached, the payload is invalid, or the destination is gone."""


class Variant(StrEnum):
    FULL = "full"
    LINE = "line"
    """One line for a quiet day, for destinations whose policy is ``quiet_day = "line"``."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """What a destination receives: daily alerts (notable-only by default) and the weekly digest on a cron."""

    daily: bool = True
    notable_only: bool = True
    quiet_day: str = "skip"
    """``skip``: nothing on a day without notable movements; ``line``: one line saying it was quiet."""
    weekly: bool = True
    weekly_cron: str = "0 9 * * mon"
    timezone: str = "UTC"
    notices: bool = False
    """Operator notices (late data, dead deliveries) go to destinations with this set."""


@dataclass(frozen=True, slots=True)
class Destination:
    """Somewhere rankbot publishes: a console, a folder, a webhook, later a Slack or Discord channel or a mailbox."""

    name: str
    kind: str
    target: Mapping[str, Any]
    """Kind-specific settings (URL, folder, channel...). Never secrets: those stay in the environment."""
    subscription: Subscription = Subscription()
    origin: str = "config"
    enabled: bool = True
    disabled_reason: str | None = None
    created_at: datetime | None = None
    failures: int = 0
    """Tries that failed in a row since the last one delivered (0: the last try, if any, arrived)."""
    failing_since: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A digest (or operator notice) frozen at queue time, with a stable id: kind + period + revision."""

    id: str
    kind: str
    """``day``, ``week`` or ``notice``."""
    first_day: date | None
    last_day: date | None
    revision: int
    title: str
    full: Payloads
    line: Payloads = field(default_factory=dict)
    notable: bool = True
    fingerprint: str = ""
    """The published ranking (permaslugs in rank order): a restatement that changes it queues a correction."""
    corrects: str | None = None
    """The id of the message this one corrects."""
    created_at: datetime | None = None

    def payloads(self, variant: Variant) -> Payloads:
        return self.line if variant is Variant.LINE and self.line else self.full


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One (message, destination) delivery and where it stands."""

    id: int
    message_id: str
    destination: str
    variant: Variant
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    last_error: str | None = None
    external_id: str | None = None
    claimed_by: str | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Exponential backoff with full jitter, and a limit after which a delivery is ``dead``."""

    attempts: int = 8
    base: float = 5.0
    cap: float = 3600.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds before the next try after failed try number ``attempt`` (from 1): uniform in
        ``[0, min(cap, base·2^(attempt-1))]``, but never sooner than ``retry_after`` when the peer asked."""
        jittered = rng.uniform(0, min(self.cap, self.base * 2 ** max(0, attempt - 1)))
        return max(jittered, retry_after) if retry_after is not None else jittered

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.attempts


def variant_for(subscription: Subscription, kind: str, notable: bool) -> Variant | None:
    """Which form of a ``day``/``week`` message a subscriber gets; ``None``: it gets nothing."""
    if kind == "week":
        return Variant.FULL if subscription.weekly else None
    if kind != "day" or not subscription.daily:
        return None
    if notable or not subscription.notable_only:
        return Variant.FULL
    return Variant.LINE if subscription.quiet_day == "line" else None
