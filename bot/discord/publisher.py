"""The Discord publishers: ``kind = "discord"`` (the bot posts to a channel) and ``kind = "discord_webhook"`` (a
webhook, its URL from the environment). Both post the same embeds with the bump chart attached (a new
``discord.File`` for every try: a File can be sent once) and allow no mention but an opt-in ``mention_role``.

Exactly once:
- Each posted message (a long digest is several) is recorded by part with its id (``storage.sent_parts``) as soon as
  Discord takes it, so a retry resumes at the missing part.
- The bot's messages carry a ``nonce`` derived from the delivery key and part, which discord.py sends with
  ``enforce_nonce``: a POST retried after a success we never saw (a 502, a reset) returns the message already made.
  ``was_delivered`` finds the parts in the channel's recent messages by the reference ending each footer.
- A webhook cannot enforce a nonce: ``was_delivered`` reads recorded messages back by id, and cannot tell about a
  part whose post was cut off before it was recorded (the outbox then resends and logs a possible duplicate).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import discord

from bot.config_outputs import DISCORD_SEND_TIMEOUT, WEBHOOK_URL
from bot.discord.rest import RestClient, discord_error
from bot.publishers.contract import Delivery, PublishError, RetryableError
from digests.delivery import Variant
from digests.render.discord import CHART_FILE, DiscordMessage, digest_messages, text_messages
from digests.render.html import Site
from storage.archive import Archive
from storage.sent_parts import SentParts

log = logging.getLogger(__name__)

HISTORY_LIMIT = 100
WEBHOOK = re.compile(WEBHOOK_URL)


def reference(delivery: Delivery) -> str:
    """The short reference of a delivery that ends each of its messages' footers (``<ref>.<part>``)."""
    return "ref " + hashlib.sha256(delivery.key.encode()).hexdigest()[:10]


def nonce(delivery: Delivery, part: int) -> str:
    """The fixed nonce of one message of a delivery (Discord allows 25 characters)."""
    return hashlib.sha256(f"{delivery.key}#{part}".encode()).hexdigest()[:25]


def webhook_parts(url: str) -> tuple[int, str]:
    """(id, token) of a webhook URL (``…/api/webhooks/<id>/<token>``)."""
    match = WEBHOOK.search(url.split("?")[0])
    if match is None:
        raise ValueError("not a Discord webhook URL (…/api/webhooks/<id>/<token>)")
    return int(match.group(1)), match.group(2)


class _DiscordPosts:
    """What both kinds share: the messages of a delivery, the chart, the mentions, the parts already posted."""

    timeout = DISCORD_SEND_TIMEOUT

    def __init__(
        self,
        address: str,
        rest: RestClient,
        top: int,
        public_url: str,
        archive: Archive | None,
        parts: SentParts,
        mention_role: str | None = None,
    ) -> None:
        self.rest = rest
        self.top = top
        self.site = Site("", "", public_url) if public_url else None
        self.archive = archive
        self.parts = parts
        self.mention_role = mention_role
        self.at(address)

    def at(self, address: str) -> None:
        """Take the place this publisher posts to (what ``address`` read from the target)."""
        raise NotImplementedError

    @staticmethod
    def address(target: Mapping[str, Any], environ: Mapping[str, str]) -> str:
        """Where this kind posts, from the destination's target (a channel id, a webhook URL)."""
        raise NotImplementedError

    @classmethod
    def factory(
        cls, rest: RestClient, public_url: str, archive: Archive | None, parts: SentParts
    ) -> Callable[..., _DiscordPosts]:
        def build(destination: Any, environ: Mapping[str, str]) -> _DiscordPosts:
            target = destination.target
            top = int(target.get("top", 10))
            return cls(cls.address(target, environ), rest, top, public_url, archive, parts, target.get("mention_role"))

        return build

    def messages(self, delivery: Delivery, chart: bool = False) -> list[DiscordMessage]:
        """The messages of a delivery (how many does not depend on ``chart``: an image counts toward no limit)."""
        message, payloads = delivery.message, delivery.payloads
        if not _is_digest(delivery):
            return text_messages(payloads["text"])
        document = json.loads(payloads["json"])
        archive_url = self.site.absolute(self.site.archive_url(message.id)) if self.site else None
        return digest_messages(document, self.top, archive_url, chart, reference(delivery))

    def mentions(self) -> discord.AllowedMentions:
        if self.mention_role is None:
            return discord.AllowedMentions.none()
        return discord.AllowedMentions(everyone=False, users=False, roles=[discord.Object(int(self.mention_role))])

    async def _chart(self, delivery: Delivery) -> tuple[bytes, str] | None:
        if self.archive is None or not _is_digest(delivery):
            return None
        chart = await asyncio.to_thread(self.archive.chart, delivery.message.id, "bump")
        return (chart.png, chart.alt) if chart is not None else None

    def arguments(self, message: DiscordMessage, part: int, chart: tuple[bytes, str] | None) -> dict[str, Any]:
        """``send`` keywords for one message; a fresh ``discord.File`` each time (a File can be sent once)."""
        content = message.content
        if part == 0 and self.mention_role is not None:
            content = f"<@&{self.mention_role}> {content or ''}".strip()
        arguments: dict[str, Any] = {
            "embeds": [discord.Embed.from_dict(embed) for embed in message.embeds],
            "allowed_mentions": self.mentions(),
        }
        if content:
            arguments["content"] = content
        if message.chart and chart is not None:
            arguments["file"] = discord.File(io.BytesIO(chart[0]), CHART_FILE, description=chart[1][:1024])
        return arguments

    async def _posting(self, delivery: Delivery, post: Callable[[int, dict[str, Any]], Any]) -> str | None:
        """Post the parts not yet posted, recording each as Discord takes it; the first part's id."""
        posted = await asyncio.to_thread(self.parts.posted, delivery.key)
        chart = await self._chart(delivery)
        first = posted.get(0)
        for part, message in enumerate(self.messages(delivery, chart is not None)):
            if part in posted:
                continue
            sent = await post(part, self.arguments(message, part, chart))
            await asyncio.to_thread(self.parts.record, delivery.key, part, str(sent.id))
            first = first or str(sent.id)
        return first


