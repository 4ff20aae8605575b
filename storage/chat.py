"""What the chat apps keep: requests already handled (so a platform's retry has no second side effect), OAuth
installs (sealed by the caller: this module never sees a token in clear) and OAuth states."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import ColumnElement, Engine, and_, delete, select, update

from storage.records import insert_ignoring_duplicates
from storage.tables import ChatRequestRecord, InstallRecord, OAuthStateRecord

REQUEST = ChatRequestRecord.__table__  # type: ignore[attr-defined]
INSTALL = InstallRecord.__table__  # type: ignore[attr-defined]
STATE = OAuthStateRecord.__table__  # type: ignore[attr-defined]
REQUEST_MEMORY = timedelta(hours=2)
"""How long a handled request is remembered (platforms retry within minutes)."""


class ChatRequests:
    def __init__(self, engine: Engine, now: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.now = now or partial(datetime.now, UTC)
        self._seen = 0

    def first_time(self, key: str) -> bool:
        """Record ``key``; ``False`` when it was recorded before (the request is a retry of one handled)."""
        now = self.now()
        with self.engine.begin() as connection:
            fresh = insert_ignoring_duplicates(connection, REQUEST, [{"key": key[:200], "seen_at": now}]) == 1
            self._seen += 1
            if self._seen % 500 == 1:
                connection.execute(delete(REQUEST).where(REQUEST.c.seen_at < now - REQUEST_MEMORY))
        return fresh


class Installs:
    """A platform's installs, one per (enterprise, team), each a sealed blob."""

    def __init__(self, engine: Engine, platform: str, now: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.platform = platform
        self.now = now or partial(datetime.now, UTC)

    def _key(self, enterprise_id: str | None, team_id: str | None) -> dict[str, str]:
        return {"platform": self.platform, "enterprise_id": enterprise_id or "", "team_id": team_id or ""}

    def _where(self, enterprise_id: str | None, team_id: str | None) -> ColumnElement[bool]:
        return and_(*(INSTALL.c[column] == value for column, value in self._key(enterprise_id, team_id).items()))

    def save(self, enterprise_id: str | None, team_id: str | None, sealed: bytes) -> None:
        row = self._key(enterprise_id, team_id) | {"sealed": sealed, "installed_at": self.now()}
        with self.engine.begin() as connection:
            if not insert_ignoring_duplicates(connection, INSTALL, [row]):
                connection.execute(
                    update(INSTALL)
                    .where(self._where(enterprise_id, team_id))
                    .values(sealed=sealed, installed_at=row["installed_at"])
                )

    def find(self, enterprise_id: str | None, team_id: str | None) -> bytes | None:
        with self.engine.connect() as connection:
            found = connection.execute(select(INSTALL.c.sealed).where(self._where(enterprise_id, team_id))).scalar()
        return bytes(found) if found is not None else None

    def delete(self, enterprise_id: str | None, team_id: str | None) -> bool:
        with self.engine.begin() as connection:
            return bool(connection.execute(delete(INSTALL).where(self._where(enterprise_id, team_id))).rowcount)

    def all_sealed(self) -> list[bytes]:
        with self.engine.connect() as connection:
            query = select(INSTALL.c.sealed).where(INSTALL.c.platform == self.platform)
            return [bytes(value) for value in connection.execute(query).scalars()]


class OAuthStates:
    def __init__(self, engine: Engine, now: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.now = now or partial(datetime.now, UTC)

    def issue(self, state: str, lifetime: timedelta) -> None:
        with self.engine.begin() as connection:
            now = self.now()
            connection.execute(delete(STATE).where(STATE.c.expires_at < now))
            connection.execute(STATE.insert().values(state=state, expires_at=now + lifetime))

    def consume(self, state: str) -> bool:
        """``True`` once for a state issued and not expired; it is gone afterwards."""
        with self.engine.begin() as connection:
            deleted = connection.execute(
                delete(STATE).where(STATE.c.state == state[:100], STATE.c.expires_at >= self.now())
            ).rowcount
        return bool(deleted)
