"""The chat platforms inside ``rankbot run``: their publishers for the outbox, and their ``/rankings`` apps — Slack
over the web app's HTTP endpoint or Socket Mode, Discord over its gateway, which only the leader holds (two sessions
of one bot would both receive every interaction and answer twice). Built only for the platforms configured; each
platform's package is imported only then."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine
from starlette.routing import Route

from bot.config import Settings
from bot.web.site import SiteData

log = logging.getLogger(__name__)


def channel_factories(
    settings: Settings, environ: Mapping[str, str], engine: Engine, closing: contextlib.AsyncExitStack
) -> dict[str, Any]:
    """The publishers of the chat channels that are configured (Slack, Discord); their clients are closed by
    ``closing``."""
    factories: dict[str, Any] = {}
    if settings.slack_used(environ):
        from bot.slack.parts import publisher_factory

        factories["slack"] = publisher_factory(settings, environ, engine)
    if settings.discord_used(environ):
        from bot.discord.parts import publisher_factories as discord_factories
        from bot.discord.parts import rest_client

        rest = rest_client(settings, environ, engine)
        closing.push_async_callback(rest.close)
        factories.update(discord_factories(rest, settings, engine))
    return factories


class ChatApps:
    """The ``/rankings`` apps of the configured platforms."""

    def __init__(self, settings: Settings, environ: Mapping[str, str], engine: Engine, data: SiteData) -> None:
        self.settings = settings
        self.environ = environ
        self.slack_socket_mode = settings.slack.socket_mode(environ)
        self.slack = None
        if settings.slack_used(environ):
            from bot.slack.parts import slack_chat

            self.slack = slack_chat(settings, environ, engine, data)
        self.discord = None
        if settings.discord.token(environ):
            from bot.discord.parts import discord_chat

            self.discord = discord_chat(settings, environ, engine, data)
        self._gateway: asyncio.Task[None] | None = None
        self._gateway_off = asyncio.Event()

    def routes(self) -> list[Route]:
        """The web app's chat endpoints (Slack's, unless it runs over Socket Mode)."""
        return self.slack.routes() if self.slack is not None and not self.slack_socket_mode else []

    def tasks(self, stopping: asyncio.Event) -> set[asyncio.Task[None]]:
        """What runs on every instance until ``stopping``: Slack's Socket Mode connection, when used."""
        if self.slack is None or not self.slack_socket_mode:
            return set()
        app_token = self.environ[self.settings.slack.app_token_env]
        return {asyncio.create_task(self.slack.socket_mode(app_token, stopping), name="slack socket mode")}

    async def lead(self, leading: bool) -> None:
        """Connect the Discord gateway on taking the lead, close it on losing it."""
        if self.discord is None:
            return
        running = self._gateway is not None and not self._gateway.done()
        if leading and not running and not self.discord.refused:
            log.info("leading: connecting the Discord gateway (/rankings is answered by this instance)")
            self._gateway_off = asyncio.Event()
            self._gateway = asyncio.create_task(self.discord.connected(self._gateway_off), name="discord gateway")
        elif not leading and running:
            log.info("not leading: closing the Discord gateway (the leader answers /rankings)")
            await self.close()

    async def close(self) -> None:
        if self._gateway is not None:
            self._gateway_off.set()
            await asyncio.gather(self._gateway, return_exceptions=True)
            self._gateway = None

    def health(self) -> dict[str, str]:
        """For ``/healthz``: whether this instance holds the Discord gateway."""
        if self.discord is None:
            return {}
        client = self.discord.client
        return {"discord_gateway": "connected" if client is not None and client.is_ready() else "not connected"}
