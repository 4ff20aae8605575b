"""The outbox rows: claiming them for a worker, recording what happened, settling those a crash left in
``sending``, and the operator's retry/requeue. ``DeliveryStore`` (``storage.delivery``) builds on this.

Invariants the database enforces, not the callers:
- a row moves ``pending/failed → sending`` in one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)``
  statement, so several workers (several processes on PostgreSQL) never claim the same row;
- results are recorded only by the worker that holds the claim (``claimed_by``), so a reconciled row is never
  overwritten by a worker that was presumed dead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, bindparam, func, select, update
from sqlalchemy.engine import Connection

from digests.delivery import DeliveryState, Destination, Message, OutboxEntry
from storage.records import DESTINATION, MESSAGE, OUTBOX, aware, destination_of, entry_of, message_of

DUE_STATES = (DeliveryState.PENDING.value, DeliveryState.FAILED.value)
REMOVED_FROM_CONFIG = "removed from the config's [[outputs]]"


@dataclass(frozen=True, slots=True)
class Claim:
    """A claimed outbox row with what is needed to send it."""

    entry: OutboxEntry
    message: Message
    destination: Destination


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one claimed row: recorded with others in one transaction."""

    entry_id: int
    state: DeliveryState
    next_attempt_at: datetime
    external_id: str | None = None
    last_error: str | None = None
    sent_at: datetime | None = None


