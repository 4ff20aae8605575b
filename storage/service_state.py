"""Operator notices and the small facts the service keeps between runs (the baseline, the last poll, the
request budget), over one SQLAlchemy engine."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import Engine, select, update

from storage.records import NOTICE, STATE, aware, insert_ignoring_duplicates


@dataclass(frozen=True, slots=True)
class Notice:
    key: str
    text: str
    raised_at: datetime
    resolved_at: datetime | None = None


class ServiceState:
    def __init__(self, engine: Engine, now: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.now = now or partial(datetime.now, UTC)

    # -- operator notices --------------------------------------------------------------------------------
    def raise_notice(self, key: str, text: str) -> bool:
        """Record an open notice once per key; ``True`` when it is new (an earlier resolved one is reopened)."""
        now = self.now()
        with self.engine.begin() as connection:
            if insert_ignoring_duplicates(connection, NOTICE, [{"key": key, "text": text, "raised_at": now}]):
                return True
            reopened = connection.execute(
                update(NOTICE)
                .where(NOTICE.c.key == key, NOTICE.c.resolved_at.is_not(None))
                .values(text=text, raised_at=now, resolved_at=None)
            )
            return reopened.rowcount == 1

    def resolve_notices(self, prefix: str, keep: Iterable[str] = ()) -> None:
        """Resolve open notices whose key starts with ``prefix`` except those in ``keep``."""
        with self.engine.begin() as connection:
            connection.execute(
                update(NOTICE)
                .where(
                    NOTICE.c.key.startswith(prefix, autoescape=True),
                    NOTICE.c.key.not_in(list(keep)),
                    NOTICE.c.resolved_at.is_(None),
                )
                .values(resolved_at=self.now())
            )

    def open_notices(self) -> list[Notice]:
        query = select(NOTICE).where(NOTICE.c.resolved_at.is_(None)).order_by(NOTICE.c.raised_at)
        with self.engine.connect() as connection:
            return [
                Notice(row["key"], row["text"], aware(row["raised_at"])) for row in connection.execute(query).mappings()
            ]

    # -- service state -----------------------------------------------------------------------------------
    def state(self, key: str) -> Any:
        """A stored JSON value, or ``None``."""
        with self.engine.connect() as connection:
            raw = connection.execute(select(STATE.c.value).where(STATE.c.key == key)).scalar()
        return None if raw is None else json.loads(raw)

    def set_state(self, key: str, value: Any, only_if_absent: bool = False) -> bool:
        """Store a JSON value; with ``only_if_absent``, keep an existing one. ``True`` if written."""
        row = {"key": key, "value": json.dumps(value), "updated_at": self.now()}
        with self.engine.begin() as connection:
            if insert_ignoring_duplicates(connection, STATE, [row]):
                return True
            if only_if_absent:
                return False
            connection.execute(update(STATE).where(STATE.c.key == key).values(**row))
            return True
