"""Discord: the embed renderer (snapshots, limits, hostile names) and the two publishers on the outbox, against a
fake Discord API on 127.0.0.1 (``discord.http.Route.BASE`` points at it; the webhooks use it too)."""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from time import monotonic
from typing import Any
from urllib.parse import parse_qs, urlsplit

import discord
import discord.http
import httpx
import pytest

from bot.config import Settings, WebConfig
from bot.config_chat import DiscordConfig
from bot.demo.fake_discord import APPLICATION_ID, Answer, FakeDiscord
from bot.discord.parts import publisher_factories as discord_factories
from bot.discord.parts import rest_client
from bot.discord.publisher import reference
from bot.discord.rest import RestClient, TokenRefused, point_at
from bot.outbox import OutboxWorker
from bot.planner import DISCORD_REFUSED, check_operations
from bot.publishers.contract import Delivery
from bot.publishers.registry import Publishers, publisher_factories
from digests.delivery import DeliveryState, Destination, Message, RetrySchedule, Subscription, Variant
from digests.digest import build_digest
from digests.messages import message_for, notice_message
from digests.model import DigestSettings, ModelInfo
from digests.render.discord import (
    CHOICE_NAME_LIMIT,
    CHOICES_LIMIT,
    CONTENT_LIMIT,
    DESCRIPTION_LIMIT,
    EMBED_TOTAL_LIMIT,
    EMBEDS_LIMIT,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    FIELDS_LIMIT,
    FOOTER_LIMIT,
    NO_MENTIONS,
    TITLE_LIMIT,
    DiscordMessage,
    choices,
    digest_messages,
    discord_text,
    reply_messages,
    text_messages,
)
from digests.render.document import digest_document
from digests.replies import Card, Matches, Notice
from digests.views import Match, model_card, movers_view, search_models, top_view
from storage.archive import Archive
from storage.delivery import DeliveryStore
from storage.repository import Repository
from storage.service_state import ServiceState
from tests.test_cli import rankbot
from tests.test_slack import bump_chart
from tests.test_text import CATALOGUE
from tests.test_text import history as text_history

SNAPSHOTS = Path(__file__).parent / "snapshots"
HOSTILE_NAMES = (
    "@everyone",
    "@here",
    "<@&123456789012345678>",
    "<@123456789012345678>",
    "||x||**y**",
    "[link](https://evil)",
)
CHANNEL = "223456789012345678"
WEBHOOK = "323456789012345678"
PUBLIC = "https://rankings.example.com"


def within_limits(message: DiscordMessage) -> None:
    assert len(message.content or "") <= CONTENT_LIMIT
    assert len(message.embeds) <= EMBEDS_LIMIT
    assert message.size() <= EMBED_TOTAL_LIMIT
    for embed in message.embeds:
        assert len(embed.get("title", "")) <= TITLE_LIMIT
        assert len(embed.get("description", "")) <= DESCRIPTION_LIMIT
        assert len(embed.get("fields", [])) <= FIELDS_LIMIT
        assert len((embed.get("footer") or {}).get("text", "")) <= FOOTER_LIMIT
        for item in embed.get("fields", []):
            assert len(item["name"]) <= FIELD_NAME_LIMIT and 0 < len(item["value"]) <= FIELD_VALUE_LIMIT


def document(kind: str = "day", catalogue: dict[str, ModelInfo] | None = None) -> dict[str, Any]:
    return digest_document(build_digest(kind, text_history(), catalogue or CATALOGUE, DigestSettings()))


# -- the renderer ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["day", "week"])
def test_digest_embeds_match_the_snapshot_and_stay_within_discords_limits(kind: str) -> None:
    messages = digest_messages(document(kind), 10, f"{PUBLIC}/archive/x", chart=True, reference="ref 0123456789")
    payload = [message.payload() for message in messages]
    path = SNAPSHOTS / f"discord-{kind}.json"
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    assert payload == json.loads(path.read_text())
    first = messages[0].embeds[0]
    assert first["url"] == f"{PUBLIC}/archive/x" and first["image"] == {"url": "attachment://bump.png"}
    flat = json.dumps(payload, ensure_ascii=False)
    assert "data as of 2026-10-11 00:27 UTC" in flat and "Licensed under CC BY 4.0" in flat
    assert messages[0].chart and all(m.payload()["allowed_mentions"] == NO_MENTIONS for m in messages)
    for message in messages:
        within_limits(message)


