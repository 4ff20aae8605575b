"""Benchmark: a week digest with its chart rendered and posted to the fake Discord API (the bot and a webhook),
end to end; and one digest fanned out to 50 webhook destinations against a fake that limits each webhook to 5 posts
per 2 s, which must see zero 429s (discord.py waits out ``X-RateLimit-Remaining: 0`` before the next post).

Run: PYTHONPATH=. .venv/bin/python benchmarks/bench_discord.py (it reuses the tests' handbuilt history)
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bot.config import Settings, WebConfig
from bot.demo.fake_discord import FakeDiscord
from bot.discord.parts import publisher_factories as discord_factories
from bot.discord.rest import RestClient, TokenRefused, point_at
from bot.outbox import OutboxWorker
from bot.publishers.registry import Publishers, publisher_factories
from digests.delivery import Destination, RetrySchedule, Subscription, Variant
from digests.digest import build_digest
from digests.messages import message_for
from digests.model import DigestSettings
from digests.render.charts import digest_charts
from storage.archive import Archive
from storage.delivery import DeliveryStore
from storage.engine import open_database
from storage.repository import Repository
from tests.test_text import CATALOGUE
from tests.test_text import history as text_history

WEBHOOKS = 50


async def run(fake: FakeDiscord, store: DeliveryStore, environ: dict[str, str]) -> tuple[float, int]:
    rest = RestClient(fake.token, TokenRefused())
    settings = Settings(web=WebConfig(public_url="https://rankings.example.com"))
    factories = discord_factories(rest, settings, store.engine)
    async with httpx.AsyncClient(trust_env=False) as http:
        worker = OutboxWorker(
            store,
            Publishers(publisher_factories(http, factories), environ),
            RetrySchedule(3, 1.0, 5.0),
            name="bench",
            rng=random.Random(1),
            concurrency=8,
        )
        started = time.perf_counter()
        report = await worker.drain()
        elapsed = time.perf_counter() - started
    await rest.close()
    return elapsed, report.sent


def main() -> None:
    history = text_history()
    digest = build_digest("week", history, CATALOGUE, DigestSettings())
    message = message_for(digest)
    with tempfile.TemporaryDirectory() as folder, FakeDiscord() as fake:
        point_at(fake.api_url)
        engine = open_database(f"sqlite:///{Path(folder) / 'bench.db'}")
        store = DeliveryStore(engine)
        started = time.perf_counter()
        charts = digest_charts(digest, history, CATALOGUE)
        Archive(engine).save_charts(message.id, charts)
        rendered = time.perf_counter() - started
        hook = fake.add_webhook("500000000000000000")
        store.sync_destinations(
            [
                Destination("bot", "discord", {"channel_id": "600000000000000000"}, Subscription()),
                Destination("hook", "discord_webhook", {"url_env": "HOOK"}, Subscription()),
            ]
        )
        store.queue(message, [("bot", Variant.FULL), ("hook", Variant.FULL)])
        posted, sent = asyncio.run(run(fake, store, {"HOOK": hook}))
        print(f"week digest: charts rendered in {rendered * 1000:.0f} ms, posted to the bot and a webhook in "
              f"{posted * 1000:.0f} ms ({sent} deliveries, {len(fake.messages)} messages)")  # fmt: skip

        environ = {f"HOOK_{n}": fake.add_webhook(str(700000000000000000 + n)) for n in range(WEBHOOKS)}
        store.sync_destinations(
            [
                Destination(f"hook{n}", "discord_webhook", {"url_env": f"HOOK_{n}"}, Subscription())
                for n in range(WEBHOOKS)
            ]
        )
        for round_ in range(3):
            store.queue(message_for(build_digest("day", history, CATALOGUE, DigestSettings())) if round_ == 0 else
                        message_for(build_digest("week", history[:-round_], CATALOGUE, DigestSettings())),
                        [(f"hook{n}", Variant.FULL) for n in range(WEBHOOKS)])  # fmt: skip
        before = fake.rate_limited
        elapsed, sent = asyncio.run(run(fake, store, environ))
        print(f"fan-out: {sent} posts to {WEBHOOKS} webhooks in {elapsed:.2f} s, {fake.rate_limited - before} × 429")
        engine.dispose()


COMMANDS = 200


async def polled(condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` (what the fake, in its own thread, has received: there is no event to await)."""
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.0005)


async def commands(database: Path, fake: FakeDiscord) -> list[float]:
    """``COMMANDS`` ``/rankings`` interactions through the fake gateway, one after another: seconds from the
    INTERACTION_CREATE sent to the callback received, for each."""
    from bot.config_chat import DiscordConfig
    from bot.demo.discord_payloads import command_data, interaction
    from bot.discord.parts import discord_chat
    from bot.web.site import SiteData

    engine = open_database(f"sqlite:///{database}")
    config = DiscordConfig(api_url=fake.api_url, gateway_url=fake.gateway_url, cooldown_commands=COMMANDS * 2)
    settings = Settings(discord=config, web=WebConfig(public_url="https://rankings.example.com"))
    data = SiteData(Repository(engine), Archive(engine), DigestSettings())
    chat = discord_chat(settings, {"DISCORD_BOT_TOKEN": fake.token}, engine, data)
    assert chat is not None
    stopping = asyncio.Event()
    task = asyncio.create_task(chat.connected(stopping))
    await polled(lambda: chat.client is not None and chat.client.is_ready())
    asked = [("top", {}), ("top", {"period": "week"}), ("movers", {}), ("model", {"query": "flash"})]
    latencies = []
    for n in range(COMMANDS):
        subcommand, values = asked[n % len(asked)]
        payload = interaction(2, command_data(subcommand, values), "600000000000000001")
        count = len(fake.callbacks)
        started = time.perf_counter()
        fake.interact(payload)
        await polled(lambda count=count: len(fake.callbacks) > count)
        latencies.append(time.perf_counter() - started)
    stopping.set()
    await task
    engine.dispose()
    return latencies


def command_figures() -> None:
    from statistics import median, quantiles

    from benchmarks.bench_slack import fill  # the same 2 years of 200 models

    with tempfile.TemporaryDirectory() as folder, FakeDiscord() as fake:
        database = Path(folder) / "site.db"
        fill(database)
        latencies = asyncio.run(commands(database, fake))
        first, rest = latencies[0], latencies[1:]
        p99 = quantiles(rest, n=100)[98]
        print(f"/rankings through the gateway over 730 days: first answer {first * 1000:.0f} ms (digests built), "
              f"then p50 {median(rest) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms ({COMMANDS} interactions)")  # fmt: skip


if __name__ == "__main__":
    main()
    command_figures()
