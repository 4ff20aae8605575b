"""OAuth installs for bolt, on our database: an async installation store and state store (slack_sdk ships only a
synchronous SQLAlchemy one). Installs are kept as JSON sealed with Fernet (AES-128-CBC + HMAC-SHA256) under a key
from the environment (``[slack] token_key_env``): the database alone never gives a token away. Bot-only: rankbot
acts as its bot, never as the person who installed it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from datetime import timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from storage.chat import Installs, OAuthStates

log = logging.getLogger(__name__)
STATE_LIFETIME = timedelta(minutes=10)


class Sealer:
    """Encrypts and decrypts with the key from the environment; a wrong key is an error naming the variable."""

    def __init__(self, key: str, variable: str) -> None:
        self.variable = variable
        try:
            self._fernet = Fernet(key.encode())
        except (ValueError, TypeError):
            raise ValueError(
                f"{variable} is not a Fernet key (32 url-safe base64 bytes): make one with `python -c "
                '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`'
            ) from None

    def seal(self, value: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(value, sort_keys=True).encode())

    def open(self, sealed: bytes) -> dict[str, Any] | None:
        try:
            opened: dict[str, Any] = json.loads(self._fernet.decrypt(sealed))
        except InvalidToken:
            log.error("a Slack install cannot be decrypted: %s is not the key it was sealed with", self.variable)
            return None
        return opened


class SealedInstallationStore(AsyncInstallationStore):
    def __init__(self, installs: Installs, sealer: Sealer) -> None:
        self.installs = installs
        self.sealer = sealer

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_save(self, installation: Installation) -> None:
        sealed = self.sealer.seal(dict(installation.__dict__))
        await asyncio.to_thread(self.installs.save, installation.enterprise_id, _team(installation), sealed)

    async def _found(self, enterprise_id: str | None, team_id: str | None) -> Installation | None:
        sealed = await asyncio.to_thread(self.installs.find, enterprise_id, team_id)
        opened = self.sealer.open(sealed) if sealed is not None else None
        return Installation(**opened) if opened is not None else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        return await self._found(enterprise_id, None if is_enterprise_install else team_id)

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        found = await self._found(enterprise_id, None if is_enterprise_install else team_id)
        return found.to_bot() if found is not None and found.bot_token else None

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await asyncio.to_thread(self.installs.delete, enterprise_id, team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        await asyncio.to_thread(self.installs.delete, enterprise_id, team_id)

    async def bot_token(self, team_id: str, enterprise_id: str | None = None) -> str | None:
        """The bot token of the workspace ``team_id`` (``None``: not installed there)."""
        bot = await self.async_find_bot(enterprise_id=enterprise_id, team_id=team_id)
        return bot.bot_token if bot is not None else None


def _team(installation: Installation) -> str | None:
    return None if installation.is_enterprise_install else installation.team_id


class DatabaseStateStore(AsyncOAuthStateStore):
    """OAuth states in the database, so any instance can finish an install another began."""

    def __init__(self, states: OAuthStates) -> None:
        self.states = states

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(24)
        await asyncio.to_thread(self.states.issue, state, STATE_LIFETIME)
        return state

    async def async_consume(self, state: str) -> bool:
        return await asyncio.to_thread(self.states.consume, state)
