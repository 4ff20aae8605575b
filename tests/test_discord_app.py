"""The Discord bot's ``/rankings`` through a real gateway connection: discord.py connects to a fake Discord on
127.0.0.1 (its REST at ``discord.http.Route.BASE``, its gateway at ``DEFAULT_GATEWAY``), and each test injects a
raw ``INTERACTION_CREATE`` and reads what the bot answered (interaction callbacks and follow-ups as recorded by the
fake): every subcommand, bad options, Manage Server, the cooldown, autocomplete, slow answers deferred, "Share to
channel" once and after a restart, the command sync, and a dropped gateway resumed."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from bot.config import Settings, WebConfig
from bot.config_chat import DiscordConfig
from bot.demo.discord_payloads import GUILD_ID, MANAGE_GUILD, command_data, interaction
from bot.demo.fake_discord import FakeDiscord
from bot.demo.generator import SyntheticHistory, generate_history
from bot.discord.app import SHARE_ID, DiscordChat, tree_hash
from bot.discord.parts import discord_chat
from bot.web.site import SiteData
from digests.model import DigestSettings
from digests.render.discord import NO_MENTIONS
from storage.archive import Archive
from storage.delivery import DeliveryStore
from storage.engine import open_database
from storage.repository import Repository
from tests.website import publish

CHANNEL = "1200000000000000050"
ADMIN = "1100000000000000020"
MEMBER = "1100000000000000021"
PUBLIC = "https://rankings.example.com"


@pytest.fixture(scope="module")
def generated() -> SyntheticHistory:
    return generate_history(end=datetime.now(UTC).date() - timedelta(days=1), days=40)


@pytest.fixture(scope="module")
def original(generated: SyntheticHistory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("discord") / "site.db"
    publish(path, generated).repo.engine.dispose()
    return path


@pytest.fixture(scope="module")
def fake() -> Any:
    with FakeDiscord() as running:
        yield running


async def until(condition: Callable[[], Any], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.01)


@dataclass
class Bot:
    chat: DiscordChat
    fake: FakeDiscord
    engine: Engine
    stopping: asyncio.Event
    task: asyncio.Task[None]

    async def send(self, payload: dict[str, Any], answers: int = 1) -> list[dict[str, Any]]:
        """Inject ``payload``; the bot's callback and follow-ups to it, once ``answers`` of them arrived."""
        token = payload["token"]
        self.fake.interact(payload)

        def answered() -> list[dict[str, Any]]:
            callbacks = [c for c in self.fake.callbacks if c["interaction"] == payload["id"]]
            followups = [f for f in self.fake.followups if token in f["path"]]
            return callbacks + followups

        await until(lambda: len(answered()) >= answers)
        await asyncio.sleep(0.05)  # anything more it sends
        return answered()

    async def ask(
        self, subcommand: str, user: str = MEMBER, permissions: int | None = None, answers: int = 1, **values: Any
    ) -> list[dict[str, Any]]:
        extra = {} if permissions is None else {"permissions": permissions}
        payload = interaction(2, command_data(subcommand, values), CHANNEL, user, **extra)
        return await self.send(payload, answers)

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.wait_for(self.task, 20)


async def started(path: Path, fake: FakeDiscord, **discord: Any) -> Bot:
    engine = open_database(f"sqlite:///{path}")
    config = DiscordConfig(api_url=fake.api_url, gateway_url=fake.gateway_url, **discord)
    settings = Settings(discord=config, web=WebConfig(public_url=PUBLIC))
    data = SiteData(Repository(engine), Archive(engine), DigestSettings())
    chat = discord_chat(settings, {"DISCORD_BOT_TOKEN": fake.token}, engine, data)
    assert chat is not None
    stopping = asyncio.Event()
    task = asyncio.create_task(chat.connected(stopping))
    await until(lambda: chat.client is not None and chat.client.is_ready())
    return Bot(chat, fake, engine, stopping, task)


@pytest.fixture
async def bot(original: Path, tmp_path: Path, fake: FakeDiscord) -> AsyncIterator[Bot]:
    path = tmp_path / "site.db"
    shutil.copy(original, path)
    running = await started(path, fake)
    yield running
    await running.stop()
    running.engine.dispose()


def flat(answers: list[dict[str, Any]]) -> str:
    return json.dumps(answers, ensure_ascii=False)


def embeds(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return list((answer.get("data") or answer).get("embeds") or [])


async def test_top_answers_ephemerally_with_the_source_day_as_of_attribution_and_a_share_button(bot: Bot) -> None:
    [answer] = await bot.ask("top", n=5)
    assert answer["type"] == 4
    data = answer["data"]
    assert data["flags"] & 64
    assert data["allowed_mentions"] == NO_MENTIONS
    footer = data["embeds"][0]["footer"]["text"]
    assert "data as of" in footer and "OpenRouter" in footer and "UTC" in footer
    assert data["components"][0]["components"][0]["custom_id"] == SHARE_ID
