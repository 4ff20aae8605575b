"""Slack Web API clients: one per bot token, pointed at ``[slack] api_url`` (a fake on 127.0.0.1 in tests). A
single-workspace install takes its token from the environment; with OAuth, each workspace's token is the one its
install stored (sealed) in the database."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.config_chat import SlackConfig
from bot.publishers.contract import GoneError
from bot.slack.installations import Sealer
from storage.chat import Installs


class SlackClients:
    def __init__(
        self,
        config: SlackConfig,
        environ: Mapping[str, str],
        installs: Installs | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        self.config = config
        self.environ = environ
        self.installs = installs
        self.sealer = sealer
        self._clients: dict[str, AsyncWebClient] = {}

    def for_token(self, token: str) -> AsyncWebClient:
        if token not in self._clients:
            self._clients[token] = AsyncWebClient(token=token, base_url=self.config.api_url, timeout=15)
        return self._clients[token]

    def token(self, target: Mapping[str, Any]) -> str:
        if self.installs is not None and self.sealer is not None:
            team = str(target.get("team") or "")
            sealed = self.installs.find(None, team)
            opened = self.sealer.open(sealed) if sealed is not None else None
            token = str((opened or {}).get("bot_token") or "")
            if not token:
                raise GoneError(f"rankbot is not installed in the Slack workspace {team or '(no team)'}: install it")
            return token
        from_environment = self.config.bot_token(self.environ)
        if from_environment is None:
            raise GoneError(f"no Slack bot token: set {self.config.bot_token_env}")
        return from_environment

    def for_target(self, target: Mapping[str, Any]) -> AsyncWebClient:
        """The client for a destination's workspace (reads the database with OAuth: call it in a thread)."""
        return self.for_token(self.token(target))
