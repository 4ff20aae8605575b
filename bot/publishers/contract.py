"""The publisher contract: every destination kind (console, file, webhook; later Slack, Discord, email) implements
``Publisher``, and the outbox worker knows nothing else about it.

A publisher sends one rendered message to one destination and returns the destination's id for it, or raises one
of the typed errors below, which decide what the outbox does next. A publisher that can tell whether an earlier,
interrupted send arrived implements ``was_delivered``; one that cannot returns ``None`` and the worker resends
(and says so in the log).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from digests.delivery import Destination, Message, Payloads, Variant


class PublishError(Exception):
    """A send failed; the subclass says what the outbox does about it."""


class RetryableError(PublishError):
    """Try again later with backoff (timeouts, resets, 5xx)."""


class RateLimitedError(RetryableError):
    """The destination asked us to slow down; ``retry_after`` is how long it asked for, if it said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GoneError(PublishError):
    """The destination no longer exists or refuses us for good (deleted channel, 404/410 webhook, revoked
    token): it is disabled with this reason instead of retried forever."""


class InvalidPayloadError(PublishError):
    """The destination will never accept this message (too large, malformed): fail at once, no retries."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message for one destination, in the variant that destination gets."""

    message: Message
    destination: Destination
    variant: Variant = Variant.FULL

    @property
    def payloads(self) -> Payloads:
        return self.message.payloads(self.variant)

    @property
    def key(self) -> str:
        """The idempotency key: the same for every try of this delivery, different for every other one."""
        return f"{self.message.id}/{self.destination.name}"


class Publisher(Protocol):
    timeout: float
    """The longest one ``send`` may take, in seconds: a claim's lease must outlast it."""

    async def send(self, delivery: Delivery) -> str | None:
        """Deliver; returns the destination's id for what was posted (if it has one)."""
        ...  # pragma: no cover

    async def was_delivered(self, delivery: Delivery) -> bool | None:
        """Did an earlier, interrupted send of this delivery arrive? ``None``: this destination cannot tell."""
        ...  # pragma: no cover


class PublisherFactory(Protocol):
    def __call__(self, destination: Destination, environ: Mapping[str, str]) -> Publisher: ...  # pragma: no cover