def _is_digest(delivery: Delivery) -> bool:
    return delivery.message.kind in ("day", "week") and delivery.variant is not Variant.LINE


class DiscordPublisher(_DiscordPosts):
    """The bot posts to a channel."""

    def at(self, address: str) -> None:
        self.channel_id = int(address)

    @staticmethod
    def address(target: Mapping[str, Any], environ: Mapping[str, str]) -> str:
        return str(target.get("channel_id") or target["channel"])  # configured, or subscribed from chat

    async def _channel(self) -> discord.PartialMessageable:
        return (await self.rest.client()).get_partial_messageable(self.channel_id)

    async def send(self, delivery: Delivery) -> str | None:
        channel = await self._channel()

        async def post(part: int, arguments: dict[str, Any]) -> discord.Message:
            try:
                return await channel.send(nonce=nonce(delivery, part), **arguments)
            except Exception as error:
                raise discord_error(error, self.rest.refused) from None

        return await self._posting(delivery, post)

    async def was_delivered(self, delivery: Delivery) -> bool | None:
        """Every part is in the channel: recorded, or found among its recent messages by its reference."""
        messages = self.messages(delivery)
        posted = await asyncio.to_thread(self.parts.posted, delivery.key)
        if len(posted) >= len(messages):
            return True
        ref = reference(delivery)
        try:
            channel = await self._channel()
            async for found in channel.history(limit=HISTORY_LIMIT):
                for embed in found.embeds:
                    text = embed.footer.text or ""
                    match = re.search(re.escape(ref) + r"\.(\d+)$", text)
                    if match and int(match.group(1)) not in posted:
                        posted[int(match.group(1))] = str(found.id)
                        await asyncio.to_thread(self.parts.record, delivery.key, int(match.group(1)), str(found.id))
        except (PublishError, discord.HTTPException, aiohttp.ClientError):
            return None
        return len(posted) >= len(messages)


class DiscordWebhookPublisher(_DiscordPosts):
    """A webhook posts (``wait=True``, so a failure is seen)."""

    def at(self, address: str) -> None:
        self.webhook_id, self.token = webhook_parts(address)

    @staticmethod
    def address(target: Mapping[str, Any], environ: Mapping[str, str]) -> str:
        return environ.get(str(target["url_env"])) or ""

    def webhook(self) -> discord.Webhook:
        self.rest.refused.check()
        return discord.Webhook.partial(self.webhook_id, self.token, session=self.rest.webhooks())

    async def send(self, delivery: Delivery) -> str | None:
        webhook = self.webhook()

        async def post(part: int, arguments: dict[str, Any]) -> discord.WebhookMessage:
            try:
                return await webhook.send(wait=True, **arguments)
            except Exception as error:
                raise discord_error(error, self.rest.refused) from None

        return await self._posting(delivery, post)

    async def was_delivered(self, delivery: Delivery) -> bool | None:
        """Every part recorded and still there (read back by id); ``None`` when a part's post was cut off before
        it was recorded (a webhook keeps no nonce to find it by)."""
        messages = self.messages(delivery)
        posted = await asyncio.to_thread(self.parts.posted, delivery.key)
        if len(posted) < len(messages):
            return None
        webhook = self.webhook()
        try:
            for message_id in posted.values():
                await webhook.fetch_message(int(message_id))
        except discord.NotFound:
            return False
        except (discord.HTTPException, aiohttp.ClientError, RetryableError):
            return None
        return True
