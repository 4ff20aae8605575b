"""Slack assembled from the settings: the clients (with the OAuth installs when configured), the publisher factory
for the outbox, and the ``/rankings`` app for the web app or Socket Mode."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import Engine

from bot.chat.answers import Answers
from bot.chat.channels import ChatChannels
from bot.config import Settings
from bot.config_outputs import SlackOutput
from bot.slack.app import COMMAND, SlackChat
from bot.slack.clients import SlackClients
from bot.slack.installations import DatabaseStateStore, SealedInstallationStore, Sealer
from bot.slack.publisher import SlackPublisher
from bot.web.site import SiteData
from digests.commands import text_usage
from storage.archive import Archive
from storage.chat import ChatRequests, Installs, OAuthStates
from storage.delivery import DeliveryStore
from storage.pacing import Pacer
from storage.repository import Repository


@dataclass
class SlackParts:
    clients: SlackClients
    installations: SealedInstallationStore | None


def slack_parts(settings: Settings, environ: Mapping[str, str], engine: Engine) -> SlackParts:
    slack = settings.slack
    if not slack.oauth(environ):
        return SlackParts(SlackClients(slack, environ), None)
    installs = Installs(engine, "slack")
    sealer = Sealer(environ[slack.token_key_env], slack.token_key_env)
    return SlackParts(SlackClients(slack, environ, installs, sealer), SealedInstallationStore(installs, sealer))


def publisher_factory(settings: Settings, environ: Mapping[str, str], engine: Engine) -> Callable[..., Any]:
    clients = slack_parts(settings, environ, engine).clients
    return SlackPublisher.factory(clients.for_target, settings.web.public_url, Archive(engine), Pacer(engine))


def configured_channels(settings: Settings) -> Callable[[str, str], str | None]:
    """Which ``[[outputs]]`` entry posts to a (team, channel), if any: that channel is not changed from chat."""
    outputs = [output for output in settings.destinations() if isinstance(output, SlackOutput)]

    def find(team: str, channel: str) -> str | None:
        for output in outputs:
            if output.channel == channel and output.team in (None, team):
                return output.name
        return None

    return find


def slack_chat(
    settings: Settings, environ: Mapping[str, str], engine: Engine, data: SiteData, clock: Any = None
) -> SlackChat:
    """The ``/rankings`` app over the database (answers from ``data``'s caches)."""
    parts = slack_parts(settings, environ, engine)
    store = DeliveryStore(engine)
    channels = ChatChannels("slack", store, Repository(engine), configured_channels(settings))
    answers = Answers(data, channels, settings.web.public_url, partial(text_usage, command=COMMAND))
    states = DatabaseStateStore(OAuthStates(engine)) if parts.installations is not None else None
    return SlackChat(settings.slack, environ, answers, ChatRequests(engine), store, parts.installations, states, clock)
