"""The delivery store: destinations, and messages queued for them, on top of the outbox rows (the workers' side in
``storage.outbox_rows``, the operator's in ``storage.outbox_ops``). Operator notices and service state are in
``storage.service_state``.

The database enforces that a message id (kind + period + revision) is stored once, and a (message, destination)
outbox row exists once, so two overlapping planners queue one copy.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

from sqlalchemy import Engine, select, update

from digests.delivery import DeliveryState, Destination, Message, Variant
from storage.outbox_ops import OutboxOps
from storage.outbox_rows import REMOVED_FROM_CONFIG, OutboxRows
from storage.records import (
    DESTINATION,
    DESTINATIONS,
    MESSAGE,
    OUTBOX,
    destination_of,
    insert_ignoring_duplicates,
    message_of,
)


class DeliveryStore(OutboxRows, OutboxOps):
    """Destinations, messages, the outbox, notices and service state over one SQLAlchemy engine."""

    def __init__(self, engine: Engine, now: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.now = now or partial(datetime.now, UTC)
        self._messages = OrderedDict()

    # -- destinations ------------------------------------------------------------------------------------
    def sync_destinations(self, wanted: Iterable[Destination], origin: str = "config") -> None:
        """Make the stored ``origin`` destinations match ``wanted``: add new ones, update settings, and disable
        those no longer wanted (their history stays). A destination disabled as gone stays disabled."""
        now = self.now()
        wanted_by_name = {d.name: d for d in wanted}
        with self.engine.begin() as connection:
            stored = {
                row["name"]: row
                for row in connection.execute(select(DESTINATION).where(DESTINATION.c.origin == origin)).mappings()
            }
            for name, destination in wanted_by_name.items():
                values: dict[str, Any] = {
                    "kind": destination.kind,
                    "target": json.dumps(dict(destination.target), sort_keys=True),
                    "subscription": json.dumps(asdict(destination.subscription), sort_keys=True),
                }
                existing = stored.get(name)
                if existing is None:
                    insert_ignoring_duplicates(
                        connection,
                        DESTINATION,
                        [
                            {
                                "name": name,
                                "origin": origin,
                                "enabled": True,
                                "disabled_reason": None,
                                "created_at": now,
                            }
                            | values
                        ],
                    )
                    continue
                if existing["disabled_reason"] == REMOVED_FROM_CONFIG:
                    values |= {"enabled": True, "disabled_reason": None}
                connection.execute(update(DESTINATION).where(DESTINATION.c.name == name).values(**values))
            for name, row in stored.items():
                if name not in wanted_by_name and row["enabled"]:
                    self._disable(connection, name, REMOVED_FROM_CONFIG)

    def save_destination(self, destination: Destination, restart: bool = False) -> None:
        """Add or update one destination managed from chat (``origin`` other than ``config``): its target,
        subscription and whether it is enabled (with the reason when not). ``restart`` makes it count as created
        now, so a weekly digest that fired before a change of schedule is not sent late."""
        values: dict[str, Any] = {
            "kind": destination.kind,
            "origin": destination.origin,
            "target": json.dumps(dict(destination.target), sort_keys=True),
            "subscription": json.dumps(asdict(destination.subscription), sort_keys=True),
            "enabled": destination.enabled,
            "disabled_reason": destination.disabled_reason,
        }
        now = self.now()
        with self.engine.begin() as connection:
            row = {"name": destination.name, "created_at": now} | values
            if not insert_ignoring_duplicates(connection, DESTINATION, [row]):
                if restart:
                    values["created_at"] = now
                connection.execute(update(DESTINATION).where(DESTINATION.c.name == destination.name).values(**values))
        if not destination.enabled:  # what was still due to it is not sent
            self.disable_destination(destination.name, destination.disabled_reason or "disabled")

    def disable_destinations(self, prefix: str, reason: str) -> list[str]:
        """Disable every enabled destination whose name starts with ``prefix`` (a workspace's channels); returns
        their names."""
        with self.engine.connect() as connection:
            names = list(
                connection.execute(
                    select(DESTINATION.c.name).where(
                        DESTINATION.c.name.startswith(prefix, autoescape=True), DESTINATION.c.enabled
                    )
                ).scalars()
            )
        for name in names:
            self.disable_destination(name, reason)
        return names

    def destinations(self, enabled_only: bool = False) -> list[Destination]:
        query = DESTINATIONS.order_by(DESTINATION.c.name)
        if enabled_only:
            query = query.where(DESTINATION.c.enabled)
        with self.engine.connect() as connection:
            return [destination_of(row) for row in connection.execute(query).mappings()]

    def destination(self, name: str) -> Destination | None:
        with self.engine.connect() as connection:
            row = connection.execute(DESTINATIONS.where(DESTINATION.c.name == name)).mappings().first()
        return destination_of(row) if row else None

    # -- messages and queueing ---------------------------------------------------------------------------
    def queue(self, message: Message, recipients: Iterable[tuple[str, Variant]]) -> int:
        """Store ``message`` (once) and one outbox row per recipient (once each), in one transaction.

        Returns how many rows were added; queueing the same message again adds nothing."""
        now = self.now()
        with self.engine.begin() as connection:
            insert_ignoring_duplicates(
                connection,
                MESSAGE,
                [
                    {
                        "id": message.id,
                        "kind": message.kind,
                        "first_day": message.first_day,
                        "last_day": message.last_day,
                        "revision": message.revision,
                        "title": message.title,
                        "full": json.dumps(dict(message.full)),
                        "line": json.dumps(dict(message.line)),
                        "notable": message.notable,
                        "fingerprint": message.fingerprint,
                        "corrects": message.corrects,
                        "created_at": message.created_at or now,
                    }
                ],
            )
            rows = [
                {
                    "message_id": message.id,
                    "destination": name,
                    "variant": variant.value,
                    "state": DeliveryState.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for name, variant in recipients
            ]
            return insert_ignoring_duplicates(connection, OUTBOX, rows)

    def message(self, message_id: str) -> Message | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(MESSAGE).where(MESSAGE.c.id == message_id)).mappings().first()
        return message_of(row) if row else None

    def messages(self, kind: str | None = None, last_day_from: date | None = None) -> list[Message]:
        """Stored messages, oldest period first (then revision)."""
        query = select(MESSAGE).order_by(MESSAGE.c.last_day, MESSAGE.c.first_day, MESSAGE.c.revision)
        if kind is not None:
            query = query.where(MESSAGE.c.kind == kind)
        if last_day_from is not None:
            query = query.where(MESSAGE.c.last_day >= last_day_from)
        with self.engine.connect() as connection:
            return [message_of(row) for row in connection.execute(query).mappings()]

    def recipients(self, message_id: str) -> list[tuple[str, Variant]]:
        """Who a message was queued for, with the variant each gets."""
        query = select(OUTBOX.c.destination, OUTBOX.c.variant).where(OUTBOX.c.message_id == message_id)
        with self.engine.connect() as connection:
            return [(name, Variant(variant)) for name, variant in connection.execute(query.order_by(OUTBOX.c.id))]

    def queued_destinations(self, kind: str) -> dict[tuple[date | None, date | None], set[str]]:
        """For each period of ``kind``, the destinations already queued any revision of it."""
        query = (
            select(MESSAGE.c.first_day, MESSAGE.c.last_day, OUTBOX.c.destination)
            .join(OUTBOX, OUTBOX.c.message_id == MESSAGE.c.id)
            .where(MESSAGE.c.kind == kind)
        )
        found: dict[tuple[date | None, date | None], set[str]] = {}
        with self.engine.connect() as connection:
            for first, last, name in connection.execute(query):
                found.setdefault((first, last), set()).add(name)
        return found
