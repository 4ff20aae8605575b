"""The messages of each delivery already posted, by part, with the destination's id for each: written right after
each post, so a long digest interrupted halfway resumes at the missing part, and a destination that cannot
deduplicate (a Discord webhook) can be asked whether a recorded message is still there."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import Engine, select

from storage.records import insert_ignoring_duplicates
from storage.tables import SentPartRecord

SENT_PART = SentPartRecord.__table__  # type: ignore[attr-defined]


class SentParts:
    def __init__(self, engine: Engine, now: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.now = now or partial(datetime.now, UTC)

    def record(self, delivery: str, part: int, remote_id: str) -> None:
        row = {"delivery": delivery[:300], "part": part, "remote_id": remote_id, "sent_at": self.now()}
        with self.engine.begin() as connection:
            insert_ignoring_duplicates(connection, SENT_PART, [row])

    def posted(self, delivery: str) -> dict[int, str]:
        """Part → the destination's id, for every part of ``delivery`` recorded as posted."""
        query = select(SENT_PART.c.part, SENT_PART.c.remote_id).where(SENT_PART.c.delivery == delivery[:300])
        with self.engine.connect() as connection:
            return {int(part): str(remote_id) for part, remote_id in connection.execute(query)}
