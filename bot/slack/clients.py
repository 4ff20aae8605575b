"""Slack Web API clients: one per bot token, pointed at ``[slack] api_url`` (a fake on 127.0.0.1 in tests). A
single-workspace install takes its token from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import SlackConfig
from bot.publishers.contract import GoneError


class SlackClients:
    def __init__(self, config: SlackConfig, environ: Mapping[str, str]) -> None:
        self.config = config
        self.environ = environ
        self._clients: dict[str, AsyncWebClient] = {}

    def for_token(self, token: str) -> AsyncWebClient:
        if token not in self._clients:
            self._clients[token] = AsyncWebClient(token=token, base_url=self.config.api_url, timeout=15)
        return self._clients[token]

    def for_target(self, target: Mapping[str, Any]) -> AsyncWebClient:
        """The client for a destination's workspace."""
        token = self.config.bot_token(self.environ)
        if token is None:
            raise GoneError(f"no Slack bot token: set {self.config.bot_token_env}")
        return self.for_token(token)
