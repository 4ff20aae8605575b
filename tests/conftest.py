"""Shared fixtures: generated history, a fake OpenRouter server on 127.0.0.1, real SQLite files, settings that
point at them, and a recording ``sleep`` so retry tests run fast and can assert the delays asked for."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.config import Settings
from bot.config_loading import load_settings
from bot.demo.generator import SyntheticHistory, generate_history
from bot.demo.receiver import FakeWebhook
from bot.demo.server import FakeOpenRouter
from digests.delivery import Destination, Subscription
from storage.delivery import DeliveryStore
from storage.engine import engine_for, upgrade_database
from storage.repository import Repository

TODAY = date(2026, 11, 20)
API_KEY = "test-key"
KEY_ENV = "RANKBOT_TEST_OPENROUTER_KEY"


@pytest.fixture(scope="session")
def history() -> SyntheticHistory:
    """60 complete days ending the day before ``TODAY``."""
    return generate_history(end=TODAY - timedelta(days=1), days=60)


@pytest.fixture
def fake(history: SyntheticHistory) -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(
        history.days, history.catalogue, today=TODAY, api_key=API_KEY, first_snapshot=TODAY - timedelta(days=45)
    ) as server:
        yield server


POSTGRES_URL = os.environ.get("RANKBOT_TEST_POSTGRES_URL")


NO_POSTGRES = "no PostgreSQL: set RANKBOT_TEST_POSTGRES_URL (bash .ci/run starts one)"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say once, at the end, how many PostgreSQL tests did not run and how to run them."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if NO_POSTGRES in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} PostgreSQL tests skipped: no server. Set RANKBOT_TEST_POSTGRES_URL=postgresql://... or "
            "run `bash .ci/run`, which installs and starts one and runs every test (as CI does)."
        )


def fresh_postgres_url() -> str:
    """The test PostgreSQL database, emptied. In CI a missing server is a failure, never a silent skip."""
    if not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("RANKBOT_TEST_POSTGRES_URL is not set: .ci/run should have started PostgreSQL")
        pytest.skip(NO_POSTGRES)
    engine = engine_for(POSTGRES_URL)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or the test PostgreSQL server."""
    if request.param == "postgres":
        return fresh_postgres_url()
    return f"sqlite:///{tmp_path / 'rankbot.db'}"


@pytest.fixture
def repo(database_url: str) -> Iterator[Repository]:
    engine = engine_for(database_url)
    upgrade_database(engine)
    yield Repository(engine)
    engine.dispose()


def settings_for(base_url: str, tmp_path: Path, source: str = "api", **extra: str) -> Settings:
    """Settings for a test: loopback base URL, a SQLite file in ``tmp_path``, short timeouts and backoff."""
    environ = {
        "RANKBOT_OPENROUTER_BASE_URL": base_url,
        "RANKBOT_OPENROUTER_SOURCE": source,
        "RANKBOT_OPENROUTER_API_KEY_ENV": KEY_ENV,
        "RANKBOT_OPENROUTER_TIMEOUT_SECONDS": "1",
        "RANKBOT_OPENROUTER_CONNECT_TIMEOUT_SECONDS": "0.5",
        "RANKBOT_OPENROUTER_RETRY_ATTEMPTS": "3",
        "RANKBOT_OPENROUTER_RETRY_BASE_SECONDS": "0.01",
        "RANKBOT_STORAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'rankbot.db'}",
        "RANKBOT_OUTPUT_DIRECTORY": str(tmp_path / "out"),
        **{f"RANKBOT_{key.upper()}": value for key, value in extra.items()},
    }
    return load_settings(None, environ)


ENVIRON = {KEY_ENV: API_KEY}


class RecordingSleep:
    """An injected ``sleep`` that records the delays asked for and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


class Clock:
    """An injected clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))


@pytest.fixture
def store(repo: Repository, clock: Clock) -> DeliveryStore:
    """The delivery store on the same database as ``repo``, on the injected clock."""
    return DeliveryStore(repo.engine, now=clock)


@pytest.fixture
def webhook() -> Iterator[FakeWebhook]:
    with FakeWebhook(secret=WEBHOOK_SECRET) as server:
        yield server


WEBHOOK_SECRET = "test-webhook-secret"
SECRET_ENV = "RANKBOT_TEST_WEBHOOK_SECRET"


def hook_destination(webhook: FakeWebhook, name: str, check: bool = True, **subscription: Any) -> Destination:
    target = {"url": webhook.hook_url(name), "secret_env": SECRET_ENV, "timeout_seconds": 2.0}
    if check:
        target["status_url"] = webhook.status_url(name)
    return Destination(name, "webhook", target, Subscription(**subscription))


async def eventually(condition: Callable[[], object], what: str, within: float = 30.0) -> None:
    """Wait (polling every 5 ms) until ``condition()`` holds: it reads state that servers in other threads change."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.005)


def run_together(count: int, work: Callable[[], None]) -> None:
    """Run ``work`` in ``count`` threads released at the same moment (a barrier), and wait for all of them."""
    barrier = threading.Barrier(count)

    def released() -> None:
        barrier.wait()
        work()

    threads = [threading.Thread(target=released) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
