"""Newsletter subscribers: added (``pending`` unless the operator says they confirmed elsewhere), confirmed,
changed, removed, and read in pages by id — a fan-out to 100,000 addresses never holds them all."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from digests.subscribers import LEFT, Subscriber, SubscriberState, address_key
from storage.tables import SubscriberRecord

SUBSCRIBER = SubscriberRecord.__table__  # type: ignore[attr-defined]
PAGE = 1000


@dataclass(frozen=True, slots=True)
class Added:
    subscriber: Subscriber
    new: bool
    """``False``: the address was there already (its row unchanged unless it had left and asks to come back)."""
    returned: bool = False
    """The address had left and is back (``pending`` again, or ``confirmed`` when the operator vouches)."""


def _subscriber(row: Any) -> Subscriber:
    return Subscriber(
        row.address,
        SubscriberState(row.state),
        row.cadence,
        row.key,
        row.created_at,
        row.confirmed_at,
        row.confirmed_ip,
        row.soft_bounces,
    )


class Subscribers:
    def __init__(self, engine: Engine, now: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.now = now or partial(datetime.now, UTC)

    def find(self, address: str) -> Subscriber | None:
        query = select(SUBSCRIBER).where(SUBSCRIBER.c.address_key == address_key(address))
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return _subscriber(row) if row is not None else None

    def by_key(self, key: str) -> Subscriber | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(SUBSCRIBER).where(SUBSCRIBER.c.key == key)).first()
        return _subscriber(row) if row is not None else None

    def add(self, address: str, cadence: str = "weekly", confirmed: bool = False, ip: str | None = None) -> Added:
        """Add ``address`` as ``pending`` (or ``confirmed``, when the operator vouches for it). An address already
        here is left as it is — except one that had left, which goes back to ``pending`` (it must confirm again)."""
        found = self.find(address)
        now = self.now()
        state = SubscriberState.CONFIRMED if confirmed else SubscriberState.PENDING
        if found is not None:
            if found.state in LEFT:
                values = {"state": state, "cadence": cadence, "state_changed_at": now, "soft_bounces": 0}
                if confirmed:
                    values |= {"confirmed_at": now, "confirmed_ip": ip}
                with self.engine.begin() as connection:
                    connection.execute(update(SUBSCRIBER).where(SUBSCRIBER.c.key == found.key).values(**values))
                return Added(self.by_key(found.key) or found, False, returned=True)
            return Added(found, False)
        key = secrets.token_urlsafe(24)
        row: dict[str, Any] = {
            "address": address.strip(),
            "address_key": address_key(address),
            "key": key,
            "state": state,
            "cadence": cadence,
            "created_at": now,
            "confirmed_at": now if confirmed else None,
            "confirmed_ip": ip if confirmed else None,
            "state_changed_at": now,
            "soft_bounces": 0,
        }
        try:
            with self.engine.begin() as connection:
                connection.execute(SUBSCRIBER.insert().values(**row))
        except IntegrityError:  # the same address added at the same moment elsewhere
            found = self.find(address)
            if found is None:
                raise
            return Added(found, False)
        added = self.by_key(key)
        assert added is not None
        return Added(added, True)

    def confirm(self, key: str, ip: str | None) -> Subscriber | None:
        """A pending subscriber confirmed (from ``ip``); anyone else unchanged. ``None`` for an unknown key."""
        now = self.now()
        with self.engine.begin() as connection:
            connection.execute(
                update(SUBSCRIBER)
                .where(SUBSCRIBER.c.key == key, SUBSCRIBER.c.state == SubscriberState.PENDING)
                .values(state=SubscriberState.CONFIRMED, confirmed_at=now, confirmed_ip=ip, state_changed_at=now)
            )
        return self.by_key(key)

    def set_state(self, key: str, state: SubscriberState) -> bool:
        """Move a subscriber to ``state`` (unsubscribed, bounced, complained…); ``False`` for an unknown key."""
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(SUBSCRIBER).where(SUBSCRIBER.c.key == key).values(state=state, state_changed_at=self.now())
            )
        return bool(changed.rowcount)

    def bounced(self, key: str, hard: bool, soft_limit: int) -> Subscriber | None:
        """A bounce for this subscriber: a hard one suppresses at once; soft ones are counted and suppress at
        ``soft_limit``. Someone who already left stays as they are. ``None`` for an unknown key."""
        found = self.by_key(key)
        if found is None or found.state in LEFT:
            return found
        soft = found.soft_bounces + (0 if hard else 1)
        state = SubscriberState.BOUNCED if hard or soft >= soft_limit else found.state
        values: dict[str, Any] = {"soft_bounces": soft, "state": state}
        if state is not found.state:
            values["state_changed_at"] = self.now()
        with self.engine.begin() as connection:
            connection.execute(update(SUBSCRIBER).where(SUBSCRIBER.c.key == key).values(**values))
        return self.by_key(key)

    def set_cadence(self, key: str, cadence: str) -> bool:
        with self.engine.begin() as connection:
            changed = connection.execute(update(SUBSCRIBER).where(SUBSCRIBER.c.key == key).values(cadence=cadence))
        return bool(changed.rowcount)

    def remove(self, address: str) -> bool:
        """Forget the address entirely (``unsubscribed`` keeps it suppressed; this does not)."""
        with self.engine.begin() as connection:
            gone = connection.execute(delete(SUBSCRIBER).where(SUBSCRIBER.c.address_key == address_key(address)))
        return bool(gone.rowcount)

    def pages(
        self, state: SubscriberState | None = None, cadence: str | None = None, size: int = PAGE
    ) -> Iterator[list[Subscriber]]:
        """Every subscriber (in ``state``, with ``cadence``), ``size`` at a time in id order: one short read per
        page, so the set can change between pages and memory stays flat."""
        after = 0
        while True:
            query = select(SUBSCRIBER).where(SUBSCRIBER.c.id > after).order_by(SUBSCRIBER.c.id).limit(size)
            if state is not None:
                query = query.where(SUBSCRIBER.c.state == state)
            if cadence is not None:
                query = query.where(SUBSCRIBER.c.cadence == cadence)
            with self.engine.connect() as connection:
                rows = connection.execute(query).all()
            if not rows:
                return
            after = rows[-1].id
            yield [_subscriber(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Subscribers by state (every state named, zero included)."""
        query = select(SUBSCRIBER.c.state, func.count()).group_by(SUBSCRIBER.c.state)
        with self.engine.connect() as connection:
            found = {str(state): int(count) for state, count in connection.execute(query)}
        return {state.value: found.get(state.value, 0) for state in SubscriberState}
