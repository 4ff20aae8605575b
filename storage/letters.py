"""The newsletter's letters: one row per (message, subscriber), so a fan-out to 100,000 addresses resumes after a
crash where it stopped and never sends a digest twice to anyone it was recorded as sent to.

- ``fan_out`` copies the confirmed subscribers of a cadence into rows with ``INSERT … SELECT`` in id ranges (no
  subscriber is loaded into Python; a second fan-out of the same digest adds nothing);
- ``claim`` moves due rows to ``sending`` in one statement (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), with what is
  needed to send them: the subscriber's address and current state (someone who left since is skipped);
- each send is recorded as soon as it ends, by the claim's holder only (``claimed_by``);
- a row left in ``sending`` by a dead worker is claimable again once its lease is over (``release_stale``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any

from sqlalchemy import Engine, Integer, bindparam, func, literal, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from digests.subscribers import SubscriberState
from storage.subscribers import SUBSCRIBER
from storage.tables import DUE_LETTERS, LetterRecord

LETTER = LetterRecord.__table__  # type: ignore[attr-defined]
FAN_OUT_RANGE = 5000
"""Subscriber ids copied per transaction by ``fan_out``."""


class LetterState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    """The server said "later" (4xx); tried again at ``next_attempt_at``."""
    REFUSED = "refused"
    """The server refused the address (5xx): a bounce, counted on the subscriber."""
    SKIPPED = "skipped"
    """Not sent: the subscriber left (or was never confirmed) before its turn."""
    DEAD = "dead"
    """Deferred too many times: given up."""


class LetterKind(StrEnum):
    DIGEST = "digest"
    CONFIRM = "confirm"
    WELCOME = "welcome"


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed letter with its subscriber as they are now."""

    id: int
    message_id: str
    kind: LetterKind
    attempts: int
    key: str
    address: str | None
    """``None``: the subscriber was removed."""
    subscriber_state: SubscriberState | None
    cadence: str


