"""The Discord bot's ``/rankings`` through a real gateway connection: discord.py connects to a fake Discord on
127.0.0.1 (its REST at ``discord.http.Route.BASE``, its gateway at ``DEFAULT_GATEWAY``), and each test injects a
raw ``INTERACTION_CREATE`` and reads what the bot answered (interaction callbacks and follow-ups as recorded by the
fake): every subcommand, bad options, Manage Server, the cooldown, autocomplete, slow answers deferred, "Share to
channel" once and after a restart, the command sync, and a dropped gateway resumed."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from bot.config import Settings, WebConfig
from bot.config_chat import DiscordConfig
from bot.config_outputs import DiscordOutput
from bot.demo.discord_payloads import (
    EVERYONE_PERMISSIONS,
    GUILD_ID,
    MANAGE_GUILD,
    command_data,
    interaction,
    message_shell,
    too_long,
)
from bot.demo.fake_discord import FakeDiscord
from bot.demo.generator import SyntheticHistory, generate_history
from bot.demo.server import FakeOpenRouter
from bot.discord.app import DiscordChat
from bot.discord.commands import SHARE_ID
from bot.discord.parts import discord_chat, rest_client
from bot.discord.parts import publisher_factories as discord_factories
from bot.outbox import OutboxWorker
from bot.planner import Planner
from bot.publishers.registry import Publishers, publisher_factories
from bot.web.site import SiteData
from digests.delivery import DeliveryState, RetrySchedule, Variant
from digests.digest import build_digest
from digests.messages import message_for
from digests.model import DaySnapshot, DigestSettings
from digests.render.discord import NO_MENTIONS
from storage.archive import Archive
from storage.delivery import DeliveryStore
from storage.engine import open_database
from storage.outbox_rows import UNSUBSCRIBED
from storage.repository import Repository
from storage.service_state import ServiceState
from tests.conftest import fresh_postgres_url
from tests.processes import free_port, health, start, stop, wait_for, write_config
from tests.test_cli import rankbot
from tests.test_discord import HOSTILE_NAMES
from tests.website import publish, slow_once

CHANNEL = "1200000000000000050"
ADMIN = "1100000000000000020"
MEMBER = "1100000000000000021"
PUBLIC = "https://rankings.example.com"
MESSAGE_IDS = itertools.count(1_250_000_000_000_000_000)


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


async def started(path: Path, fake: FakeDiscord, outputs: tuple[Any, ...] = (), **discord: Any) -> Bot:
    engine = open_database(f"sqlite:///{path}")
    discord.setdefault("cooldown_commands", 100)  # the cooldown has its own test
    config = DiscordConfig(api_url=fake.api_url, gateway_url=fake.gateway_url, **discord)
    settings = Settings(discord=config, web=WebConfig(public_url=PUBLIC), outputs=outputs)
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
    within_limits_of_discord(answer)
    latest = Repository(bot.engine).latest_day()
    assert f"Source day {latest} (UTC, complete)" in footer
    table = data["embeds"][0]["description"]
    assert len(table.split("```")[1].strip().splitlines()) == 6  # header + 5 rows


def within_limits_of_discord(answer: dict[str, Any]) -> None:
    assert too_long(answer.get("data") or answer) is None


@pytest.mark.parametrize(
    ("subcommand", "values", "expected"),
    [
        ("top", {"n": 25}, "Top 25 on OpenRouter — the day"),
        ("top", {"period": "week"}, "Top 10 on OpenRouter — the week"),
        ("top", {"period": "week", "n": 5}, "Top 5 on OpenRouter — the week"),
        ("movers", {}, "What moved on OpenRouter — the day"),
        ("movers", {"period": "week"}, "What moved on OpenRouter — the week"),
        ("model", {"query": "deepseek-1.0-flash"}, "Days in the top 50"),
        ("model", {"query": "flash"}, "Several models match"),
        ("model", {"query": "zzzzqqq"}, "No model matches"),
        ("help", {}, "/rankings subscribe feed:daily"),
        ("settings", {}, "This channel subscribes to nothing yet"),
    ],
)
async def test_every_reading_command_answers_anyone(
    bot: Bot, subcommand: str, values: dict[str, Any], expected: str
) -> None:
    for user, permissions in ((ADMIN, MANAGE_GUILD), (MEMBER, None)):
        [answer] = await bot.ask(subcommand, user, permissions, **values)
        assert answer["type"] == 4 and answer["data"]["flags"] & 64
        assert expected in flat([answer]), (subcommand, values)
        within_limits_of_discord(answer)
        # a second person does not wait for the first one's cooldown
    assert "Slow down" not in flat(bot.fake.callbacks)


async def test_a_day_or_the_week_ending_it_and_a_day_not_stored(bot: Bot) -> None:
    stored = Repository(bot.engine).stored_days()
    [day] = await bot.ask("top", day=stored[-5].isoformat())
    assert f"Source day {stored[-5]} (UTC, complete)" in flat([day])
    [week] = await bot.ask("top", ADMIN, period="week", day=stored[-5].isoformat())
    assert f"{stored[-11]} → {stored[-5]}" in flat([week]) and "the week" in flat([week])
    [missing] = await bot.ask("top", "1100000000000000022", day="2001-01-01")
    assert f"no complete day 2001-01-01 is stored (stored days run from {stored[0]} to {stored[-1]})" in flat([missing])


@pytest.mark.parametrize(
    ("subcommand", "values", "problem", "example"),
    [
        ("top", {"day": "2026-13-45"}, "is not a date: write it as YYYY-MM-DD", "/rankings top day:2026-10-07"),
        ("settings", {"at": "someday 25:00"}, "give a weekday and a 24-hour time", "/rankings settings at:mon 09:00"),
        ("settings", {"timezone": "Mars/Olympus"}, "`Mars/Olympus` is not a time zone", "timezone:Europe/Berlin"),
        ("top", {"day": "2026-10-07 top 99"}, "is not a date", "/rankings top day:2026-10-07"),
    ],
)
async def test_a_bad_option_names_the_problem_and_gives_the_example_as_discord_types_it(
    bot: Bot, subcommand: str, values: dict[str, Any], problem: str, example: str
) -> None:
    [answer] = await bot.ask(subcommand, ADMIN, MANAGE_GUILD, **values)
    text = answer["data"]["embeds"][0]["description"]
    assert text.startswith("That did not work: ") and problem in text and example in text, text
    assert "components" not in answer["data"] or not answer["data"]["components"]  # nothing to share


async def test_changing_what_a_channel_receives_needs_manage_server_in_a_server(bot: Bot) -> None:
    store = DeliveryStore(bot.engine)
    name = f"discord:{GUILD_ID}:{CHANNEL}"
    for subcommand, values in (
        ("subscribe", {"feed": "daily"}),
        ("unsubscribe", {}),
        ("settings", {"top": 5}),
        ("watch", {"model": "deepseek-1.0-flash"}),
        ("unwatch", {"model": "flash"}),
    ):
        [answer] = await bot.ask(subcommand, f"11000000000000001{len(subcommand):02d}", **values)
        assert "Only someone with **Manage Server**" in flat([answer]), subcommand
    assert store.destination(name) is None
    dm = interaction(2, command_data("subscribe", {"feed": "daily"}), "1200000000000000099", guild_id=None)
    [answer] = await bot.send(dm)
    assert "set up in a server's channel" in flat([answer])
    [answer] = await bot.ask("subscribe", ADMIN, MANAGE_GUILD | EVERYONE_PERMISSIONS, feed="weekly")
    assert "Subscribed: this channel gets the weekly digest" in flat([answer])


async def test_subscriptions_from_chat_are_destinations_in_the_same_table(bot: Bot) -> None:
    store = DeliveryStore(bot.engine)
    name = f"discord:{GUILD_ID}:{CHANNEL}"
    assert "Subscribed: this channel gets the daily alerts" in flat(
        await bot.ask("subscribe", ADMIN, MANAGE_GUILD, feed="daily")
    )
    saved = await bot.ask(
        "settings", ADMIN, MANAGE_GUILD, top=15, jump=3, quiet="line", timezone="Europe/Berlin", at="fri 17:30"
    )
    assert "Settings saved" in flat(saved)
    await bot.ask("subscribe", ADMIN, MANAGE_GUILD, feed="weekly")
    destination = store.destination(name)
    assert destination is not None and destination.origin == "discord" and destination.enabled
    assert destination.kind == "discord" and destination.target["channel"] == CHANNEL
    assert destination.target["team"] == GUILD_ID and destination.target["top"] == 15
    subscription = destination.subscription
    assert (subscription.daily, subscription.weekly, subscription.quiet_day) == (True, True, "line")
    assert (subscription.weekly_cron, subscription.timezone) == ("30 17 * * fri", "Europe/Berlin")
    shown = flat(await bot.ask("settings", MEMBER))
    assert "on, fri 17:30 Europe/Berlin" in shown and "quiet days: one line" in shown and "**Top shown:** 15" in shown
    watched = flat(await bot.ask("watch", ADMIN, MANAGE_GUILD, model="deepseek-1.0-flash"))
    assert "Watching DeepSeek 1.0 Flash (`deepseek/deepseek-1.0-flash-20260810`)" in watched
    assert "Unsubscribed from everything" in flat(await bot.ask("unsubscribe", ADMIN, MANAGE_GUILD))
    gone = store.destination(name)
    assert gone is not None and not gone.enabled and gone.disabled_reason == UNSUBSCRIBED
    assert gone.target["watch"] == []


async def test_a_configured_channel_is_not_changed_from_chat(original: Path, tmp_path: Path, fake: FakeDiscord) -> None:
    path = tmp_path / "site.db"
    shutil.copy(original, path)
    output = DiscordOutput(kind="discord", name="team-room", channel_id=CHANNEL)
    running = await started(path, fake, outputs=(output,))
    try:
        answer = flat(await running.ask("subscribe", ADMIN, MANAGE_GUILD, feed="daily"))
        assert "set in rankbot's configuration (output `team-room`)" in answer
    finally:
        await running.stop()
        running.engine.dispose()


async def test_one_person_flooding_gets_slow_down_and_others_are_answered(
    original: Path, tmp_path: Path, fake: FakeDiscord
) -> None:
    path = tmp_path / "site.db"
    shutil.copy(original, path)
    running = await started(path, fake, cooldown_commands=3, cooldown_seconds=30)
    try:
        answers = [flat(await running.ask("help", MEMBER)) for _ in range(4)]
        assert all("/rankings top n:25" in answer for answer in answers[:3])
        assert "Slow down: 3 commands per 30 s each. Try again in" in answers[3]
        assert "/rankings top n:25" in flat(await running.ask("help", ADMIN))
    finally:
        await running.stop()
        running.engine.dispose()


async def test_autocomplete_offers_models_within_discords_limits(bot: Bot) -> None:
    for subcommand, option in (("model", "query"), ("watch", "model"), ("unwatch", "model")):
        payload = interaction(4, command_data(subcommand, {option: "flsh"}, focused=option), CHANNEL)
        [answer] = await bot.send(payload)
        assert answer["type"] == 8
        offered = answer["data"]["choices"]
        assert 0 < len(offered) <= 25 and all(len(c["name"]) <= 100 and len(c["value"]) <= 100 for c in offered)
        assert any("flash" in c["value"] for c in offered), offered
    payload = interaction(4, command_data("settings", {"timezone": "berl"}, focused="timezone"), CHANNEL)
    [answer] = await bot.send(payload)
    assert [c["value"] for c in answer["data"]["choices"]] == ["Europe/Berlin"]


async def test_a_slow_answer_is_deferred_first_then_follows(bot: Bot) -> None:
    slow_once(bot.engine, 3.0)
    started_at = time.monotonic()
    answers = await bot.ask("top", MEMBER, n=3, answers=2)
    deferred, followup = answers
    assert deferred["type"] == 5 and deferred["data"]["flags"] & 64
    assert followup["method"] == "POST" and followup["flags"] & 64
    assert "Top 3 on OpenRouter" in flat([followup]) and followup["allowed_mentions"] == NO_MENTIONS
    assert time.monotonic() - started_at >= 3.0


def ephemeral_message(answer: dict[str, Any]) -> dict[str, Any]:
    """The ephemeral reply as Discord hands it back under a button click (``interaction.message``)."""
    data = answer["data"]
    shell = message_shell()
    return {**shell, "id": str(next(MESSAGE_IDS)), "channel_id": CHANNEL, "embeds": data["embeds"],
            "components": data["components"], "flags": 64}  # fmt: skip


async def test_share_posts_the_reply_to_the_channel_once_with_who_shared_it_even_after_a_restart(
    bot: Bot, original: Path
) -> None:
    [answer] = await bot.ask("top", MEMBER, n=5)
    message = ephemeral_message(answer)
    click = interaction(3, {"custom_id": SHARE_ID, "component_type": 2}, CHANNEL, ADMIN, message=message)
    [shared] = await bot.send(click)
    assert shared["type"] == 4 and not (shared["data"].get("flags") or 0) & 64
    assert shared["data"]["allowed_mentions"] == NO_MENTIONS
    assert shared["data"]["embeds"][0]["description"] == answer["data"]["embeds"][0]["description"]
    assert "Shared by user0020 with /rankings" in shared["data"]["embeds"][-1]["footer"]["text"]
    [again] = await bot.send(interaction(3, {"custom_id": SHARE_ID, "component_type": 2}, CHANNEL, MEMBER,
                                         message=message))  # fmt: skip
    assert again["data"]["flags"] & 64 and "Already shared." in flat([again])
    # a restart: the button under an earlier reply still works (a persistent view)
    path = Path(str(bot.engine.url.database))
    await bot.stop()
    restarted = await started(path, bot.fake)
    try:
        [later] = await restarted.ask("movers", MEMBER)
        click = interaction(3, {"custom_id": SHARE_ID, "component_type": 2}, CHANNEL, MEMBER,
                            message=ephemeral_message(later))  # fmt: skip
        [shared_later] = await restarted.send(click)
        assert shared_later["type"] == 4 and "What moved on OpenRouter" in flat([shared_later])
    finally:
        await restarted.stop()
        restarted.engine.dispose()
        bot.stopping.set()


async def test_commands_are_synced_at_start_only_when_they_changed(original: Path, tmp_path: Path) -> None:
    path = tmp_path / "site.db"
    shutil.copy(original, path)
    with FakeDiscord() as fake:
        first = await started(path, fake)
        await first.stop()
        assert [scope for scope, _ in fake.synced] == ["global"]
        [rankings] = fake.synced[0][1]
        assert rankings["name"] == "rankings" and rankings["type"] == 1
        subcommands = {option["name"]: option for option in rankings["options"]}
        assert set(subcommands) == {"top", "model", "movers", "subscribe", "unsubscribe", "settings", "watch",
                                    "unwatch", "help"}  # fmt: skip
        n = next(o for o in subcommands["top"]["options"] if o["name"] == "n")
        assert (n["min_value"], n["max_value"]) == (1, 50)
        assert next(o for o in subcommands["model"]["options"])["autocomplete"] is True
        again = await started(path, fake)  # the same commands: no second (rate-limited) global sync
        await again.stop()
        assert len(fake.synced) == 1
        ServiceState(first.engine).set_state("discord_commands:global", "a tree of an older release")
        changed = await started(path, fake)
        await changed.stop()
        assert len(fake.synced) == 2
        guild = await started(path, fake, test_guild=GUILD_ID)  # a test server has its own scope
        await guild.stop()
        assert [scope for scope, _ in fake.synced] == ["global", "global", GUILD_ID]
        state = ServiceState(first.engine)
        assert state.state(f"discord_commands:{GUILD_ID}") == state.state("discord_commands:global")
        for running in (first, again, changed, guild):
            running.engine.dispose()


def test_rankbot_discord_sync_syncs_to_a_server_and_stores_the_hash(original: Path, tmp_path: Path) -> None:
    path = tmp_path / "site.db"
    shutil.copy(original, path)
    with FakeDiscord() as fake:
        where = {"RANKBOT_STORAGE_DATABASE_URL": f"sqlite:///{path}", "RANKBOT_DISCORD_API_URL": fake.api_url}
        environ = {**where, "DISCORD_BOT_TOKEN": fake.token}
        done = rankbot("discord", "sync", "--guild", GUILD_ID, cwd=tmp_path, env=environ)
        assert done.returncode == 0, done.stderr
        assert f"synced /rankings (9 subcommands) to server {GUILD_ID}" in done.stdout
        assert [scope for scope, _ in fake.synced] == [GUILD_ID]
        everywhere = rankbot("discord", "sync", cwd=tmp_path, env=environ)
        assert everywhere.returncode == 0 and "to every server" in everywhere.stdout
        refused = rankbot("discord", "sync", cwd=tmp_path, env={**where, "DISCORD_BOT_TOKEN": "wrong"})
        assert refused.returncode == 1 and "refused the token in DISCORD_BOT_TOKEN" in refused.stderr
        assert "wrong" not in refused.stderr
        missing = rankbot("discord", "sync", cwd=tmp_path, env=where)
        assert missing.returncode == 1 and "set DISCORD_BOT_TOKEN" in missing.stderr
        bad = rankbot("discord", "sync", "--guild", "my-server", cwd=tmp_path, env=environ)
        assert bad.returncode == 1 and "is not a server id" in bad.stderr
    engine = open_database(f"sqlite:///{path}")
    state = ServiceState(engine)
    assert state.state(f"discord_commands:{GUILD_ID}") == state.state("discord_commands:global") is not None
    engine.dispose()


async def test_names_from_the_source_cannot_mention_format_or_link_in_any_reply(
    original: Path, tmp_path: Path, fake: FakeDiscord
) -> None:
    path = tmp_path / "site.db"
    shutil.copy(original, path)
    repo = Repository(open_database(f"sqlite:///{path}"))
    models = repo.models()
    top = repo.history()[-1].rows[0].permaslug
    hostile = " ".join(HOSTILE_NAMES)
    renamed = replace(models[top], name=hostile, author=hostile)
    repo.replace_models([*(m for slug, m in models.items() if slug != top), renamed])
    repo.engine.dispose()
    running = await started(path, fake)
    try:
        for subcommand, values in (
            ("top", {}),
            ("top", {"period": "week"}),
            ("movers", {}),
            ("model", {"query": top}),
            ("watch", {"model": top}),
            ("settings", {}),
        ):
            [answer] = await running.ask(subcommand, ADMIN, MANAGE_GUILD, **values)
            assert answer["data"]["allowed_mentions"] == NO_MENTIONS, subcommand
            texts = "".join(
                e.get("title", "")
                + e.get("description", "")
                + "".join(f["name"] + f["value"] for f in e.get("fields", []))
                for e in answer["data"]["embeds"]
            )
            assert "@" not in texts, subcommand
            outside_code = re.sub(r"```.*?```|`[^`]*`", "", texts, flags=re.S)
            for danger in ("||x||", "**y**", "[link](https://evil)"):
                assert danger not in outside_code, (subcommand, danger)
        payload = interaction(4, command_data("model", {"query": top[:12]}, focused="query"), CHANNEL)
        [offered] = await running.send(payload)
        assert all(len(c["name"]) <= 100 for c in offered["data"]["choices"])
    finally:
        await running.stop()
        running.engine.dispose()


async def test_a_dropped_gateway_is_resumed_and_the_next_command_answered(bot: Bot) -> None:
    resumes, identifies = bot.fake.resumes, bot.fake.identifies
    bot.fake.drop()
    await until(lambda: bot.fake.resumes > resumes or bot.fake.identifies > identifies)
    assert bot.fake.resumes == resumes + 1 and bot.fake.identifies == identifies  # resumed, not a new session
    [answer] = await bot.ask("top", n=3)
    assert "Top 3 on OpenRouter" in flat([answer])


async def test_a_channel_subscribed_from_chat_gets_its_digest_with_the_chart_once_and_its_watch_alerts(
    bot: Bot,
) -> None:
    store = DeliveryStore(bot.engine)
    repo = Repository(bot.engine)
    latest = repo.history()[-1]
    leader = latest.rows[0].permaslug
    await bot.ask("subscribe", ADMIN, MANAGE_GUILD, feed="daily")
    await bot.ask("watch", ADMIN, MANAGE_GUILD, model=leader)
    await bot.ask("settings", ADMIN, MANAGE_GUILD, jump=1)
    swapped = [(row.permaslug, row.tokens) for row in latest.rows]
    swapped[0], swapped[1] = (swapped[0][0], swapped[1][1] // 2), (swapped[1][0], swapped[0][1])
    new_day = latest.day + timedelta(days=1)
    as_of = datetime.combine(new_day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    repo.add_day(DaySnapshot.of(new_day, [*swapped, ("other", latest.other_tokens or 0)], as_of))
    planner = Planner(repo, store, DigestSettings(), charts=Archive(bot.engine))
    for _ in range(2):  # planning twice queues nothing twice
        planner.plan(as_of + timedelta(hours=1))
    settings = Settings(discord=DiscordConfig(api_url=bot.fake.api_url), web=WebConfig(public_url=PUBLIC))
    rest = rest_client(settings, {"DISCORD_BOT_TOKEN": bot.fake.token}, bot.engine)
    factories = discord_factories(rest, settings, bot.engine)
    async with httpx.AsyncClient(trust_env=False) as http:
        worker = OutboxWorker(
            store,
            Publishers(publisher_factories(http, factories), {}),
            RetrySchedule(attempts=3, base=1.0, cap=5.0),
            name="worker",
            rng=random.Random(1),
        )
        await worker.drain()
        again = await worker.drain()
    await rest.close()
    assert again.handled == 0
    posts = bot.fake.in_channel(CHANNEL)
    assert len(posts) == 2
    digest_post, watch_post = sorted(posts, key=lambda p: "Watched" in json.dumps(p.embeds) + p.content)
    assert digest_post.files and digest_post.embeds[0]["image"]["url"] == "attachment://bump.png"
    assert f"{new_day}" in digest_post.embeds[0]["title"]
    assert all(p.allowed_mentions == NO_MENTIONS for p in posts)
    assert "Watched models on OpenRouter" in json.dumps(watch_post.embeds) + watch_post.content
    ours = [e for e in store.entries() if e.destination == f"discord:{GUILD_ID}:{CHANNEL}"]
    assert len(ours) == 2 and all(e.state is DeliveryState.SENT for e in ours)


# -- inside `rankbot run` ----------------------------------------------------------------------------------------
def discord_config(path: Path, fake: FakeDiscord, openrouter: str, database_url: str, port: int, channels: int) -> Path:
    outputs = [
        {"name": f"room{n:02}", "kind": "discord", "channel_id": f"12000000000000002{n:02}"} for n in range(channels)
    ]
    config = write_config(path, openrouter=openrouter, database_url=database_url, port=port, outputs=outputs,
                          worker_concurrency=4)  # fmt: skip
    with config.open("a") as text:
        text.write(f'[discord]\napi_url = "{fake.api_url}"\ngateway_url = "{fake.gateway_url}"\n')
    return config


async def test_rankbot_run_holds_the_gateway_and_a_drop_mid_fan_out_loses_and_duplicates_nothing(
    generated: SyntheticHistory, original: Path, tmp_path: Path
) -> None:
    database = tmp_path / "site.db"
    shutil.copy(original, database)
    today = generated.days[-1].day + timedelta(days=1)
    with (
        FakeOpenRouter(generated.days, generated.catalogue, today=today, api_key=None) as openrouter,
        FakeDiscord(post_delay=0.05) as fake,
    ):
        port = free_port()
        config = discord_config(tmp_path / "config.toml", fake, openrouter.url, f"sqlite:///{database}", port, 12)
        process = start(config, "run", cwd=tmp_path, env={"DISCORD_BOT_TOKEN": fake.token})
        try:
            wait_for(lambda: health(port).get("discord_gateway") == "connected", what="the gateway")
            assert fake.connections() == 1 and fake.identifies == 1
            engine = open_database(f"sqlite:///{database}")
            store = DeliveryStore(engine)
            history = Repository(engine).history()
            messages = [
                message_for(build_digest("day", history, {}, DigestSettings(), end=s.day)) for s in history[-5:]
            ]
            for message in messages:
                store.queue(message, [(f"room{n:02}", Variant.FULL) for n in range(12)])
            wait_for(lambda: len(fake.messages) >= 10, what="the fan-out to start")
            fake.drop()  # Discord moves the session mid fan-out
            wait_for(lambda: fake.resumes == 1 and fake.connections() == 1, what="the gateway to resume")
            wait_for(lambda: store.backlog()["sent"] == 60, timeout=60, what="the fan-out to end")
            payload = interaction(2, command_data("top", {"n": 3}), CHANNEL)
            fake.interact(payload)
            wait_for(lambda: any(c["interaction"] == payload["id"] for c in fake.callbacks), what="an answer")
            engine.dispose()
        finally:
            code, log = stop(process)
    assert code == 0, log
    assert fake.token not in log and "stopped cleanly" in log
    per_channel = Counter(m.channel_id for m in fake.messages)
    assert len(per_channel) == 12 and set(per_channel.values()) == {5}, per_channel  # one per delivery
    assert fake.identifies == 1  # resumed, never a second session


def test_only_the_leader_holds_the_gateway_and_a_new_leader_connects_within_seconds(tmp_path: Path) -> None:
    url = fresh_postgres_url()
    with FakeDiscord() as fake:
        ports = [free_port(), free_port()]
        configs = [
            discord_config(tmp_path / f"config-{n}.toml", fake, "http://127.0.0.1:9", url, port, 0)
            for n, port in enumerate(ports)
        ]
        processes = [start(config, "run", cwd=tmp_path, env={"DISCORD_BOT_TOKEN": fake.token}) for config in configs]
        try:
            states = wait_for(
                lambda: sorted(str(health(p).get("discord_gateway")) for p in ports)
                if any(health(p).get("discord_gateway") == "connected" for p in ports) else None,
                what="one instance to connect",
            )  # fmt: skip
            assert states == ["connected", "not connected"]
            time.sleep(1)
            assert fake.connections() == 1 and fake.identifies == 1
            leader = next(n for n, p in enumerate(ports) if health(p)["leader"])
            assert health(ports[leader])["discord_gateway"] == "connected"
            processes[leader].kill()  # kill -9
            processes[leader].communicate(timeout=10)
            lost = time.monotonic()
            survivor = ports[1 - leader]
            wait_for(lambda: health(survivor).get("discord_gateway") == "connected", timeout=30, what="takeover")
            took = time.monotonic() - lost
            print(f"new leader connected the gateway {took:.1f} s after the kill")
            assert took < 20 and fake.connections() == 1 and fake.identifies == 2
        finally:
            for process in processes:
                if process.poll() is None:
                    stop(process)
