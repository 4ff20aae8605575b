"""Pacing shared by every worker: the next moment a message may go to one destination (Slack asks for at most one
message a second per channel). The reservation is one transaction holding the row's lock, so two workers (two
processes on PostgreSQL) never get the same moment."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import Engine, select, update

from storage.records import aware, insert_ignoring_duplicates
from storage.tables import PaceRecord

PACE = PaceRecord.__table__  # type: ignore[attr-defined]


class Pacer:
    def __init__(self, engine: Engine, now: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.now = now or partial(datetime.now, UTC)

    def reserve(self, key: str, interval: timedelta) -> datetime:
        """The moment the caller may send to ``key``: now, or ``interval`` after the last reservation."""
        now = self.now()
        with self.engine.begin() as connection:
            # A write first: it takes SQLite's write lock (PostgreSQL locks the row) before the row is read.
            connection.execute(update(PACE).where(PACE.c.key == key).values(key=PACE.c.key))
            found = connection.execute(select(PACE.c.next_at).where(PACE.c.key == key).with_for_update()).scalar()
            slot = max(now, aware(found)) if found is not None else now
            if found is None and insert_ignoring_duplicates(
                connection, PACE, [{"key": key, "next_at": slot + interval}]
            ):
                return slot
            connection.execute(update(PACE).where(PACE.c.key == key).values(next_at=slot + interval))
        return slot
