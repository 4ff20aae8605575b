"""Discord assembled from the settings: where its API and gateway are, the process's REST client, the publisher
factories for the outbox (``discord`` and ``discord_webhook``), and the ``/rankings`` bot."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine

from bot.chat.answers import Answers
from bot.chat.channels import ChatChannels
from bot.config import Settings
from bot.config_outputs import DiscordOutput
from bot.discord.app import DiscordChat
from bot.discord.publisher import DiscordPublisher, DiscordWebhookPublisher
from bot.discord.rest import RestClient, TokenRefused, point_at
from bot.planner import DISCORD_REFUSED
from bot.web.site import SiteData
from digests.render.discord import discord_text, slash_usage
from storage.archive import Archive
from storage.chat import ChatRequests
from storage.delivery import DeliveryStore
from storage.repository import Repository
from storage.sent_parts import SentParts
from storage.service_state import ServiceState


def rest_client(settings: Settings, environ: Mapping[str, str], engine: Engine) -> RestClient:
    """The process's REST client for posting; a refused token is kept in the service state (cleared here, at
    start: a restart is how a new token is taken). Close it when done."""
    point_at(settings.discord.api_url, settings.discord.gateway_url)
    state = ServiceState(engine)
    state.set_state(DISCORD_REFUSED, None)
    return RestClient(
        settings.discord.token(environ), TokenRefused(lambda reason: state.set_state(DISCORD_REFUSED, reason))
    )


def publisher_factories(rest: RestClient, settings: Settings, engine: Engine) -> dict[str, Any]:
    """The two Discord kinds' factories, sharing one REST client."""
    archive, parts = Archive(engine), SentParts(engine)
    public_url = settings.web.public_url
    return {
        "discord": DiscordPublisher.factory(rest, public_url, archive, parts),
        "discord_webhook": DiscordWebhookPublisher.factory(rest, public_url, archive, parts),
    }


def configured_channels(settings: Settings) -> Callable[[str, str], str | None]:
    """Which ``[[outputs]]`` entry the bot posts to a (server, channel) from, if any: not changed from chat."""
    bot_outputs = [output for output in settings.destinations() if isinstance(output, DiscordOutput)]
    outputs = {output.channel_id: output.name for output in bot_outputs}
    return lambda guild, channel: outputs.get(channel)


def discord_chat(settings: Settings, environ: Mapping[str, str], engine: Engine, data: SiteData) -> DiscordChat | None:
    """The ``/rankings`` bot over the database (answers from ``data``'s caches); ``None`` without a token."""
    token = settings.discord.token(environ)
    if token is None:
        return None
    point_at(settings.discord.api_url, settings.discord.gateway_url)
    channels = ChatChannels("discord", DeliveryStore(engine), Repository(engine), configured_channels(settings))
    answers = Answers(data, channels, settings.web.public_url, slash_usage, discord_text)
    return DiscordChat(settings.discord, token, answers, ChatRequests(engine), ServiceState(engine))
