"""The outbox rows as workers see them: claiming rows for sends that can start now, recording each send as soon as
it ends, renewing a claim, settling rows a crash left in ``sending``, and disabling a destination that is gone.
The operator's view (backlog, retries, stale claims) is in ``storage.outbox_ops``; ``DeliveryStore``
(``storage.delivery``) builds on both.

Invariants the database enforces, not the callers:
- a row moves ``pending/failed → sending`` in one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)``
  statement, so several workers (several processes on PostgreSQL) never claim the same row;
- results are recorded only by the worker that holds the claim (``claimed_by``), so a reconciled row is never
  overwritten by a worker that was presumed dead;
- transactions lock destination rows before outbox rows, in name order, so concurrent workers never deadlock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Engine, Integer, bindparam, case, or_, select, text, update
from sqlalchemy.engine import Connection

from digests.delivery import DeliveryState, Destination, Message, OutboxEntry
from storage.records import DESTINATION, MESSAGE, OUTBOX, RUN_OVER, destination_of, entry_of, message_of
from storage.tables import DUE_ROWS

DUE_STATES = (DeliveryState.PENDING.value, DeliveryState.FAILED.value)
REMOVED_FROM_CONFIG = "removed from the config's [[outputs]]"
UNSUBSCRIBED = "unsubscribed from chat"
UNINSTALLED = "the app was removed from the workspace"
WITHDRAWN = (REMOVED_FROM_CONFIG, UNSUBSCRIBED, UNINSTALLED)
"""Reasons a destination was disabled by someone's choice, not a failure: no operator notice, and ``requeue-dead``
does not turn it back on."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A claimed outbox row with what is needed to send it."""

    entry: OutboxEntry
    message: Message
    destination: Destination


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one claimed row, recorded as soon as its send ends."""

    entry_id: int
    destination: str
    state: DeliveryState
    next_attempt_at: datetime
    external_id: str | None = None
    last_error: str | None = None
    sent_at: datetime | None = None
    destination_failed: bool = False
    """The destination did not take it (timeout, reset, 5xx, 429): the try lengthens the destination's run of
    failures. An invalid payload or a gone destination does not count here."""


def _held_by(worker: Any) -> tuple[Any, Any]:
    return OUTBOX.c.state == DeliveryState.SENDING.value, OUTBOX.c.claimed_by == worker


# The hot statements, built once (SQLAlchemy then only binds values: building them per call cost more than running
# them). Parameter names start with ``p_`` so they never clash with column names.
_DUE = (
    select(OUTBOX.c.id)
    .join(DESTINATION, DESTINATION.c.name == OUTBOX.c.destination)
    .where(text(f"outbox.{DUE_ROWS}"), OUTBOX.c.next_attempt_at <= bindparam("p_now"), DESTINATION.c.enabled)
    .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id)
    .limit(bindparam("p_limit", type_=Integer))
    .with_for_update(skip_locked=True, of=OUTBOX)
)
_CLAIM = (
    update(OUTBOX)
    .where(OUTBOX.c.id.in_(_DUE.scalar_subquery()), OUTBOX.c.state.in_(DUE_STATES))
    .values(
        state=DeliveryState.SENDING.value,
        claimed_by=bindparam("p_worker"),
        claimed_at=bindparam("p_now"),
        attempts=OUTBOX.c.attempts + 1,
    )
    .returning(*OUTBOX.c)
)
_RECORD = (
    update(OUTBOX)
    .where(OUTBOX.c.id == bindparam("p_id"), *_held_by(bindparam("p_worker")))
    .values(
        state=bindparam("p_state"),
        next_attempt_at=bindparam("p_next"),
        external_id=bindparam("p_external"),
        last_error=bindparam("p_error"),
        sent_at=bindparam("p_sent"),
    )
)
_RELEASE = (
    update(OUTBOX)
    .where(*_held_by(bindparam("p_worker")), OUTBOX.c.id.in_(bindparam("p_ids", expanding=True)))
    .values(state=DeliveryState.PENDING.value, attempts=OUTBOX.c.attempts - 1, claimed_by=None)
)
_MESSAGES = select(MESSAGE).where(MESSAGE.c.id.in_(bindparam("p_ids", expanding=True)))
_DESTINATIONS = select(DESTINATION).where(DESTINATION.c.name.in_(bindparam("p_names", expanding=True)))
_NEW_RUN = or_(bindparam("p_restart", type_=Boolean), RUN_OVER)
_FAILED = (
    update(DESTINATION)
    .where(DESTINATION.c.name == bindparam("p_name"))
    .values(
        failures=case((_NEW_RUN, bindparam("p_count")), else_=DESTINATION.c.failures + bindparam("p_count")),
        failing_since=case((_NEW_RUN, bindparam("p_now")), else_=DESTINATION.c.failing_since),
        last_error=bindparam("p_error"),
    )
)
MESSAGE_CACHE_SIZE = 256


class OutboxRows:
    """The outbox's rows over ``engine``, on the clock ``now``. Messages never change once stored, so the ones
    claimed recently are kept decoded in memory."""

    engine: Engine
    now: Callable[[], datetime]
    _messages: OrderedDict[str, Message]

    def claim(self, worker: str, limit: int) -> list[Claim]:
        """Claim up to ``limit`` due rows of enabled destinations for ``worker``: they become ``sending``."""
        return self.exchange(worker, (), limit)

    def exchange(self, worker: str, results: Sequence[Result], want: int, release: Sequence[int] = ()) -> list[Claim]:
        """In one transaction: note each destination's run of failures, record ``worker``'s finished sends (rows
        it no longer holds are left alone), give back the claimed rows in ``release`` untouched (``pending``, the
        try not counted), and claim up to ``want`` due rows.

        The claim skips rows other workers hold, so it never waits; destination rows are locked first, in name
        order, so concurrent workers on PostgreSQL cannot deadlock."""
        with self.engine.begin() as connection:
            self._note_health(connection, results)
            if results:
                connection.execute(
                    _RECORD,
                    [
                        {
                            "p_id": r.entry_id,
                            "p_worker": worker,
                            "p_state": r.state.value,
                            "p_next": r.next_attempt_at,
                            "p_external": r.external_id,
                            "p_error": r.last_error,
                            "p_sent": r.sent_at,
                        }
                        for r in results
                    ],
                )
            if release:
                connection.execute(_RELEASE, {"p_worker": worker, "p_ids": list(release)})
            if want <= 0:
                return []
            claimed = connection.execute(_CLAIM, {"p_worker": worker, "p_now": self.now(), "p_limit": want})
            return self._claims(connection, sorted((entry_of(row) for row in claimed.mappings()), key=lambda e: e.id))

    def _claims(self, connection: Connection, entries: Sequence[OutboxEntry]) -> list[Claim]:
        if not entries:
            return []
        cache = self._messages
        missing = list({e.message_id for e in entries} - cache.keys())
        if missing:
            for row in connection.execute(_MESSAGES, {"p_ids": missing}).mappings():
                cache[row["id"]] = message_of(row)
        for entry in entries:
            cache.move_to_end(entry.message_id)
        messages = {e.message_id: cache[e.message_id] for e in entries}
        while len(cache) > MESSAGE_CACHE_SIZE:
            cache.popitem(last=False)
        names = list({e.destination for e in entries})
        destinations = {
            row["name"]: destination_of(row) for row in connection.execute(_DESTINATIONS, {"p_names": names}).mappings()
        }
        return [Claim(e, messages[e.message_id], destinations[e.destination]) for e in entries]

    def _note_health(self, connection: Connection, results: Sequence[Result]) -> None:
        """Each failed try lengthens its destination's run of failures, or starts a new run when a delivery
        arrived since the run began (in these results or before). A delivery itself writes nothing here."""
        runs: dict[str, tuple[bool, int, str | None]] = {}  # name → (a delivery came first, failures, last error)
        for result in results:
            restart, failures, _ = runs.get(result.destination, (False, 0, None))
            if result.state is DeliveryState.SENT:
                runs[result.destination] = (True, 0, None)
            elif result.destination_failed:
                runs[result.destination] = (restart, failures + 1, result.last_error)
        failed = [
            {"p_name": name, "p_restart": restart, "p_count": failures, "p_error": error, "p_now": self.now()}
            for name, (restart, failures, error) in sorted(runs.items())
            if failures
        ]
        if failed:
            connection.execute(_FAILED, failed)

    def renew(self, entry_id: int, worker: str) -> bool:
        """Extend ``worker``'s claim on a row (a fresh lease from now). ``False``: the claim was taken over (its
        lease ran out and another worker settled it), so ``worker`` must not send it."""
        return self._finish(entry_id, worker, claimed_at=self.now())

    def _finish(self, entry_id: int, worker: str, **values: Any) -> bool:
        with self.engine.begin() as connection:
            result = connection.execute(
                update(OUTBOX).where(OUTBOX.c.id == entry_id, *_held_by(worker)).values(**values)
            )
            return result.rowcount == 1

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
