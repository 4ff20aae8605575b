"""Discord assembled from the settings: where its API is, the process's REST client, and the publisher factories
for the outbox (``discord`` and ``discord_webhook``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from bot.config import Settings
from bot.discord.publisher import DiscordPublisher, DiscordWebhookPublisher
from bot.discord.rest import RestClient, TokenRefused, point_at
from bot.planner import DISCORD_REFUSED
from storage.archive import Archive
from storage.sent_parts import SentParts
from storage.service_state import ServiceState


def publisher_factories(settings: Settings, environ: Mapping[str, str], engine: Engine) -> dict[str, Any]:
    """The two Discord kinds' factories, sharing one REST client; a refused token is kept in the service state
    (cleared at start: a restart is how a new token is taken)."""
    point_at(settings.discord.api_url)
    state = ServiceState(engine)
    state.set_state(DISCORD_REFUSED, None)
    rest = RestClient(
        settings.discord.token(environ), TokenRefused(lambda reason: state.set_state(DISCORD_REFUSED, reason))
    )
    archive, parts = Archive(engine), SentParts(engine)
    public_url = settings.web.public_url
    return {
        "discord": DiscordPublisher.factory(rest, public_url, archive, parts),
        "discord_webhook": DiscordWebhookPublisher.factory(rest, public_url, archive, parts),
    }
