"""The Slack publisher (``kind = "slack"``): a digest as Block Kit through ``chat.postMessage``, with the bump chart.

- The chart is an ``image`` block from the archive's public URL (``[web] public_url``); without one, the stored chart
  is uploaded with ``files_upload_v2`` in the digest's thread (needs ``files:write``; an upload that fails is
  logged and the digest still counts as delivered, so it is never posted twice for its picture).
- Every message carries Slack message metadata (event type ``rankbot_digest``, the delivery key and the part), and
  ``was_delivered`` looks for it in ``conversations.history``: a crash after a post that Slack took does not post
  again. A digest longer than one message continues in its thread; a retry skips the parts already posted.
- At most one message a second per channel, shared by every worker through the database (``storage.pacing``).
- Errors (https://api.slack.com/methods/chat.postMessage#errors): 429 → the outbox waits ``Retry-After``; a channel
  or token that is gone disables the destination with Slack's reason; 5xx and answers that are not Slack's JSON
  are retried; a message Slack refuses (``invalid_blocks``, ``msg_too_long``) is dead at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.config_outputs import SLACK_SEND_TIMEOUT
from bot.publishers.contract import Delivery, GoneError, InvalidPayloadError, RateLimitedError, RetryableError
from bot.sources.retry import retry_after_seconds
from digests.delivery import Variant
from digests.render.html import Site
from digests.render.slack import SlackImage, SlackMessage, digest_messages, plain_message
from storage.archive import Archive
from storage.pacing import Pacer

log = logging.getLogger(__name__)

EVENT_TYPE = "rankbot_digest"
PACE = timedelta(seconds=1.05)
"""Slack's guidance: about one message a second per channel (with room for a send that is slow to arrive)."""
HISTORY_LIMIT = 200
GONE = {
    "channel_not_found": "the channel does not exist (or the app cannot see it)",
    "not_in_channel": "the app is not in the channel: /invite it, or give it chat:write.public",
    "is_archived": "the channel is archived",
    "invalid_auth": "the bot token is not valid",
    "account_inactive": "the bot's account was deactivated",
    "token_revoked": "the bot token was revoked (the app was removed?)",
    "missing_scope": "the app lacks a scope it needs (chat:write)",
}
RETRYABLE = {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}


def slack_error(error: SlackApiError) -> Exception:
    """The outbox's error for a Slack answer."""
    response = error.response
    data = response.data if isinstance(response.data, dict) else {}
    code = str(data.get("error") or "")
    if response.status_code == 429:
        return RateLimitedError("Slack rate limit (HTTP 429)", retry_after_seconds(response.headers.get("Retry-After")))
    if code in GONE:
        return GoneError(f"Slack answered {code}: {GONE[code]}")
    if response.status_code >= 500 or not data or code in RETRYABLE:
        return RetryableError(f"Slack did not take it (HTTP {response.status_code}{', ' + code if code else ''})")
    return InvalidPayloadError(f"Slack refused the message: {code or 'ok: false'}")


async def slack_call(call: Callable[..., Awaitable[AsyncSlackResponse]], **arguments: Any) -> AsyncSlackResponse:
    """A Web API call, its failures turned into the outbox's errors."""
    try:
        return await call(**arguments)
    except SlackApiError as error:
        raise slack_error(error) from None
    except (aiohttp.ClientError, TimeoutError) as error:
        raise RetryableError(f"Slack unreachable: {type(error).__name__}: {error}") from None


