"""The delivery store: destinations, queued messages and the outbox, operator notices and service state.

Invariants the database enforces, not the callers:
- a message id (kind + period + revision) is stored once, and a (message, destination) outbox row exists once, so
  two overlapping planners queue one copy;
- a row moves ``pending/failed → sending`` in one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)``
  statement, so several workers (several processes on PostgreSQL) never claim the same row;
- results are recorded only by the worker that holds the claim (``claimed_by``), so a reconciled row is never
  overwritten by a worker that was presumed dead.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

from sqlalchemy import Engine, Table, and_, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from digests.delivery import DeliveryState, Destination, Message, OutboxEntry, Subscription, Variant
from storage.tables import DestinationRecord, MessageRecord, NoticeRecord, OutboxRecord, ServiceStateRecord

_DESTINATION: Table = DestinationRecord.__table__  # type: ignore[attr-defined]
_MESSAGE: Table = MessageRecord.__table__  # type: ignore[attr-defined]
_OUTBOX: Table = OutboxRecord.__table__  # type: ignore[attr-defined]
_NOTICE: Table = NoticeRecord.__table__  # type: ignore[attr-defined]
_STATE: Table = ServiceStateRecord.__table__  # type: ignore[attr-defined]

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


@dataclass(frozen=True, slots=True)
class Notice:
    key: str
    text: str
    raised_at: datetime
    resolved_at: datetime | None = None


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _insert_ignoring_duplicates(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows``, skipping any whose key already exists; returns how many were inserted."""
    if not rows:
        return 0
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    key = next(iter(table.primary_key.columns))
    statement = dialect.insert(table).on_conflict_do_nothing().returning(key)
    return len(connection.execute(statement, list(rows)).all())


def _destination(row: RowMapping) -> Destination:
    return Destination(
        name=row["name"],
        kind=row["kind"],
        target=json.loads(row["target"]),
        subscription=Subscription(**json.loads(row["subscription"])),
        origin=row["origin"],
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        created_at=_aware(row["created_at"]),
    )


def _message(row: RowMapping) -> Message:
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
        created_at=_aware(row["created_at"]),
    )


def _entry(row: RowMapping) -> OutboxEntry:
    return OutboxEntry(
        id=row["id"],
        message_id=row["message_id"],
        destination=row["destination"],
        variant=Variant(row["variant"]),
        state=DeliveryState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=_aware(row["next_attempt_at"]),
        last_error=row["last_error"],
        external_id=row["external_id"],
        claimed_by=row["claimed_by"],
        sent_at=_aware(row["sent_at"]) if row["sent_at"] else None,
    )


