"""The chat platforms' sections of the configuration (``[slack]``, ``[discord]``): where their APIs are and which
environment variables hold their secrets, and what stops Slack's OAuth install from working. ``bot.config``
assembles them into ``Settings``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from pydantic import Field, field_validator

from bot.config_outputs import ENV_NAME, Section


class SlackConfig(Section):
    """The Slack app: its secrets come from the environment variables named here."""

    bot_token_env: str = Field("SLACK_BOT_TOKEN", pattern=ENV_NAME)
    signing_secret_env: str = Field("SLACK_SIGNING_SECRET", pattern=ENV_NAME)
    app_token_env: str = Field("SLACK_APP_TOKEN", pattern=ENV_NAME)
    """When this variable is set, Socket Mode instead of the HTTP endpoint."""
    api_url: str = "https://slack.com/api/"
    hooks_url: str = "https://hooks.slack.com/"
    """Only ``response_url``s under this prefix are answered (Slack's own)."""
    admins: tuple[str, ...] = ()
    """User ids (U…) allowed to change a channel's subscription, besides workspace admins and owners."""
    client_id_env: str = Field("", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")
    """For installs in many workspaces (OAuth): the variables holding the app's client id and secret."""
    client_secret_env: str = Field("", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")
    token_key_env: str = Field("RANKBOT_SLACK_TOKEN_KEY", pattern=ENV_NAME)
    """With OAuth: the variable holding the Fernet key that seals the workspaces' tokens in the database."""
    authorize_url: str = "https://slack.com/oauth/v2/authorize"

    @field_validator("authorize_url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must start with https:// (or http:// for a local fake)")
        return value

    @field_validator("api_url", "hooks_url")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must start with https:// (or http:// for a local fake)")
        return value if value.endswith("/") else value + "/"

    def bot_token(self, environ: Mapping[str, str]) -> str | None:
        return environ.get(self.bot_token_env) or None

    def socket_mode(self, environ: Mapping[str, str]) -> bool:
        return bool(environ.get(self.app_token_env))

    def oauth(self, environ: Mapping[str, str]) -> bool:
        """Installs in many workspaces through OAuth (a client id is set)."""
        return bool(self.client_id_env and environ.get(self.client_id_env))


class DiscordConfig(Section):
    """The Discord bot: its token comes from the environment variable named here."""

    token_env: str = Field("DISCORD_BOT_TOKEN", pattern=ENV_NAME)
    api_url: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg/"
    """Where the bot's gateway connection goes (Discord's own unless a test or a proxy says)."""
    test_guild: str = Field("", pattern=r"^(\d{15,21})?$")
    """Sync ``/rankings`` to this one server (instant, for trying changes); otherwise globally."""
    cooldown_commands: int = Field(5, ge=1)
    cooldown_seconds: float = Field(10.0, gt=0)
    """One person may give ``cooldown_commands`` commands per ``cooldown_seconds``; more get a "slow down"."""

    @field_validator("api_url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must start with https:// (or http:// for a local fake)")
        return value.rstrip("/")

    @field_validator("gateway_url")
    @classmethod
    def _socket_address(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError(f"{value!r} must start with wss:// (or ws:// for a local fake)")
        return value

    def token(self, environ: Mapping[str, str]) -> str | None:
        return environ.get(self.token_env) or None


def oauth_problems(slack: SlackConfig, environ: Mapping[str, str]) -> list[str]:
    problems = []
    if not (slack.client_secret_env and environ.get(slack.client_secret_env)):
        problems.append(
            f"Slack OAuth needs the app's client secret: set slack.client_secret_env to a variable and set it "
            f"(client id from {slack.client_id_env})"
        )
    key = environ.get(slack.token_key_env)
    if not key:
        problems.append(
            f"Slack OAuth seals the workspaces' tokens with a key: set the environment variable {slack.token_key_env} "
            '(slack.token_key_env) to a Fernet key, made with `python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"`'
        )
    else:
        try:
            valid = len(base64.urlsafe_b64decode(key.encode())) == 32
        except (ValueError, binascii.Error):
            valid = False
        if not valid:
            problems.append(
                f"{slack.token_key_env} (slack.token_key_env) is not a Fernet key (32 url-safe base64 bytes)"
            )
    return problems