class SlackPublisher:
    timeout = SLACK_SEND_TIMEOUT

    def __init__(
        self,
        client: AsyncWebClient | Callable[[], AsyncWebClient],
        channel: str,
        top: int = 10,
        public_url: str = "",
        archive: Archive | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self._client = client
        """The client, or how to get the current one (an OAuth install's token is looked up at each send, so a
        reinstall is picked up)."""
        self.channel = channel
        self.top = top
        self.site = Site("", "", public_url) if public_url else None
        self.archive = archive
        self.pacer = pacer

    @classmethod
    def factory(
        cls, clients: Callable[[Mapping[str, Any]], AsyncWebClient], public_url: str, archive: Archive | None,
        pacer: Pacer | None,
    ) -> Callable[..., SlackPublisher]:  # fmt: skip
        def build(destination: Any, environ: Mapping[str, str]) -> SlackPublisher:
            target = destination.target
            return cls(
                lambda: clients(target), str(target["channel"]), int(target.get("top", 10)), public_url, archive, pacer
            )

        return build

    # -- what is posted ----------------------------------------------------------------------------------
    def messages(self, delivery: Delivery) -> list[SlackMessage]:
        message, payloads = delivery.message, delivery.payloads
        if message.kind not in ("day", "week") or delivery.variant is Variant.LINE:
            return [plain_message(payloads["text"].strip())]
        document = json.loads(payloads["json"])
        chart = None
        if self.site is not None:
            alt = self.archive.chart_alts(message.id).get("bump") if self.archive else None
            if alt is not None:
                chart = SlackImage(self.site.absolute(self.site.chart_url(message.id, "bump")), alt, "Rank by day")
        archive_url = self.site.absolute(self.site.archive_url(message.id)) if self.site else None
        return digest_messages(document, self.top, archive_url, chart)

    # -- sending -----------------------------------------------------------------------------------------
    async def client(self) -> AsyncWebClient:
        if isinstance(self._client, AsyncWebClient):
            return self._client
        return await asyncio.to_thread(self._client)

    async def _pace(self) -> None:
        if self.pacer is not None:
            slot = await asyncio.to_thread(self.pacer.reserve, f"slack:{self.channel}", PACE)
            wait = (slot - datetime.now(UTC)).total_seconds()
            if wait > 0:
                await asyncio.sleep(wait)

    async def _posted(self, delivery: Delivery) -> dict[int, str]:
        """The parts of ``delivery`` already in the channel (part → ts), from their metadata."""
        client = await self.client()
        history = await slack_call(
            client.conversations_history, channel=self.channel, limit=HISTORY_LIMIT, include_all_metadata=True
        )
        found: dict[int, str] = {}
        for item in history.get("messages") or []:
            metadata = item.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == EVENT_TYPE and payload.get("delivery") == delivery.key:
                found[int(payload.get("part", 0))] = str(item.get("ts"))
        return found

    async def send(self, delivery: Delivery) -> str | None:
        messages = self.messages(delivery)
        posted = await self._posted(delivery) if len(messages) > 1 else {}
        first = posted.get(0)
        for part, slack_message in enumerate(messages):
            if part in posted:
                continue
            await self._pace()
            response = await slack_call(
                (await self.client()).chat_postMessage,
                channel=self.channel,
                **slack_message.payload(),
                thread_ts=first if part else None,
                metadata={"event_type": EVENT_TYPE, "event_payload": {"delivery": delivery.key, "part": part}},
                unfurl_links=False,
                unfurl_media=False,
            )
            first = first or str(response.get("ts"))
        if self.site is None:
            await self._upload_chart(delivery, first)
        return first

    async def _upload_chart(self, delivery: Delivery, thread: str | None) -> None:
        """Without a public URL, the stored bump chart goes up as a file in the digest's thread."""
        if self.archive is None or delivery.message.kind not in ("day", "week"):
            return
        chart = await asyncio.to_thread(self.archive.chart, delivery.message.id, "bump")
        if chart is None:
            return
        try:
            await self._pace()
            await slack_call(
                (await self.client()).files_upload_v2,
                channel=self.channel,
                content=chart.png,
                filename="bump.png",
                title="Rank by day",
                alt_txt=chart.alt[:1000],
                thread_ts=thread,
            )
        except (RetryableError, GoneError, InvalidPayloadError) as error:  # the digest itself arrived
            log.warning("%s: the chart was not uploaded to %s: %s", delivery.key, self.channel, error)

    async def was_delivered(self, delivery: Delivery) -> bool | None:
        """Every part of the digest is in the channel (a partly posted one is resent from the missing part)."""
        try:
            posted = await self._posted(delivery)
        except (RetryableError, GoneError, InvalidPayloadError, RateLimitedError):
            return None
        return len(posted) >= len(self.messages(delivery))