_HELD = (LETTER.c.state == LetterState.SENDING.value, LETTER.c.claimed_by == bindparam("p_worker"))
_DUE = (
    select(LETTER.c.id)
    .where(text(f"letter.{DUE_LETTERS}"), LETTER.c.next_attempt_at <= bindparam("p_now"))
    .order_by(LETTER.c.next_attempt_at, LETTER.c.id)
    .limit(bindparam("p_limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
_CLAIM = (
    update(LETTER)
    .where(LETTER.c.id.in_(_DUE.scalar_subquery()), LETTER.c.state.in_(("pending", "deferred")))
    .values(
        state=LetterState.SENDING.value,
        claimed_by=bindparam("p_worker"),
        claimed_at=bindparam("p_now"),
        attempts=LETTER.c.attempts + 1,
    )
    .returning(LETTER.c.id, LETTER.c.message_id, LETTER.c.kind, LETTER.c.attempts, LETTER.c.subscriber_key)
)
_RECORD = (
    update(LETTER)
    .where(LETTER.c.id == bindparam("p_id"), *_HELD)
    .values(
        state=bindparam("p_state"),
        next_attempt_at=bindparam("p_next"),
        last_error=bindparam("p_error"),
        sent_at=bindparam("p_sent"),
        claimed_by=None,
    )
)


class Letters:
    def __init__(self, engine: Engine, now: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.now = now or partial(datetime.now, UTC)

    def _insert(self) -> Any:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(LETTER)

    def fan_out(self, message_id: str, cadence: str, kind: LetterKind = LetterKind.DIGEST) -> int:
        """One pending letter of ``message_id`` per confirmed subscriber with ``cadence``; returns how many were
        added (0 the second time)."""
        with self.engine.connect() as connection:
            last = connection.execute(select(func.max(SUBSCRIBER.c.id))).scalar() or 0
        added = 0
        now = self.now()
        for start in range(0, last, FAN_OUT_RANGE):
            chosen = select(
                literal(message_id),
                SUBSCRIBER.c.key,
                literal(kind.value),
                literal(LetterState.PENDING.value),
                literal(0),
                literal(now, LETTER.c.next_attempt_at.type),
                literal(now, LETTER.c.created_at.type),
            ).where(
                SUBSCRIBER.c.id > start,
                SUBSCRIBER.c.id <= start + FAN_OUT_RANGE,
                SUBSCRIBER.c.state == SubscriberState.CONFIRMED.value,
                SUBSCRIBER.c.cadence == cadence,
            )
            statement = (
                self._insert()
                .from_select(
                    ["message_id", "subscriber_key", "kind", "state", "attempts", "next_attempt_at", "created_at"],
                    chosen,
                )
                .on_conflict_do_nothing()
                .returning(LETTER.c.id)
            )
            with self.engine.begin() as connection:  # counted from RETURNING: psycopg's rowcount here is -1
                added += len(connection.execute(statement).all())
        return added

    def queue(self, message_id: str, key: str, kind: LetterKind) -> bool:
        """One letter (a confirmation, a welcome) for one subscriber; ``False`` if it was queued before."""
        now = self.now()
        row = {
            "message_id": message_id,
            "subscriber_key": key,
            "kind": kind.value,
            "state": LetterState.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        with self.engine.begin() as connection:
            return bool(connection.execute(self._insert().values(**row).on_conflict_do_nothing()).rowcount)

    def queue_confirmation(self, key: str) -> bool:
        """A new confirmation email for ``key`` (each request its own letter: its link is made when it is sent)."""
        return self.queue(f"confirm:{self.now().isoformat(timespec='microseconds')}", key, LetterKind.CONFIRM)

    def claim(self, worker: str, limit: int) -> list[Claimed]:
        """Up to ``limit`` due letters, now ``sending`` and held by ``worker``, oldest first."""
        with self.engine.begin() as connection:
            rows = connection.execute(_CLAIM, {"p_worker": worker, "p_now": self.now(), "p_limit": limit}).all()
            if not rows:
                return []
            keys = {row.subscriber_key for row in rows}
            people = {
                row.key: row
                for row in connection.execute(
                    select(SUBSCRIBER.c.key, SUBSCRIBER.c.address, SUBSCRIBER.c.state, SUBSCRIBER.c.cadence).where(
                        SUBSCRIBER.c.key.in_(keys)
                    )
                )
            }
        claimed = []
        for row in sorted(rows, key=lambda row: row.id):
            person = people.get(row.subscriber_key)
            claimed.append(
                Claimed(
                    row.id,
                    row.message_id,
                    LetterKind(row.kind),
                    row.attempts,
                    row.subscriber_key,
                    person.address if person else None,
                    SubscriberState(person.state) if person else None,
                    person.cadence if person else "",
                )
            )
        return claimed

    def recent(self, key: str, kind: LetterKind, since: datetime) -> int:
        """How many letters of ``kind`` were queued for ``key`` since ``since`` (the subscribe form's limit)."""
        query = (
            select(func.count())
            .select_from(LETTER)
            .where(LETTER.c.subscriber_key == key, LETTER.c.kind == kind.value, LETTER.c.created_at >= since)
        )
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar() or 0)

    def due(self) -> int:
        """How many letters are due now."""
        query = select(func.count()).where(text(f"letter.{DUE_LETTERS}"), LETTER.c.next_attempt_at <= self.now())
        with self.engine.connect() as connection:
            return int(connection.execute(query.select_from(LETTER)).scalar() or 0)

    def _record(
        self,
        worker: str,
        letter_id: int,
        state: LetterState,
        error: str | None = None,
        next_at: datetime | None = None,
    ) -> bool:
        now = self.now()
        values = {
            "p_id": letter_id,
            "p_worker": worker,
            "p_state": state.value,
            "p_next": next_at or now,
            "p_error": error,
            "p_sent": now if state is LetterState.SENT else None,
        }
        with self.engine.begin() as connection:
            return bool(connection.execute(_RECORD, values).rowcount)

    def sent(self, worker: str, letter_id: int) -> bool:
        """Record a letter the server took; ``False`` if ``worker`` no longer held it."""
        return self._record(worker, letter_id, LetterState.SENT)

    def deferred(self, worker: str, letter_id: int, error: str, next_at: datetime, dead: bool = False) -> bool:
        return self._record(worker, letter_id, LetterState.DEAD if dead else LetterState.DEFERRED, error, next_at)

    def refused(self, worker: str, letter_id: int, error: str) -> bool:
        return self._record(worker, letter_id, LetterState.REFUSED, error)

    def skipped(self, worker: str, letter_id: int, why: str) -> bool:
        return self._record(worker, letter_id, LetterState.SKIPPED, why)

    def release(self, worker: str, letter_ids: Iterable[int], at: datetime | None = None) -> int:
        """Give back claimed letters that were not tried (a paused send), due again at ``at``."""
        ids = list(letter_ids)
        if not ids:
            return 0
        with self.engine.begin() as connection:
            released = connection.execute(
                update(LETTER)
                .where(*_HELD, LETTER.c.id.in_(ids))
                .values(
                    state=LetterState.PENDING.value,
                    attempts=LETTER.c.attempts - 1,
                    claimed_by=None,
                    next_attempt_at=at or self.now(),
                ),
                {"p_worker": worker},
            )
        return released.rowcount or 0

    def release_stale(self, lease: timedelta) -> int:
        """Letters left ``sending`` longer than ``lease`` (their worker died): pending again. One of them may have
        reached the server before the crash; its resend has the same ``Message-ID``."""
        with self.engine.begin() as connection:
            released = connection.execute(
                update(LETTER)
                .where(LETTER.c.state == LetterState.SENDING.value, LETTER.c.claimed_at < self.now() - lease)
                .values(state=LetterState.PENDING.value, claimed_by=None)
            )
        return released.rowcount or 0

    def progress(self, message_id: str | None = None) -> dict[str, int]:
        """Letters by state (of one message, or all), every state named."""
        query = select(LETTER.c.state, func.count()).group_by(LETTER.c.state)
        if message_id is not None:
            query = query.where(LETTER.c.message_id == message_id)
        with self.engine.connect() as connection:
            found = {str(state): int(count) for state, count in connection.execute(query)}
        return {state.value: found.get(state.value, 0) for state in LetterState}

    def messages(self) -> list[tuple[str, dict[str, int]]]:
        """Each message with letters, newest first, with its letters by state."""
        query = select(LETTER.c.message_id, LETTER.c.state, func.count(), func.max(LETTER.c.id).label("last")).group_by(
            LETTER.c.message_id, LETTER.c.state
        )
        found: dict[str, dict[str, int]] = {}
        last: dict[str, int] = {}
        with self.engine.connect() as connection:
            for message_id, state, count, newest in connection.execute(query):
                found.setdefault(message_id, {s.value: 0 for s in LetterState})[state] = int(count)
                last[message_id] = max(last.get(message_id, 0), int(newest))
        return sorted(found.items(), key=lambda item: -last[item[0]])
