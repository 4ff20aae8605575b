"""Slack: Block Kit snapshots, limits and escaping; the publisher on the outbox against a fake Slack Web API on
127.0.0.1 — exactly one post with its chart and metadata, the metadata check after a crash, 429 with Retry-After,
the errors that disable a channel, retries of 5xx and HTML, pacing at one message a second per channel, uploads."""

from __future__ import annotations

import itertools
import json
import os
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.config_chat import SlackConfig
from bot.demo.fake_slack import Answer, FakeSlack
from bot.health import health_report
from bot.outbox import OutboxWorker
from bot.publishers.contract import Delivery
from bot.publishers.registry import Publishers, publisher_factories
from bot.slack.publisher import EVENT_TYPE, SlackPublisher
from digests.delivery import DeliveryState, Destination, Message, RetrySchedule, Subscription, Variant
from digests.digest import build_digest
from digests.messages import message_for, notice_message
from digests.model import DigestSettings, ModelInfo
from digests.render.charts import Chart
from digests.render.document import digest_document
from digests.render.slack import (
    BLOCKS_LIMIT,
    FIELDS_LIMIT,
    HEADER_LIMIT,
    SECTION_TEXT_LIMIT,
    TEXT_LIMIT,
    SlackImage,
    digest_messages,
    mrkdwn,
)
from storage.archive import Archive
from storage.delivery import DeliveryStore
from storage.pacing import Pacer
from storage.repository import Repository
from storage.service_state import ServiceState
from tests.conftest import Clock
from tests.test_text import CATALOGUE
from tests.test_text import history as text_history

SNAPSHOTS = Path(__file__).parent / "snapshots"
HOSTILE = "<!channel> *x* a&b <https://evil|y> <@U123>"


def within_limits(blocks: list[dict[str, Any]], text: str) -> None:
    assert len(blocks) <= BLOCKS_LIMIT and len(text) <= TEXT_LIMIT
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= HEADER_LIMIT
        if block["type"] == "section":
            assert len(block.get("text", {}).get("text", "")) <= SECTION_TEXT_LIMIT
            assert len(block.get("fields", [])) <= FIELDS_LIMIT
        if block["type"] == "context":
            assert len(block["elements"]) <= 10


@pytest.mark.parametrize("kind", ["day", "week"])
def test_digest_blocks_match_the_snapshot_and_stay_within_slacks_limits(kind: str) -> None:
    digest = build_digest(kind, text_history(), CATALOGUE, DigestSettings())
    chart = SlackImage("https://rankings.example.com/charts/x/bump.png", "Bump chart: …", "Rank by day")
    messages = digest_messages(digest_document(digest), 10, "https://rankings.example.com/archive/x", chart)
    payload = [message.payload() for message in messages]
    path = SNAPSHOTS / f"slack-{kind}.json"
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    assert payload == json.loads(path.read_text())
    for message in messages:
        within_limits(list(message.blocks), message.text)
    flat = json.dumps(payload, ensure_ascii=False)
    assert digest.period_label in flat and "data as of 2026-10-11 00:27 UTC" in flat and digest.attribution in flat
    assert any(block["type"] == "image" and block["alt_text"] for block in payload[0]["blocks"])


def test_a_long_digest_continues_in_more_messages_and_is_never_cut() -> None:
    digest = build_digest("day", text_history(), CATALOGUE, DigestSettings())
    document = digest_document(digest)
    document["alerts"] = [{"permaslug": "x/y", "reason": f"reason {n} " + "z" * 200} for n in range(1000)]
    messages = digest_messages(document, 50)
    assert len(messages) > 1
    said = "\n".join(b["text"]["text"] for m in messages for b in m.blocks if b["type"] == "section")
    assert all(f"reason {n} " in said for n in range(1000))
    for message in messages:
        within_limits(list(message.blocks), message.text)


def test_names_from_the_source_cannot_notify_or_link() -> None:
    assert mrkdwn(HOSTILE) == "&lt;!channel&gt; *x* a&amp;b &lt;https://evil|y&gt; &lt;＠U123&gt;"
    catalogue = {**CATALOGUE, "z-ai/glm-5.3-flash-20260826": ModelInfo("z-ai/glm-5.3-flash-20260826", HOSTILE, HOSTILE)}
    digest = build_digest("week", text_history(), catalogue, DigestSettings())
    flat = json.dumps([m.payload() for m in digest_messages(digest_document(digest), 10)], ensure_ascii=False)
    assert "<!channel>" not in flat and "<https://evil" not in flat and "<@U123>" not in flat


