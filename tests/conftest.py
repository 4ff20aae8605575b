"""Shared fixtures: generated history, a fake OpenRouter server on 127.0.0.1, real SQLite files, settings that
point at them, and a recording ``sleep`` so retry tests run fast and can assert the delays asked for."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from bot.demo.generator import SyntheticHistory, generate_history
from bot.demo.server import FakeOpenRouter
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


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    engine = engine_for(f"sqlite:///{tmp_path / 'rankbot.db'}")
    upgrade_database(engine)
    return Repository(engine)


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
