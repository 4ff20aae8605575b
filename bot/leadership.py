"""Who may run the scheduler.

- SQLite is single-instance: ``rankbot run`` (and ``rankbot outbox send``) hold an exclusive lock on
  ``<database>.lock``; a second process on the same database refuses to start and says why. The kernel drops the
  lock when the process dies, even by ``kill -9``.
- PostgreSQL: every instance works the outbox, and the one holding a session advisory lock runs the scheduler.
  The lock lives as long as its connection: when the leader dies, the server drops it and another instance's next
  try takes over.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x72616E6B626F74  # "rankbot"


class InstanceLockedError(Exception):
    """Another process already runs rankbot on this SQLite database."""


class SqliteInstanceLock:
    """An exclusive, process-lifetime lock next to the SQLite file."""

    def __init__(self, engine: Engine) -> None:
        database = make_url(str(engine.url)).database or ":memory:"
        self.path = Path(f"{database}.lock")
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise InstanceLockedError(
                f"{holder} is already running rankbot on this SQLite database ({self.path.with_suffix('')}). "
                "SQLite supports one instance: stop the other one, or use PostgreSQL (storage.database_url) to run "
                "several."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class Leadership:
    """``is_leader`` after ``check()``; SQLite instances (which hold the instance lock) always lead."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self.is_leader = not self.postgres
        self._connection: Connection | None = None

    def check(self) -> bool:
        """Try to become (or confirm still being) the leader. Returns ``is_leader``."""
        if not self.postgres:
            return True
        try:
            if self._connection is None:
                self._connection = self.engine.connect()
                self._connection.execution_options(isolation_level="AUTOCOMMIT")
            if self.is_leader:
                self._connection.execute(text("SELECT 1"))
            else:
                got = self._connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
                self.is_leader = bool(got.scalar())
                if self.is_leader:
                    log.info("this instance now leads: it runs the scheduler")
        except SQLAlchemyError as error:
            if self.is_leader:
                log.warning("lost the scheduler lock (database connection failed): %s", error)
            self.is_leader = False
            self._drop()
        return self.is_leader

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except SQLAlchemyError:
                pass
            self._connection = None

    def release(self) -> None:
        if self.postgres and self._connection is not None and self.is_leader:
            with contextlib.suppress(SQLAlchemyError):
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
        self.is_leader = False
        self._drop()