# -- the publisher on the outbox ------------------------------------------------------------------------------
@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def message(kind: str = "day") -> Message:
    return message_for(build_digest(kind, text_history(), CATALOGUE, DigestSettings()))


@asynccontextmanager
async def worker_for(
    store: DeliveryStore, slack: FakeSlack, public_url: str = "", attempts: int = 3, pace: bool = False
) -> AsyncIterator[OutboxWorker]:
    client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
    archive = Archive(store.engine)
    factory = SlackPublisher.factory(lambda target: client, public_url, archive, Pacer(store.engine) if pace else None)
    async with httpx.AsyncClient(trust_env=False) as http:
        yield OutboxWorker(
            store,
            Publishers(publisher_factories(http, {"slack": factory}), {}),
            RetrySchedule(attempts=attempts, base=1.0, cap=10.0),
            name="worker",
            rng=random.Random(3),
        )


def to_channel(store: DeliveryStore, *messages: Message, channel: str = "C0DIGEST") -> None:
    store.sync_destinations([Destination("team", "slack", {"channel": channel, "top": 10}, Subscription())])
    for queued in messages:
        store.queue(queued, [("team", Variant.FULL)])


def bump_chart() -> Chart:
    return Chart(b"\x89PNG fake chart", "Bump chart: daily token rank of the top 10.", 1200, 675)


async def test_a_digest_reaches_the_channel_once_with_its_chart_and_metadata(
    store: DeliveryStore, slack: FakeSlack
) -> None:
    digest_message = message()
    Archive(store.engine).save_charts(digest_message.id, {"bump": bump_chart()})
    to_channel(store, digest_message)
    async with worker_for(store, slack, public_url="https://rankings.example.com") as worker:
        assert (await worker.drain()).sent == 1
    [post] = slack.in_channel("C0DIGEST")
    assert post.metadata == {
        "event_type": EVENT_TYPE,
        "event_payload": {"delivery": f"{digest_message.id}/team", "part": 0},
    }
    [image] = [b for b in post.blocks if b["type"] == "image"]
    assert image["image_url"] == f"https://rankings.example.com/charts/{digest_message.id}/bump.png"
    assert image["alt_text"] == "Bump chart: daily token rank of the top 10."
    [button] = next(b for b in post.blocks if b["type"] == "actions")["elements"]
    assert button["url"] == f"https://rankings.example.com/archive/{digest_message.id}"
    assert "Source: OpenRouter (openrouter.ai/rankings)" in post.text
    [entry] = store.entries()
    assert entry.state is DeliveryState.SENT and entry.external_id == post.ts


async def test_without_a_public_url_the_chart_is_uploaded_in_the_thread(store: DeliveryStore, slack: FakeSlack) -> None:
    digest_message = message()
    Archive(store.engine).save_charts(digest_message.id, {"bump": bump_chart()})
    to_channel(store, digest_message)
    async with worker_for(store, slack) as worker:
        assert (await worker.drain()).sent == 1
    assert list(slack.uploads.values()) == [b"\x89PNG fake chart"]
    post, upload = slack.in_channel("C0DIGEST")
    assert not any(b["type"] == "image" for b in post.blocks) and upload.thread_ts == post.ts


async def test_a_crash_after_slack_took_the_post_does_not_post_twice(store: DeliveryStore, slack: FakeSlack) -> None:
    digest_message = message()
    to_channel(store, digest_message)
    [claim] = store.claim("crashed", 1)
    client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
    await SlackPublisher(client, "C0DIGEST").send(Delivery(claim.message, claim.destination))  # then the crash
    async with worker_for(store, slack) as worker:
        assert await worker.reconcile(single_instance=True) == 1
        assert (await worker.drain()).handled == 0
    assert len(slack.in_channel("C0DIGEST")) == 1
    assert store.entries()[0].state is DeliveryState.SENT


