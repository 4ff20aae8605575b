"""Each publisher against its real peer: files in a folder, a stream, and a webhook receiver on 127.0.0.1 that checks
signatures and can answer 429, 5xx, 4xx, slowly, or not at all."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import socket
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from bot.demo.generator import SyntheticHistory
from bot.demo.receiver import FakeWebhook, Scripted
from bot.publishers.console import ConsolePublisher
from bot.publishers.contract import (
    Delivery,
    GoneError,
    InvalidPayloadError,
    RateLimitedError,
    RetryableError,
)
from bot.publishers.files import FilePublisher
from bot.publishers.registry import Publishers, publisher_factories
from bot.publishers.webhook import MAX_BODY_BYTES, WebhookPublisher, signature
from digests.delivery import Destination, Message, Variant
from digests.digest import build_digest
from digests.messages import message_for
from digests.model import DigestSettings
from tests.conftest import WEBHOOK_SECRET


@pytest.fixture(scope="module")
def message(history: SyntheticHistory) -> Message:
    return message_for(build_digest("day", history.days, {}, DigestSettings()))


def delivery(message: Message, name: str = "dest", variant: Variant = Variant.FULL) -> Delivery:
    return Delivery(message, Destination(name, "webhook", {}), variant)


async def test_file_publisher_writes_every_format_and_knows_what_it_wrote(message: Message, tmp_path: Path) -> None:
    publisher = FilePublisher(tmp_path / "out", ["text", "markdown", "json"])
    full, quiet = delivery(message), delivery(message, variant=Variant.LINE)
    assert await publisher.was_delivered(full) is False
    assert await publisher.send(full) == str(tmp_path / "out" / f"day-{message.first_day}.txt")
    assert await publisher.was_delivered(full) is True
    assert await publisher.was_delivered(quiet) is False
    await publisher.send(quiet)
    names = sorted(path.name for path in (tmp_path / "out").iterdir())
    day = message.first_day
    assert names == sorted(f"day-{day}{suffix}.{ext}" for suffix in ("", "-quiet") for ext in ("json", "md", "txt"))
    assert (tmp_path / "out" / f"day-{day}.txt").read_text() == message.full["text"]
    assert json.loads((tmp_path / "out" / f"day-{day}.json").read_text())["id"] == message.id


async def test_file_publisher_failure_is_retryable(message: Message, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(RetryableError, match="cannot write to"):
        await FilePublisher(blocker, ["text"]).send(delivery(message))


async def test_console_publisher_prints_and_cannot_tell(message: Message) -> None:
    stream = io.StringIO()
    publisher = ConsolePublisher("markdown", stream)
    await publisher.send(delivery(message))
    assert stream.getvalue() == message.full["markdown"] + "\n"
    assert await publisher.was_delivered(delivery(message)) is None


async def test_webhook_posts_a_signed_document_the_receiver_verifies(message: Message) -> None:
    with FakeWebhook(secret=WEBHOOK_SECRET) as webhook:
        async with httpx.AsyncClient() as client:
            publisher = WebhookPublisher(client, webhook.hook_url("a"), WEBHOOK_SECRET, webhook.status_url("a"))
            assert await publisher.was_delivered(delivery(message, "a")) is False
            assert await publisher.send(delivery(message, "a")) == "req-1"
            assert await publisher.was_delivered(delivery(message, "a")) is True
            [received] = webhook.received
            assert received.body["schema"] == "rankbot.delivery/v1"
            assert received.body["document"]["schema"] == "rankbot.digest/v1"
            assert received.body["title"] == message.title
            body, headers = publisher.request(delivery(message, "a"))
            expected = hmac.new(
                WEBHOOK_SECRET.encode(), headers["X-Rankbot-Timestamp"].encode() + b"." + body, hashlib.sha256
            ).hexdigest()
            assert headers["X-Rankbot-Signature"] == f"sha256={expected}"
            wrong = WebhookPublisher(client, webhook.hook_url("b"), "not-the-secret")
            with pytest.raises(GoneError, match="HTTP 401"):
                await wrong.send(delivery(message, "b"))
            assert webhook.rejected == ["b"]


def test_signature_covers_timestamp_and_body() -> None:
    assert signature("k", "1", b"x") != signature("k", "2", b"x") != signature("k", "1", b"y")


@pytest.mark.parametrize(
    ("answer", "error", "text"),
    [
        (Scripted(429, {"Retry-After": "2"}), RateLimitedError, "HTTP 429"),
        (Scripted(500, body="boom"), RetryableError, "HTTP 500: boom"),
        (Scripted(503), RetryableError, "HTTP 503"),
        (Scripted(404, body="gone"), GoneError, "HTTP 404: gone"),
        (Scripted(410), GoneError, "HTTP 410"),
        (Scripted(413, body="too big"), InvalidPayloadError, "HTTP 413: too big"),
        (Scripted(422), InvalidPayloadError, "HTTP 422"),
    ],
)
async def test_webhook_answers_map_to_typed_errors(
    message: Message, answer: Scripted, error: type[Exception], text: str
) -> None:
    with FakeWebhook() as webhook:
        webhook.script("a", answer)
        async with httpx.AsyncClient() as client:
            with pytest.raises(error, match=text) as caught:
                await WebhookPublisher(client, webhook.hook_url("a")).send(delivery(message))
    if isinstance(caught.value, RateLimitedError):
        assert caught.value.retry_after == 2.0


async def test_webhook_timeouts_and_refusals_are_retryable(message: Message) -> None:
    with FakeWebhook(delay=(1.0, 1.0)) as slow:
        async with httpx.AsyncClient() as client:
            with pytest.raises(RetryableError, match="ReadTimeout"):
                await WebhookPublisher(client, slow.hook_url("a"), timeout=0.2).send(delivery(message))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with httpx.AsyncClient() as client:
        with pytest.raises(RetryableError, match="ConnectError"):
            await WebhookPublisher(client, f"http://127.0.0.1:{port}/h").send(delivery(message))


async def test_an_oversized_message_is_invalid_before_any_request(message: Message) -> None:
    huge = replace(message, full={**message.full, "text": "x" * (MAX_BODY_BYTES + 1)})
    async with httpx.AsyncClient() as client:
        with pytest.raises(InvalidPayloadError, match="webhooks take at most"):
            await WebhookPublisher(client, "http://127.0.0.1:9/never").send(delivery(huge))


async def test_the_registry_names_an_unknown_kind() -> None:
    async with httpx.AsyncClient() as client:
        publishers = Publishers(publisher_factories(client), {})
        with pytest.raises(RetryableError, match="no publisher for destination kind 'pigeon'"):
            publishers.for_destination(Destination("x", "pigeon", {}))