class OutboxRows:
    """The outbox's rows over ``engine``, on the clock ``now``."""

    engine: Engine
    now: Callable[[], datetime]

    # -- the outbox --------------------------------------------------------------------------------------
    def claim(self, worker: str, limit: int) -> list[Claim]:
        """Claim up to ``limit`` due rows of enabled destinations for ``worker``: they become ``sending``."""
        now = self.now()
        due = (
            select(OUTBOX.c.id)
            .join(DESTINATION, DESTINATION.c.name == OUTBOX.c.destination)
            .where(OUTBOX.c.state.in_(DUE_STATES), OUTBOX.c.next_attempt_at <= now, DESTINATION.c.enabled)
            .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=OUTBOX)
        )
        claim = (
            update(OUTBOX)
            .where(OUTBOX.c.id.in_(due.scalar_subquery()), OUTBOX.c.state.in_(DUE_STATES))
            .values(
                state=DeliveryState.SENDING.value, claimed_by=worker, claimed_at=now, attempts=OUTBOX.c.attempts + 1
            )
            .returning(*OUTBOX.c)
        )
        with self.engine.begin() as connection:
            entries = [entry_of(row) for row in connection.execute(claim).mappings()]
            return self._claims(connection, sorted(entries, key=lambda e: e.id))

    def _claims(self, connection: Connection, entries: Sequence[OutboxEntry]) -> list[Claim]:
        if not entries:
            return []
        message_ids = {e.message_id for e in entries}
        names = {e.destination for e in entries}
        messages = {
            row["id"]: message_of(row)
            for row in connection.execute(select(MESSAGE).where(MESSAGE.c.id.in_(message_ids))).mappings()
        }
        destinations = {
            row["name"]: destination_of(row)
            for row in connection.execute(select(DESTINATION).where(DESTINATION.c.name.in_(names))).mappings()
        }
        return [Claim(e, messages[e.message_id], destinations[e.destination]) for e in entries]

    def _finish(self, entry_id: int, worker: str, **values: Any) -> bool:
        with self.engine.begin() as connection:
            result = connection.execute(
                update(OUTBOX)
                .where(
                    OUTBOX.c.id == entry_id,
                    OUTBOX.c.state == DeliveryState.SENDING.value,
                    OUTBOX.c.claimed_by == worker,
                )
                .values(**values)
            )
            return result.rowcount == 1

    def record(self, worker: str, results: Sequence[Result], disable: Mapping[str, str] | None = None) -> None:
        """Record the results of ``worker``'s sends in one transaction (rows it no longer holds are left alone),
        then disable the destinations in ``disable`` (name → reason)."""
        if results:
            statement = (
                update(OUTBOX)
                .where(
                    OUTBOX.c.id == bindparam("b_id"),
                    OUTBOX.c.state == DeliveryState.SENDING.value,
                    OUTBOX.c.claimed_by == worker,
                )
                .values(
                    state=bindparam("b_state"),
                    next_attempt_at=bindparam("b_next"),
                    external_id=bindparam("b_external"),
                    last_error=bindparam("b_error"),
                    sent_at=bindparam("b_sent"),
                )
            )
            rows = [
                {
                    "b_id": r.entry_id,
                    "b_state": r.state.value,
                    "b_next": r.next_attempt_at,
                    "b_external": r.external_id,
                    "b_error": r.last_error,
                    "b_sent": r.sent_at,
                }
                for r in results
            ]
            with self.engine.begin() as connection:
                connection.execute(statement, rows)
        for name, reason in (disable or {}).items():
            self.disable_destination(name, reason)

    def record_sent(self, entry_id: int, worker: str, external_id: str | None) -> bool:
        """The send succeeded. ``False`` if ``worker`` no longer holds the claim (nothing is changed)."""
        return self._finish(
            entry_id,
            worker,
            state=DeliveryState.SENT.value,
            external_id=external_id,
            sent_at=self.now(),
            last_error=None,
        )

    def record_failure(self, entry_id: int, worker: str, error: str, next_attempt_at: datetime) -> bool:
        """The send failed and will be tried again at ``next_attempt_at``."""
        return self._finish(
            entry_id, worker, state=DeliveryState.FAILED.value, last_error=error, next_attempt_at=next_attempt_at
        )

    def release(self, entry_id: int, worker: str) -> bool:
        """Give a claimed row back untouched (shutdown before it was sent): ``pending``, the try not counted."""
        return self._finish(
            entry_id, worker, state=DeliveryState.PENDING.value, attempts=OUTBOX.c.attempts - 1, claimed_by=None
        )

    def stranded(self, worker: str, claimed_before: datetime | None) -> list[Claim]:
        """Take over rows left in ``sending`` by a worker that died (claimed before ``claimed_before``; ``None``:
        every row in ``sending``, which is right only when no other worker can be alive). They become ``worker``'s,
        still ``sending``, so exactly one reconciler checks each."""
        now = self.now()
        condition = [OUTBOX.c.state == DeliveryState.SENDING.value]
        if claimed_before is not None:
            condition.append(OUTBOX.c.claimed_at < claimed_before)
        stale = select(OUTBOX.c.id).where(*condition).with_for_update(skip_locked=True, of=OUTBOX)
        take = (
            update(OUTBOX)
            .where(OUTBOX.c.id.in_(stale.scalar_subquery()), *condition)
            .values(claimed_by=worker, claimed_at=now)
            .returning(*OUTBOX.c)
        )
        with self.engine.begin() as connection:
            entries = [entry_of(row) for row in connection.execute(take).mappings()]
            return self._claims(connection, sorted(entries, key=lambda e: e.id))

    def entries(self, state: DeliveryState | None = None, limit: int = 100) -> list[OutboxEntry]:
        query = select(OUTBOX).order_by(OUTBOX.c.id.desc()).limit(limit)
        if state is not None:
            query = query.where(OUTBOX.c.state == state.value)
        with self.engine.connect() as connection:
            return [entry_of(row) for row in connection.execute(query).mappings()]

    def retry(self, entry_id: int) -> bool:
        """Make a ``failed`` or ``dead`` row due now (its destination is re-enabled). ``False`` if no such row."""
        with self.engine.begin() as connection:
            row = connection.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id == entry_id, OUTBOX.c.state.in_([*DUE_STATES, DeliveryState.DEAD.value]))
                .values(state=DeliveryState.PENDING.value, next_attempt_at=self.now(), attempts=0)
                .returning(OUTBOX.c.destination)
            ).first()
            if row is None:
                return False
            self._enable(connection, [row[0]])
            return True

    def requeue_dead(self, destination: str | None = None) -> int:
        """Every ``dead`` row (of ``destination``, if given) back to ``pending`` with its tries reset; their
        destinations are re-enabled. Returns how many rows."""
        condition = [OUTBOX.c.state == DeliveryState.DEAD.value]
        if destination is not None:
            condition.append(OUTBOX.c.destination == destination)
        with self.engine.begin() as connection:
            names = (
                connection.execute(
                    update(OUTBOX)
                    .where(*condition)
                    .values(state=DeliveryState.PENDING.value, next_attempt_at=self.now(), attempts=0)
                    .returning(OUTBOX.c.destination)
                )
                .scalars()
                .all()
            )
            self._enable(connection, set(names))
            return len(names)

    def _enable(self, connection: Connection, names: Iterable[str]) -> None:
        names = list(names)
        if names:
            connection.execute(
                update(DESTINATION)
                .where(
                    DESTINATION.c.name.in_(names),
                    (DESTINATION.c.disabled_reason.is_(None)) | (DESTINATION.c.disabled_reason != REMOVED_FROM_CONFIG),
                )
                .values(enabled=True, disabled_reason=None)
            )

    def backlog(self) -> dict[str, int]:
        """Rows by state (every state present, zeros included)."""
        counts = {state.value: 0 for state in DeliveryState}
        with self.engine.connect() as connection:
            for state, count in connection.execute(select(OUTBOX.c.state, func.count()).group_by(OUTBOX.c.state)):
                counts[state] = count
        return counts

    def backlog_by_kind(self) -> Counter[tuple[str, str]]:
        """Rows by (state, destination kind), for ``/metrics``."""
        query = (
            select(OUTBOX.c.state, DESTINATION.c.kind, func.count())
            .join(DESTINATION, DESTINATION.c.name == OUTBOX.c.destination)
            .group_by(OUTBOX.c.state, DESTINATION.c.kind)
        )
        with self.engine.connect() as connection:
            return Counter({(state, kind): count for state, kind, count in connection.execute(query)})

    def next_due(self) -> datetime | None:
        """When the earliest ``pending``/``failed`` row of an enabled destination is due."""
        query = (
            select(func.min(OUTBOX.c.next_attempt_at))
            .join(DESTINATION, DESTINATION.c.name == OUTBOX.c.destination)
            .where(OUTBOX.c.state.in_(DUE_STATES), DESTINATION.c.enabled)
        )
        with self.engine.connect() as connection:
            found = connection.execute(query).scalar()
        return aware(found) if found else None

    def dead_or_disabled(self) -> tuple[list[OutboxEntry], list[Destination]]:
        """Dead rows and disabled destinations, for operator notices."""
        with self.engine.connect() as connection:
            dead = [
                entry_of(row)
                for row in connection.execute(
                    select(OUTBOX).where(OUTBOX.c.state == DeliveryState.DEAD.value).order_by(OUTBOX.c.id)
                ).mappings()
            ]
            disabled = [
                destination_of(row)
                for row in connection.execute(
                    select(DESTINATION).where(
                        and_(~DESTINATION.c.enabled, DESTINATION.c.disabled_reason != REMOVED_FROM_CONFIG)
                    )
                ).mappings()
            ]
        return dead, disabled

    def _disable(self, connection: Connection, name: str, reason: str) -> None:
        connection.execute(
            update(DESTINATION).where(DESTINATION.c.name == name).values(enabled=False, disabled_reason=reason)
        )

    def disable_destination(self, name: str, reason: str) -> None:
        """Stop delivering to ``name``: it is gone. Its rows still due become ``dead`` with the reason."""
        with self.engine.begin() as connection:
            self._disable(connection, name, reason)
            connection.execute(
                update(OUTBOX)
                .where(OUTBOX.c.destination == name, OUTBOX.c.state.in_(DUE_STATES))
                .values(state=DeliveryState.DEAD.value, last_error=f"destination disabled: {reason}")
            )