async def test_a_429_waits_retry_after_then_posts_once(store: DeliveryStore, slack: FakeSlack, clock: Clock) -> None:
    to_channel(store, message())
    slack.script("chat.postMessage", Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "2"}))
    async with worker_for(store, slack) as worker:
        assert (await worker.drain()).failed == 1
        [entry] = store.entries()
        assert entry.next_attempt_at >= clock.now + timedelta(seconds=2)
        clock.advance(seconds=1.9)
        assert (await worker.drain()).handled == 0
        clock.advance(seconds=10)
        assert (await worker.drain()).sent == 1
    assert len(slack.in_channel("C0DIGEST")) == 1
    assert [m for m, _ in slack.calls].count("chat.postMessage") == 2


@pytest.mark.parametrize(
    "error", ["channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "account_inactive", "token_revoked",
              "missing_scope"],
)  # fmt: skip
async def test_a_channel_slack_says_is_gone_is_disabled_with_the_reason(
    store: DeliveryStore, slack: FakeSlack, clock: Clock, error: str
) -> None:
    to_channel(store, message())
    slack.script("chat.postMessage", Answer(200, {"ok": False, "error": error}))
    async with worker_for(store, slack) as worker:
        report = await worker.drain()
        clock.advance(hours=2)
        assert (await worker.drain()).handled == 0  # never tried again
    assert report.sent == 0 and report.dead == 1
    destination = store.destination("team")
    assert destination is not None and not destination.enabled
    assert destination.disabled_reason is not None and destination.disabled_reason.startswith(f"Slack answered {error}")
    assert [m for m, _ in slack.calls].count("chat.postMessage") == 1
    [entry] = store.entries()
    assert entry.state is DeliveryState.DEAD and entry.attempts == 1
    health = health_report(Repository(store.engine), store, ServiceState(store.engine), "w", timedelta(60), True)
    assert health["disabled_destinations"] == [{"name": "team", "reason": destination.disabled_reason}]


@pytest.mark.parametrize("answer", [Answer(502, "<html>bad gateway</html>"), Answer(200, "<html>maintenance</html>")])
async def test_5xx_and_html_are_retried_then_dead(store: DeliveryStore, slack: FakeSlack, clock: Clock,
                                                  answer: Answer) -> None:  # fmt: skip
    to_channel(store, message())
    slack.script("chat.postMessage", answer, answer, answer)
    async with worker_for(store, slack, attempts=3) as worker:
        for _ in range(3):
            await worker.drain()
            clock.advance(seconds=11)
    [entry] = store.entries()
    assert entry.state is DeliveryState.DEAD and entry.attempts == 3
    assert entry.last_error is not None and "Slack did not take it" in entry.last_error
    assert slack.in_channel("C0DIGEST") == []


async def test_posts_to_one_channel_are_paced_at_one_a_second(tmp_path: Path) -> None:
    """30 messages to one channel through a fake that answers 429 to anything faster than 1/s: none is refused."""
    from storage.engine import open_database

    with FakeSlack(per_channel_interval=1.0) as slack:
        engine = open_database(f"sqlite:///{tmp_path / 'paced.db'}")
        store = DeliveryStore(engine)
        messages = [message("day"), message("week")]
        messages += [notice_message(f"n{n}", f"notice {n}", datetime(2026, 11, 20, tzinfo=UTC)) for n in range(28)]
        to_channel(store, *messages[:30])
        async with worker_for(store, slack, pace=True) as worker:
            report = await worker.drain()
        posts = slack.in_channel("C0DIGEST")
        assert report.sent == len(messages[:30]) == len(posts) and slack.rate_limited == 0
        gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(posts)]
        assert min(gaps) >= 0.95
        engine.dispose()


def test_the_slack_config_refuses_an_endpoint_without_a_signing_secret() -> None:
    from bot.config_loading import load_settings

    settings = load_settings(None, {"SLACK_BOT_TOKEN": "xoxb-1"})
    assert settings.slack_problems({"SLACK_BOT_TOKEN": "xoxb-1"}) == [
        "the Slack endpoint /slack/events needs the signing secret: set the environment variable "
        "SLACK_SIGNING_SECRET (slack.signing_secret_env), or set SLACK_APP_TOKEN for Socket Mode"
    ]
    assert settings.slack_problems({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}) == []
    assert settings.slack_problems({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}) == []
    assert settings.slack_problems({}) == []  # Slack unused
    assert SlackConfig(api_url="http://127.0.0.1:9/api").api_url == "http://127.0.0.1:9/api/"