@pytest.mark.parametrize("hostile", HOSTILE_NAMES)
def test_names_from_the_source_cannot_mention_format_or_link(hostile: str) -> None:
    catalogue = {**CATALOGUE, "z-ai/glm-5.3-flash-20260826": ModelInfo("z-ai/glm-5.3-flash-20260826", hostile, hostile)}
    messages = digest_messages(document("week", catalogue), 10)
    texts = "\n".join(
        e.get("description", "") + "".join(f["name"] + f["value"] for f in e.get("fields", []))
        for m in messages
        for e in m.embeds
    )
    assert "@" not in texts
    outside_code = re.sub(r"```.*?```", "", texts, flags=re.S)  # markdown does nothing inside a code block
    for danger in ("||x||", "**y**", "[link](https://evil)"):
        assert danger not in outside_code
    assert texts.count("```") % 2 == 0
    assert all(m.payload()["allowed_mentions"] == {"parse": []} for m in messages)


def test_markdown_in_names_is_escaped() -> None:
    assert discord_text("||x||**y**") == r"\|\|x\|\|\*\*y\*\*"
    assert discord_text("[link](https://evil)") == r"\[link\](https://evil)"
    assert discord_text("# big") == r"\# big"
    assert "@" not in discord_text("@everyone <@&123456789012345678>")


def test_a_digest_too_long_for_one_embed_or_message_continues_and_is_never_cut() -> None:
    long = document()
    long["alerts"] = [{"permaslug": "x/y", "reason": f"reason {n} " + "é漢" * 300} for n in range(60)]
    long["callouts"] = [{"title": "T" * 300, "permaslug": "x/y", "detail": "d" * 2000} for _ in range(30)]
    messages = digest_messages(long, 50, reference="ref 0123456789")
    assert len(messages) > 1
    for message in messages:
        within_limits(message)
    values = " ".join(f["value"] for m in messages for e in m.embeds for f in e.get("fields", []))
    assert all(f"reason {n} " in values for n in range(60))
    footers = [m.embeds[-1]["footer"]["text"] for m in messages]
    assert [f.rsplit(".", 1)[1] for f in footers] == [str(n) for n in range(len(messages))]
    assert all("CC BY 4.0" in f for f in footers)


