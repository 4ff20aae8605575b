"""The operator's side of the outbox: what is queued and how it stands (backlog, rows, stale claims, failing
destinations), the retry and requeue commands, and the workers' heartbeats that tell a live claim from a stranded
one. ``DeliveryStore`` (``storage.delivery``) combines it with the workers' side (``storage.outbox_rows``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, func, select, update
from sqlalchemy.engine import Connection

from digests.delivery import DeliveryState, Destination, OutboxEntry
from storage.outbox_rows import DUE_STATES, WITHDRAWN
from storage.records import (
    DESTINATION,
    DESTINATIONS,
    OUTBOX,
    RUN_OVER,
    STATE,
    aware,
    destination_of,
    entry_of,
    insert_ignoring_duplicates,
)

HEARTBEAT_PREFIX = "worker:"
FORGOTTEN_AFTER = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class StaleClaim:
    """Rows in ``sending`` whose holder stopped reporting: it died or hangs. They are settled when their lease
    runs out (``claim_lease_seconds`` after ``oldest_claim``)."""

    holder: str
    rows: int
    oldest_claim: datetime
    last_heartbeat: datetime | None


class OutboxOps:
    """Reports and operator commands over the outbox's ``engine``, on the clock ``now``."""

    engine: Engine
    now: Callable[[], datetime]

    # -- rows and commands -------------------------------------------------------------------------------
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
                    (DESTINATION.c.disabled_reason.is_(None)) | DESTINATION.c.disabled_reason.notin_(WITHDRAWN),
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
                        and_(~DESTINATION.c.enabled, DESTINATION.c.disabled_reason.notin_(WITHDRAWN))
                    )
                ).mappings()
            ]
        return dead, disabled

    # -- live claims and stranded ones -------------------------------------------------------------------
    def heartbeat(self, worker: str) -> set[int]:
        """``worker`` is alive: its heartbeat, and a fresh lease on every row it still holds, whose ids are
        returned (a row taken over by another worker is not among them). Written every few seconds while it works
        the outbox."""
        now = self.now()
        row = {"key": HEARTBEAT_PREFIX + worker, "value": '"alive"', "updated_at": now}
        with self.engine.begin() as connection:
            renewed = set(
                connection.execute(
                    update(OUTBOX)
                    .where(OUTBOX.c.state == DeliveryState.SENDING.value, OUTBOX.c.claimed_by == worker)
                    .values(claimed_at=now)
                    .returning(OUTBOX.c.id)
                ).scalars()
            )
            if not insert_ignoring_duplicates(connection, STATE, [row]):
                connection.execute(update(STATE).where(STATE.c.key == row["key"]).values(updated_at=now))
                return renewed
            # A new worker: forget those silent for a day (killed without a clean stop, long settled).
            connection.execute(
                STATE.delete().where(
                    STATE.c.key.startswith(HEARTBEAT_PREFIX), STATE.c.updated_at < now - FORGOTTEN_AFTER
                )
            )
        return renewed

    def forget_worker(self, worker: str) -> None:
        """``worker`` stopped cleanly and holds nothing: drop its heartbeat."""
        with self.engine.begin() as connection:
            connection.execute(STATE.delete().where(STATE.c.key == HEARTBEAT_PREFIX + worker))

    def stale_claims(self, silent_for: timedelta) -> list[StaleClaim]:
        """Holders of rows in ``sending`` that have not sent a heartbeat for ``silent_for`` (or never did)."""
        held = (
            select(OUTBOX.c.claimed_by, func.count(), func.min(OUTBOX.c.claimed_at))
            .where(OUTBOX.c.state == DeliveryState.SENDING.value)
            .group_by(OUTBOX.c.claimed_by)
        )
        with self.engine.connect() as connection:
            holders = connection.execute(held).all()
            keys = [HEARTBEAT_PREFIX + str(holder) for holder, _, _ in holders]
            beats = {
                key.removeprefix(HEARTBEAT_PREFIX): aware(at)
                for key, at in connection.execute(select(STATE.c.key, STATE.c.updated_at).where(STATE.c.key.in_(keys)))
            }
        cutoff = self.now() - silent_for
        return [
            StaleClaim(str(holder), count, aware(oldest), beats.get(str(holder)))
            for holder, count, oldest in holders
            if (beat := beats.get(str(holder))) is None or beat < cutoff
        ]

    def failing_destinations(self, at_least: int) -> list[Destination]:
        """Enabled destinations whose last ``at_least`` or more tries all failed (none delivered since)."""
        query = DESTINATIONS.where(DESTINATION.c.enabled, DESTINATION.c.failures >= at_least, ~RUN_OVER).order_by(
            DESTINATION.c.name
        )
        with self.engine.connect() as connection:
            return [destination_of(row) for row in connection.execute(query).mappings()]