class DeliveryStore:
    """Destinations, messages, the outbox, notices and service state over one SQLAlchemy engine."""

    def __init__(self, engine: Engine, now: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.now = now or partial(datetime.now, UTC)

    # -- destinations ------------------------------------------------------------------------------------
    def sync_destinations(self, wanted: Iterable[Destination], origin: str = "config") -> None:
        """Make the stored ``origin`` destinations match ``wanted``: add new ones, update settings, and disable
        those no longer wanted (their history stays). A destination disabled as gone stays disabled."""
        now = self.now()
        wanted_by_name = {d.name: d for d in wanted}
        with self.engine.begin() as connection:
            stored = {
                row["name"]: row
                for row in connection.execute(select(_DESTINATION).where(_DESTINATION.c.origin == origin)).mappings()
            }
            for name, destination in wanted_by_name.items():
                values: dict[str, Any] = {
                    "kind": destination.kind,
                    "target": json.dumps(dict(destination.target), sort_keys=True),
                    "subscription": json.dumps(asdict(destination.subscription), sort_keys=True),
                }
                existing = stored.get(name)
                if existing is None:
                    _insert_ignoring_duplicates(
                        connection,
                        _DESTINATION,
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
                connection.execute(update(_DESTINATION).where(_DESTINATION.c.name == name).values(**values))
            for name, row in stored.items():
                if name not in wanted_by_name and row["enabled"]:
                    self._disable(connection, name, REMOVED_FROM_CONFIG)

    def add_destination(self, destination: Destination) -> bool:
        """Store a new destination (e.g. a chat subscription); ``False`` if the name is taken."""
        with self.engine.begin() as connection:
            return (
                _insert_ignoring_duplicates(
                    connection,
                    _DESTINATION,
                    [
                        {
                            "name": destination.name,
                            "kind": destination.kind,
                            "origin": destination.origin,
                            "target": json.dumps(dict(destination.target), sort_keys=True),
                            "subscription": json.dumps(asdict(destination.subscription), sort_keys=True),
                            "enabled": destination.enabled,
                            "disabled_reason": destination.disabled_reason,
                            "created_at": destination.created_at or self.now(),
                        }
                    ],
                )
                == 1
            )

    def destinations(self, enabled_only: bool = False) -> list[Destination]:
        query = select(_DESTINATION).order_by(_DESTINATION.c.name)
        if enabled_only:
            query = query.where(_DESTINATION.c.enabled)
        with self.engine.connect() as connection:
            return [_destination(row) for row in connection.execute(query).mappings()]

    def destination(self, name: str) -> Destination | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(_DESTINATION).where(_DESTINATION.c.name == name)).mappings().first()
        return _destination(row) if row else None

    def _disable(self, connection: Connection, name: str, reason: str) -> None:
        connection.execute(
            update(_DESTINATION).where(_DESTINATION.c.name == name).values(enabled=False, disabled_reason=reason)
        )

    def disable_destination(self, name: str, reason: str) -> None:
        """Stop delivering to ``name``: it is gone. Its rows still due become ``dead`` with the reason."""
        with self.engine.begin() as connection:
            self._disable(connection, name, reason)
            connection.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.destination == name, _OUTBOX.c.state.in_(DUE_STATES))
                .values(state=DeliveryState.DEAD.value, last_error=f"destination disabled: {reason}")
            )

    # -- messages and queueing ---------------------------------------------------------------------------
    def queue(self, message: Message, recipients: Iterable[tuple[str, Variant]]) -> int:
        """Store ``message`` (once) and one outbox row per recipient (once each), in one transaction.

        Returns how many rows were added; queueing the same message again adds nothing."""
        now = self.now()
        with self.engine.begin() as connection:
            _insert_ignoring_duplicates(
                connection,
                _MESSAGE,
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
            return _insert_ignoring_duplicates(connection, _OUTBOX, rows)

    def message(self, message_id: str) -> Message | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(_MESSAGE).where(_MESSAGE.c.id == message_id)).mappings().first()
        return _message(row) if row else None

    def messages(self, kind: str | None = None, last_day_from: date | None = None) -> list[Message]:
        """Stored messages, oldest period first (then revision)."""
        query = select(_MESSAGE).order_by(_MESSAGE.c.last_day, _MESSAGE.c.first_day, _MESSAGE.c.revision)
        if kind is not None:
            query = query.where(_MESSAGE.c.kind == kind)
        if last_day_from is not None:
            query = query.where(_MESSAGE.c.last_day >= last_day_from)
        with self.engine.connect() as connection:
            return [_message(row) for row in connection.execute(query).mappings()]

    def recipients(self, message_id: str) -> list[tuple[str, Variant]]:
        """Who a message was queued for, with the variant each gets."""
        query = select(_OUTBOX.c.destination, _OUTBOX.c.variant).where(_OUTBOX.c.message_id == message_id)
        with self.engine.connect() as connection:
            return [(name, Variant(variant)) for name, variant in connection.execute(query.order_by(_OUTBOX.c.id))]

    def queued_destinations(self, kind: str) -> dict[tuple[date | None, date | None], set[str]]:
        """For each period of ``kind``, the destinations already queued any revision of it."""
        query = (
            select(_MESSAGE.c.first_day, _MESSAGE.c.last_day, _OUTBOX.c.destination)
            .join(_OUTBOX, _OUTBOX.c.message_id == _MESSAGE.c.id)
            .where(_MESSAGE.c.kind == kind)
        )
        found: dict[tuple[date | None, date | None], set[str]] = {}
        with self.engine.connect() as connection:
            for first, last, name in connection.execute(query):
                found.setdefault((first, last), set()).add(name)
        return found

    # -- the outbox --------------------------------------------------------------------------------------
    def claim(self, worker: str, limit: int) -> list[Claim]:
        """Claim up to ``limit`` due rows of enabled destinations for ``worker``: they become ``sending``."""
        now = self.now()
        due = (
            select(_OUTBOX.c.id)
            .join(_DESTINATION, _DESTINATION.c.name == _OUTBOX.c.destination)
            .where(_OUTBOX.c.state.in_(DUE_STATES), _OUTBOX.c.next_attempt_at <= now, _DESTINATION.c.enabled)
            .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=_OUTBOX)
        )
        claim = (
            update(_OUTBOX)
            .where(_OUTBOX.c.id.in_(due.scalar_subquery()), _OUTBOX.c.state.in_(DUE_STATES))
            .values(
                state=DeliveryState.SENDING.value, claimed_by=worker, claimed_at=now, attempts=_OUTBOX.c.attempts + 1
            )
            .returning(*_OUTBOX.c)
        )
        with self.engine.begin() as connection:
            entries = [_entry(row) for row in connection.execute(claim).mappings()]
            return self._claims(connection, sorted(entries, key=lambda e: e.id))

    def _claims(self, connection: Connection, entries: Sequence[OutboxEntry]) -> list[Claim]:
        if not entries:
            return []
        message_ids = {e.message_id for e in entries}
        names = {e.destination for e in entries}
        messages = {
            row["id"]: _message(row)
            for row in connection.execute(select(_MESSAGE).where(_MESSAGE.c.id.in_(message_ids))).mappings()
        }
        destinations = {
            row["name"]: _destination(row)
            for row in connection.execute(select(_DESTINATION).where(_DESTINATION.c.name.in_(names))).mappings()
        }
        return [Claim(e, messages[e.message_id], destinations[e.destination]) for e in entries]

    def _finish(self, entry_id: int, worker: str, **values: Any) -> bool:
        with self.engine.begin() as connection:
            result = connection.execute(
                update(_OUTBOX)
                .where(
                    _OUTBOX.c.id == entry_id,
                    _OUTBOX.c.state == DeliveryState.SENDING.value,
                    _OUTBOX.c.claimed_by == worker,
                )
                .values(**values)
            )
            return result.rowcount == 1

    def record(self, worker: str, results: Sequence[Result], disable: Mapping[str, str] | None = None) -> None:
        """Record the results of ``worker``'s sends in one transaction (rows it no longer holds are left alone),
        then disable the destinations in ``disable`` (name → reason)."""
        if results:
            statement = (
                update(_OUTBOX)
                .where(
                    _OUTBOX.c.id == bindparam("b_id"),
                    _OUTBOX.c.state == DeliveryState.SENDING.value,
                    _OUTBOX.c.claimed_by == worker,
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

    def record_dead(self, entry_id: int, worker: str, error: str) -> bool:
        """No more tries for this row."""
        return self._finish(entry_id, worker, state=DeliveryState.DEAD.value, last_error=error)

    def release(self, entry_id: int, worker: str) -> bool:
        """Give a claimed row back untouched (shutdown before it was sent): ``pending``, the try not counted."""
        return self._finish(
            entry_id, worker, state=DeliveryState.PENDING.value, attempts=_OUTBOX.c.attempts - 1, claimed_by=None
        )

    def stranded(self, worker: str, claimed_before: datetime | None) -> list[Claim]:
        """Take over rows left in ``sending`` by a worker that died (claimed before ``claimed_before``; ``None``:
        every row in ``sending``, which is right only when no other worker can be alive). They become ``worker``'s,
        still ``sending``, so exactly one reconciler checks each."""
        now = self.now()
        condition = [_OUTBOX.c.state == DeliveryState.SENDING.value]
        if claimed_before is not None:
            condition.append(_OUTBOX.c.claimed_at < claimed_before)
        stale = select(_OUTBOX.c.id).where(*condition).with_for_update(skip_locked=True, of=_OUTBOX)
        take = (
            update(_OUTBOX)
            .where(_OUTBOX.c.id.in_(stale.scalar_subquery()), *condition)
            .values(claimed_by=worker, claimed_at=now)
            .returning(*_OUTBOX.c)
        )
        with self.engine.begin() as connection:
            entries = [_entry(row) for row in connection.execute(take).mappings()]
            return self._claims(connection, sorted(entries, key=lambda e: e.id))

    def entries(self, state: DeliveryState | None = None, limit: int = 100) -> list[OutboxEntry]:
        query = select(_OUTBOX).order_by(_OUTBOX.c.id.desc()).limit(limit)
        if state is not None:
            query = query.where(_OUTBOX.c.state == state.value)
        with self.engine.connect() as connection:
            return [_entry(row) for row in connection.execute(query).mappings()]

    def entry(self, entry_id: int) -> OutboxEntry | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(_OUTBOX).where(_OUTBOX.c.id == entry_id)).mappings().first()
        return _entry(row) if row else None

    def retry(self, entry_id: int) -> bool:
        """Make a ``failed`` or ``dead`` row due now (its destination is re-enabled). ``False`` if no such row."""
        with self.engine.begin() as connection:
            row = connection.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id == entry_id, _OUTBOX.c.state.in_([*DUE_STATES, DeliveryState.DEAD.value]))
                .values(state=DeliveryState.PENDING.value, next_attempt_at=self.now(), attempts=0)
                .returning(_OUTBOX.c.destination)
            ).first()
            if row is None:
                return False
            self._enable(connection, [row[0]])
            return True

    def requeue_dead(self, destination: str | None = None) -> int:
        """Every ``dead`` row (of ``destination``, if given) back to ``pending`` with its tries reset; their
        destinations are re-enabled. Returns how many rows."""
        condition = [_OUTBOX.c.state == DeliveryState.DEAD.value]
        if destination is not None:
            condition.append(_OUTBOX.c.destination == destination)
        with self.engine.begin() as connection:
            names = (
                connection.execute(
                    update(_OUTBOX)
                    .where(*condition)
                    .values(state=DeliveryState.PENDING.value, next_attempt_at=self.now(), attempts=0)
                    .returning(_OUTBOX.c.destination)
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
                update(_DESTINATION)
                .where(
                    _DESTINATION.c.name.in_(names),
                    (_DESTINATION.c.disabled_reason.is_(None))
                    | (_DESTINATION.c.disabled_reason != REMOVED_FROM_CONFIG),
                )
                .values(enabled=True, disabled_reason=None)
            )

    def backlog(self) -> dict[str, int]:
        """Rows by state (every state present, zeros included)."""
        counts = {state.value: 0 for state in DeliveryState}
        with self.engine.connect() as connection:
            for state, count in connection.execute(select(_OUTBOX.c.state, func.count()).group_by(_OUTBOX.c.state)):
                counts[state] = count
        return counts

    def backlog_by_kind(self) -> Counter[tuple[str, str]]:
        """Rows by (state, destination kind), for ``/metrics``."""
        query = (
            select(_OUTBOX.c.state, _DESTINATION.c.kind, func.count())
            .join(_DESTINATION, _DESTINATION.c.name == _OUTBOX.c.destination)
            .group_by(_OUTBOX.c.state, _DESTINATION.c.kind)
        )
        with self.engine.connect() as connection:
            return Counter({(state, kind): count for state, kind, count in connection.execute(query)})

    def next_due(self) -> datetime | None:
        """When the earliest ``pending``/``failed`` row of an enabled destination is due."""
        query = (
            select(func.min(_OUTBOX.c.next_attempt_at))
            .join(_DESTINATION, _DESTINATION.c.name == _OUTBOX.c.destination)
            .where(_OUTBOX.c.state.in_(DUE_STATES), _DESTINATION.c.enabled)
        )
        with self.engine.connect() as connection:
            found = connection.execute(query).scalar()
        return _aware(found) if found else None

    # -- operator notices --------------------------------------------------------------------------------
    def raise_notice(self, key: str, text: str) -> bool:
        """Record an open notice once per key; ``True`` when it is new (an earlier resolved one is reopened)."""
        now = self.now()
        with self.engine.begin() as connection:
            if _insert_ignoring_duplicates(connection, _NOTICE, [{"key": key, "text": text, "raised_at": now}]):
                return True
            reopened = connection.execute(
                update(_NOTICE)
                .where(_NOTICE.c.key == key, _NOTICE.c.resolved_at.is_not(None))
                .values(text=text, raised_at=now, resolved_at=None)
            )
            return reopened.rowcount == 1

    def resolve_notices(self, prefix: str, keep: Iterable[str] = ()) -> None:
        """Resolve open notices whose key starts with ``prefix`` except those in ``keep``."""
        with self.engine.begin() as connection:
            connection.execute(
                update(_NOTICE)
                .where(
                    _NOTICE.c.key.startswith(prefix, autoescape=True),
                    _NOTICE.c.key.not_in(list(keep)),
                    _NOTICE.c.resolved_at.is_(None),
                )
                .values(resolved_at=self.now())
            )

    def open_notices(self) -> list[Notice]:
        query = select(_NOTICE).where(_NOTICE.c.resolved_at.is_(None)).order_by(_NOTICE.c.raised_at)
        with self.engine.connect() as connection:
            return [
                Notice(row["key"], row["text"], _aware(row["raised_at"]))
                for row in connection.execute(query).mappings()
            ]

    # -- service state -----------------------------------------------------------------------------------
    def state(self, key: str) -> Any:
        """A stored JSON value, or ``None``."""
        with self.engine.connect() as connection:
            raw = connection.execute(select(_STATE.c.value).where(_STATE.c.key == key)).scalar()
        return None if raw is None else json.loads(raw)

    def set_state(self, key: str, value: Any, only_if_absent: bool = False) -> bool:
        """Store a JSON value; with ``only_if_absent``, keep an existing one. ``True`` if written."""
        row = {"key": key, "value": json.dumps(value), "updated_at": self.now()}
        with self.engine.begin() as connection:
            if _insert_ignoring_duplicates(connection, _STATE, [row]):
                return True
            if only_if_absent:
                return False
            connection.execute(update(_STATE).where(_STATE.c.key == key).values(**row))
            return True

    def dead_or_disabled(self) -> tuple[list[OutboxEntry], list[Destination]]:
        """Dead rows and disabled destinations, for operator notices."""
        with self.engine.connect() as connection:
            dead = [
                _entry(row)
                for row in connection.execute(
                    select(_OUTBOX).where(_OUTBOX.c.state == DeliveryState.DEAD.value).order_by(_OUTBOX.c.id)
                ).mappings()
            ]
            disabled = [
                _destination(row)
                for row in connection.execute(
                    select(_DESTINATION).where(
                        and_(~_DESTINATION.c.enabled, _DESTINATION.c.disabled_reason != REMOVED_FROM_CONFIG)
                    )
                ).mappings()
            ]
        return dead, disabled
