"""The delivery tables' handles, and turning their rows into ``digests`` values (and back)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, case, exists, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from digests.delivery import DeliveryState, Destination, Message, OutboxEntry, Subscription, Variant
from storage.tables import DestinationRecord, MessageRecord, NoticeRecord, OutboxRecord, ServiceStateRecord

DESTINATION: Table = DestinationRecord.__table__  # type: ignore[attr-defined]
MESSAGE: Table = MessageRecord.__table__  # type: ignore[attr-defined]
OUTBOX: Table = OutboxRecord.__table__  # type: ignore[attr-defined]
NOTICE: Table = NoticeRecord.__table__  # type: ignore[attr-defined]
STATE: Table = ServiceStateRecord.__table__  # type: ignore[attr-defined]


def aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def insert_ignoring_duplicates(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows``, skipping any whose key already exists; returns how many were inserted."""
    if not rows:
        return 0
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    key = next(iter(table.primary_key.columns))
    statement = dialect.insert(table).on_conflict_do_nothing().returning(key)
    return len(connection.execute(statement, list(rows)).all())


RUN_OVER = or_(
    DESTINATION.c.failing_since.is_(None),
    exists().where(
        OUTBOX.c.destination == DESTINATION.c.name,
        OUTBOX.c.state == DeliveryState.SENT.value,
        OUTBOX.c.sent_at >= DESTINATION.c.failing_since,
    ),
)
"""The destination's recorded run of failures has ended: nothing failed, or a delivery arrived since (partial index
``ix_outbox_sent``). A delivery writes nothing to the destination row, so the hot path stays one statement;
readers apply this instead."""
DESTINATIONS = select(DESTINATION, case((RUN_OVER, 0), else_=DESTINATION.c.failures).label("failing_now"))
"""Destinations with their current run of failures (``failing_now``)."""


def destination_of(row: RowMapping) -> Destination:
    failing = row.get("failing_now", row["failures"])
    return Destination(
        name=row["name"],
        kind=row["kind"],
        target=json.loads(row["target"]),
        subscription=Subscription(**json.loads(row["subscription"])),
        origin=row["origin"],
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        created_at=aware(row["created_at"]),
        failures=failing,
        failing_since=aware(row["failing_since"]) if failing and row["failing_since"] else None,
        last_error=row["last_error"] if failing else None,
    )


def message_of(row: RowMapping) -> Message:
    return Message(
        id=row["id"],
        kind=row["kind"],
        first_day=row["first_day"],
        last_day=row["last_day"],
        revision=row["revision"],
        title=row["title"],
        full=json.loads(row["full"]),
        line=json.loads(row["line"]),
        notable=row["notable"],
        fingerprint=row["fingerprint"],
        corrects=row["corrects"],
        created_at=aware(row["created_at"]),
    )


def entry_of(row: RowMapping) -> OutboxEntry:
    return OutboxEntry(
        id=row["id"],
        message_id=row["message_id"],
        destination=row["destination"],
        variant=Variant(row["variant"]),
        state=DeliveryState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=aware(row["next_attempt_at"]),
        last_error=row["last_error"],
        external_id=row["external_id"],
        claimed_by=row["claimed_by"],
        sent_at=aware(row["sent_at"]) if row["sent_at"] else None,
    )
