"""Database engines and schema migrations.

SQLite (the embedded default) runs in WAL mode with foreign keys on; PostgreSQL goes through psycopg 3. The schema is
owned by Alembic: ``upgrade_database`` applies every migration in ``storage/migrations`` in a transaction.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

MIGRATIONS = Path(__file__).parent / "migrations"


def normalized_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` use psycopg 3; everything else is passed through."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def display_url(url: str) -> str:
    """The database URL with any password masked, for logs and ``check-config``."""
    return make_url(normalized_url(url)).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class DatabaseError(Exception):
    """The database cannot be used. The message names it (password masked), says what is wrong and what to change."""


FIX = "check storage.database_url (or RANKBOT_STORAGE_DATABASE_URL)"


def _driver_message(error: BaseException) -> str:
    """The driver's own words, first line, without psycopg's ``connection failed:`` prefix."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    return text.removeprefix("connection failed: ")


def database_problem(error: BaseException, url: str | None) -> str:
    """One line for an error that came from opening or using the database at ``url`` (``None``: not known)."""
    if url is None:
        return f"{_driver_message(error)}: {FIX}"
    shown = display_url(url)
    if isinstance(error, ModuleNotFoundError):
        return (
            f"the database {shown} needs the PostgreSQL driver psycopg, which is not installed: "
            "pip install 'psycopg[binary]'"
        )
    reason = _driver_message(error)
    if make_url(normalized_url(url)).get_backend_name() != "sqlite":
        return f"cannot use the PostgreSQL database {shown}: {reason}. Is the server running and reachable? {FIX}"
    path = make_url(url).database or ""
    if "readonly" in reason or "read-only" in reason:
        return f"the SQLite database {path} is not writable ({reason}): fix its permissions, or {FIX}"
    return f"cannot use the SQLite database {path}: {reason}. {FIX}"


def engine_for(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created if missing."""
    url = normalized_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise DatabaseError(
                    f"cannot create the folder {folder} for the SQLite database {parsed.database} "
                    f"({error.strerror or error}): {FIX} to point at a writable place"
                ) from None
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    except ModuleNotFoundError as error:
        raise DatabaseError(database_problem(error, url)) from None


def checked_engine(url: str) -> Engine:
    """An engine for ``url`` that is known to work: it connects and, for SQLite, the file is writable. Every
    problem is a ``DatabaseError`` with one clear line."""
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                _probe_write(connection.connection.dbapi_connection)
    except SQLAlchemyError as error:
        engine.dispose()
        raise DatabaseError(database_problem(error, url)) from None
    except sqlite3.Error as error:
        engine.dispose()
        raise DatabaseError(database_problem(error, url)) from None
    return engine


def _probe_write(dbapi_connection: Any) -> None:
    """A write inside a transaction that is rolled back: it fails on a read-only SQLite file and changes nothing
    (``BEGIN IMMEDIATE`` alone succeeds on one)."""
    cursor = dbapi_connection.cursor()
    try:
        version = int(cursor.execute("PRAGMA user_version").fetchone()[0])
        cursor.execute("BEGIN IMMEDIATE")
        try:
            cursor.execute(f"PRAGMA user_version = {version}")
        finally:
            cursor.execute("ROLLBACK")
    finally:
        cursor.close()


def open_database(url: str) -> Engine:
    """``checked_engine``, migrated to the latest schema."""
    engine = checked_engine(url)
    try:
        upgrade_database(engine)
    except SQLAlchemyError as error:
        engine.dispose()
        raise DatabaseError(database_problem(error, url)) from None
    return engine


def alembic_config(engine: Engine | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


MIGRATION_LOCK_KEY = 0x72616E6B6D6967  # "rankmig"


def upgrade_database(engine: Engine) -> None:
    """Apply every pending migration. Idempotent. On PostgreSQL an advisory lock makes instances that start
    together migrate one after the other."""
    config = alembic_config(engine)
    if engine.dialect.name != "postgresql":
        command.upgrade(config, "head")
        return
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def head_revision() -> str | None:
    """The latest schema revision this rankbot knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(None)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