@pytest.mark.parametrize("size", [CONTENT_LIMIT, CONTENT_LIMIT + 1])
def test_text_at_and_over_the_content_limit(size: int) -> None:
    lines = text_messages(("line " * 100 + "\n") * (size // 501) + "x" * (size % 501))
    assert all(len(m.content or "") <= CONTENT_LIMIT for m in lines)
    one_line = text_messages("y" * size)
    assert len(one_line) == 1 and len(one_line[0].content or "") <= CONTENT_LIMIT
    assert (one_line[0].content or "").endswith("…") == (size > CONTENT_LIMIT)


# -- the publishers on the outbox ----------------------------------------------------------------------------------
@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    saved = discord.http.Route.BASE
    with FakeDiscord() as server:
        point_at(server.api_url)
        yield server
    discord.http.Route.BASE = saved


def message(kind: str = "day") -> Message:
    return message_for(build_digest(kind, text_history(), CATALOGUE, DigestSettings()))


@asynccontextmanager
async def worker_for(
    store: DeliveryStore,
    fake: FakeDiscord,
    environ: dict[str, str] | None = None,
    attempts: int = 3,
    token: str | None = None,
) -> AsyncIterator[OutboxWorker]:
    rest = RestClient(token or fake.token, TokenRefused())
    factories = discord_factories(rest, Settings(web=WebConfig(public_url=PUBLIC)), store.engine)
    async with httpx.AsyncClient(trust_env=False) as http:
        yield OutboxWorker(
            store,
            Publishers(publisher_factories(http, factories), environ or {}),
            RetrySchedule(attempts=attempts, base=0.01, cap=0.05),
            name="worker",
            rng=random.Random(3),
        )
    await rest.close()


def to_discord(store: DeliveryStore, *messages: Message, webhook: str | None = None) -> None:
    destinations = [Destination("server", "discord", {"channel_id": CHANNEL, "top": 10}, Subscription())]
    if webhook is not None:
        destinations.append(Destination("hook", "discord_webhook", {"url_env": "HOOK_URL", "top": 10}, Subscription()))
    store.sync_destinations(destinations)
    for queued in messages:
        store.queue(queued, [(d.name, Variant.FULL) for d in destinations])


async def test_a_digest_reaches_a_channel_and_a_webhook_once_with_its_chart(
    store: DeliveryStore, fake: FakeDiscord
) -> None:
    digest_message = message()
    Archive(store.engine).save_charts(digest_message.id, {"bump": bump_chart()})
    url = fake.add_webhook(WEBHOOK)
    to_discord(store, digest_message, webhook=url)
    async with worker_for(store, fake, {"HOOK_URL": url}) as worker:
        report = await worker.drain()
    assert report.sent == 2 and not fake.rejected
    for sent in (fake.in_channel(CHANNEL), fake.through_webhook(WEBHOOK)):
        assert len(sent) == 1
        posted = sent[0]
        assert posted.files == {"bump.png": b"\x89PNG fake chart"}
        assert posted.attachments[0]["description"].startswith("Bump chart")
        assert posted.embeds[0]["image"]["url"] == "attachment://bump.png"
        assert posted.allowed_mentions == {"parse": []}
        assert posted.embeds[0]["url"] == f"{PUBLIC}/archive/{digest_message.id}"
    assert fake.in_channel(CHANNEL)[0].nonce is not None


async def test_a_rate_limited_route_is_retried_once_and_posts_once(store: DeliveryStore, fake: FakeDiscord) -> None:
    fake.script(f"/channels/{CHANNEL}/messages", Answer(429, {"message": "slow", "retry_after": 0.25, "global": False}))
    to_discord(store, message())
    async with worker_for(store, fake) as worker:
        report = await worker.drain()
    assert report.sent == 1 and fake.rate_limited == 1 and len(fake.in_channel(CHANNEL)) == 1


async def test_a_502_after_the_message_was_stored_is_retried_with_the_same_nonce_and_posts_once(
    store: DeliveryStore, fake: FakeDiscord
) -> None:
    fake.script(f"/channels/{CHANNEL}/messages", Answer(502, {"message": "bad gateway"}, store=True))
    to_discord(store, message())
    async with worker_for(store, fake) as worker:
        report = await worker.drain()
    posts = [c for c in fake.calls if c == ("POST", f"/channels/{CHANNEL}/messages")]
    assert report.sent == 1 and len(posts) == 2 and len(fake.in_channel(CHANNEL)) == 1


async def test_a_deleted_webhook_disables_the_destination_and_is_not_called_again(
    store: DeliveryStore, fake: FakeDiscord
) -> None:
    url = fake.webhook_url(WEBHOOK)  # never added: Discord answers 404 Unknown Webhook
    to_discord(store, message(), webhook=url)
    async with worker_for(store, fake, {"HOOK_URL": url}) as worker:
        await worker.drain()
        store.queue(message("week"), [("hook", Variant.FULL)])
        await worker.drain()
    hook = store.destination("hook")
    assert hook is not None and not hook.enabled and "webhook was deleted" in (hook.disabled_reason or "")
    assert len([c for c in fake.calls if c[1].startswith(f"/webhooks/{WEBHOOK}")]) == 1


@pytest.mark.parametrize("code", [50001, 50013])
async def test_missing_access_or_permissions_disables_the_channel_with_the_reason(
    store: DeliveryStore, fake: FakeDiscord, code: int
) -> None:
    fake.script(f"/channels/{CHANNEL}/messages", Answer(403, {"message": "Missing Permissions", "code": code}))
    to_discord(store, message())
    async with worker_for(store, fake) as worker:
        await worker.drain()
    server = store.destination("server")
    assert server is not None and not server.enabled and f"code {code}" in (server.disabled_reason or "")
    assert fake.in_channel(CHANNEL) == []


async def test_401_stops_every_discord_send(store: DeliveryStore, fake: FakeDiscord) -> None:
    to_discord(store, message(), message("week"))
    async with worker_for(store, fake, token="a-revoked-token") as worker:
        report = await worker.drain()
    logins = [c for c in fake.calls if c == ("GET", "/users/@me")]
    assert report.sent == 0 and len(logins) == 1 and fake.in_channel(CHANNEL) == []
    assert all(e.state is DeliveryState.FAILED for e in store.entries())


async def test_a_crash_after_the_post_is_found_again_and_not_posted_twice(
    store: DeliveryStore, fake: FakeDiscord
) -> None:
    digest_message = message()
    to_discord(store, digest_message)
    destination = store.destination("server")
    assert destination is not None
    delivery = Delivery(digest_message, destination)
    async with worker_for(store, fake) as worker:
        publisher = worker.publishers.for_destination(destination)
        assert await publisher.was_delivered(delivery) is False
        await publisher.send(delivery)
        with store.engine.begin() as connection:  # the crash: Discord has it, our record of the part is lost
            connection.exec_driver_sql("DELETE FROM sent_part")
        assert await publisher.was_delivered(delivery) is True
    assert reference(delivery) in fake.in_channel(CHANNEL)[0].embeds[-1]["footer"]["text"]


async def test_a_webhook_reads_recorded_messages_back_and_cannot_tell_about_unrecorded_ones(
    store: DeliveryStore, fake: FakeDiscord
) -> None:
    url = fake.add_webhook(WEBHOOK)
    digest_message = message()
    to_discord(store, digest_message, webhook=url)
    destination = store.destination("hook")
    assert destination is not None
    delivery = Delivery(digest_message, destination)
    async with worker_for(store, fake, {"HOOK_URL": url}) as worker:
        publisher = worker.publishers.for_destination(destination)
        assert await publisher.was_delivered(delivery) is None
        await publisher.send(delivery)
        assert await publisher.was_delivered(delivery) is True
        with fake._lock:
            fake.messages.clear()  # deleted in Discord
        assert await publisher.was_delivered(delivery) is False


async def test_fifty_webhooks_fan_out_without_a_single_429(store: DeliveryStore, fake: FakeDiscord) -> None:
    environ = {}
    destinations = []
    for n in range(12):
        hook = str(400000000000000000 + n)
        environ[f"HOOK_{n}"] = fake.add_webhook(hook)
        destinations.append(Destination(f"hook{n}", "discord_webhook", {"url_env": f"HOOK_{n}"}, Subscription()))
    store.sync_destinations(destinations)
    notices = [notice_message(f"n{k}", f"notice {k}", datetime.now(UTC)) for k in range(7)]
    for notice in notices:
        store.queue(notice, [(d.name, Variant.FULL) for d in destinations])
    async with worker_for(store, fake, environ) as worker:
        report = await worker.drain()
    assert report.sent == 12 * 7 and fake.rate_limited == 0


async def test_a_refused_token_raises_one_operator_notice_until_a_restart(
    store: DeliveryStore, fake: FakeDiscord
) -> None:
    settings = Settings(discord=DiscordConfig(api_url=fake.api_url))
    rest = rest_client(settings, {"DISCORD_BOT_TOKEN": "a-revoked-token"}, store.engine)
    factories = discord_factories(rest, settings, store.engine)
    to_discord(store, message())
    async with httpx.AsyncClient(trust_env=False) as http:
        worker = OutboxWorker(
            store, Publishers(publisher_factories(http, factories), {}), RetrySchedule(3, 0.01, 0.05), name="w"
        )
        await worker.drain()
    await rest.close()
    now = datetime.now(UTC)
    first = check_operations(Repository(store.engine), store, now, time(6), timedelta(hours=3))
    again = check_operations(Repository(store.engine), store, now, time(6), timedelta(hours=3))
    assert "discord:token" in first.raised and "discord:token" not in again.raised
    rest_client(settings, {"DISCORD_BOT_TOKEN": fake.token}, store.engine)  # a restart with a new token
    assert ServiceState(store.engine).state(DISCORD_REFUSED) is None


# -- rankbot discord invite-url ------------------------------------------------------------------------------------
def test_invite_url_asks_for_exactly_the_scopes_and_permissions_the_bot_needs(tmp_path: Path) -> None:
    result = rankbot("discord", "invite-url", "--application-id", "1100000000000000001", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == ["1100000000000000001"]
    assert query["scope"] == ["bot applications.commands"]
    wanted = discord.Permissions(
        view_channel=True, send_messages=True, embed_links=True, attach_files=True, read_message_history=True
    )
    assert query["permissions"] == [str(wanted.value)]


def test_invite_url_asks_discord_for_the_application_id_with_the_token(tmp_path: Path, fake: FakeDiscord) -> None:
    env = {"RANKBOT_DISCORD_API_URL": fake.api_url, "DISCORD_BOT_TOKEN": fake.token}
    asked = rankbot("discord", "invite-url", cwd=tmp_path, env=env)
    assert asked.returncode == 0, asked.stderr
    assert f"client_id={APPLICATION_ID}" in asked.stdout
    refused = rankbot("discord", "invite-url", cwd=tmp_path, env={**env, "DISCORD_BOT_TOKEN": "wrong"})
    assert refused.returncode == 1 and "refused the token in DISCORD_BOT_TOKEN" in refused.stderr
    assert "wrong" not in refused.stderr
    missing = rankbot("discord", "invite-url", cwd=tmp_path, env={"RANKBOT_DISCORD_API_URL": fake.api_url})
    assert missing.returncode == 1 and "--application-id" in missing.stderr


def test_discord_outputs_without_their_secrets_stop_the_start_naming_the_variable() -> None:
    settings = Settings.model_validate(
        {
            "outputs": [
                {"name": "bot", "kind": "discord", "channel_id": CHANNEL},
                {"name": "hook", "kind": "discord_webhook", "url_env": "FRIENDS_HOOK"},
            ]
        }
    )
    problems = " ".join(settings.start_problems({}))
    assert "DISCORD_BOT_TOKEN (discord.token_env)" in problems and "FRIENDS_HOOK (its url_env)" in problems
    good = "https://discord.com/api/webhooks/123456789012345678/abc-DEF_1"
    assert settings.start_problems({"DISCORD_BOT_TOKEN": "t", "FRIENDS_HOOK": good}) == []
    wrong = " ".join(settings.start_problems({"DISCORD_BOT_TOKEN": "t", "FRIENDS_HOOK": "https://example.com/x"}))
    assert "FRIENDS_HOOK (its url_env) is not a Discord webhook URL" in wrong and "example.com" not in wrong


# -- /rankings replies (rendered; the application commands that send them come next) --------------------------
def test_replies_match_the_snapshot_carry_the_source_day_and_stay_within_limits() -> None:
    history = text_history()
    day = build_digest("day", history, CATALOGUE, DigestSettings())
    card = model_card("deepseek/deepseek-v4.1-flash-20260910", history, CATALOGUE)
    replies = {
        "top": reply_messages(top_view(day, 50)),
        "movers": reply_messages(movers_view(day)),
        "card": reply_messages(Card(card, f"{PUBLIC}/models/x/spark.png", "Sparkline")),
        "matches": reply_messages(Matches("flash", tuple(search_models("flash", history, CATALOGUE)))),
        "notice": reply_messages(Notice(("*Subscribed*: this channel gets `daily` posts. @here",))),
    }
    payload = {name: [m.payload() for m in messages] for name, messages in replies.items()}
    path = SNAPSHOTS / "discord-replies.json"
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    assert payload == json.loads(path.read_text())
    for name in ("top", "movers", "card"):
        footer = replies[name][-1].embeds[-1]["footer"]["text"]
        assert "2026-10-09" in footer and "as of 2026-10-11 00:27 UTC" in footer and "CC BY 4.0" in footer
    notice = replies["notice"][0].embeds[0]["description"]
    assert notice.startswith("**Subscribed**") and "@here" not in notice
    for messages in replies.values():
        assert len(messages) == 1
        within_limits(messages[0])


def test_autocomplete_choices_stay_within_discords_limits() -> None:
    history = text_history()
    many = [Match(f"x/model-{n}", "M" * 300, "author", 1.0, None) for n in range(40)]
    found = choices([*search_models("a", history, CATALOGUE), *many])
    assert len(found) <= CHOICES_LIMIT
    assert all(len(name) <= CHOICE_NAME_LIMIT and len(value) <= CHOICE_NAME_LIMIT for name, value in found)


@pytest.mark.parametrize("route", [f"/channels/{CHANNEL}/messages", f"/webhooks/{WEBHOOK}"])
async def test_a_long_rate_limit_reschedules_the_row_instead_of_holding_the_worker(
    store: DeliveryStore, fake: FakeDiscord, route: str
) -> None:
    url = fake.add_webhook(WEBHOOK)
    limited = Answer(429, {"message": "slow", "retry_after": 30.0, "global": False}, {"Retry-After": "30"})
    fake.script(route, limited)
    to_discord(store, message(), webhook=url)
    started, clock = store.now(), monotonic()
    async with worker_for(store, fake, {"HOOK_URL": url}) as worker:
        report = await worker.drain()
    assert monotonic() - clock < 10  # the worker did not sit out the 30 s
    assert report.sent == 1 and report.failed == 1
    waiting = next(e for e in store.entries() if e.state is DeliveryState.FAILED)
    assert (waiting.next_attempt_at - started).total_seconds() >= 29
