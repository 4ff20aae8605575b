"""Configuration: ``config.toml`` (every key documented in ``config.example.toml``), overridden by environment
variables ``RANKBOT_<SECTION>_<KEY>``, with embedded defaults when neither is given.

Invalid config fails at start with one line naming the key, where it came from and what is wrong. Secrets are never
config values: the config names the environment variable that holds them (``api_key_env``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import time
from ipaddress import ip_network
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from bot.config_chat import DiscordConfig, SlackConfig, oauth_problems
from bot.config_email import EmailConfig
from bot.config_outputs import (
    ENV_NAME,
    WEBHOOK_URL,
    ConsoleOutput,
    DiscordWebhookOutput,
    FileOutput,
    Output,
    Section,
    WebhookOutput,
    valid_cron,
    valid_timezone,
)
from digests.delivery import LEASE_MARGIN_SECONDS
from digests.model import DigestSettings

ENV_PREFIX = "RANKBOT_"
OUTPUT_KINDS = ("console", "file", "webhook", "slack", "discord", "discord_webhook")


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and the fix."""


class OpenRouterConfig(Section):
    base_url: str = "https://openrouter.ai"
    source: Literal["auto", "api", "exports"] = "auto"
    api_key_env: str = Field("OPENROUTER_API_KEY", pattern=ENV_NAME)
    timeout_seconds: float = Field(30.0, gt=0)
    connect_timeout_seconds: float = Field(10.0, gt=0)
    retry_attempts: int = Field(5, ge=1, le=20)
    retry_base_seconds: float = Field(1.0, ge=0)
    retry_cap_seconds: float = Field(60.0, ge=0)
    requests_per_minute: int = Field(30, ge=1)
    requests_per_day: int = Field(500, ge=1)
    min_rows: int = Field(50, ge=1, le=50)
    refetch_days: int = Field(3, ge=1, le=30)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class StorageConfig(Section):
    database_url: str = "sqlite:///data/rankbot.db"
    password_env: str = Field("", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")
    """The environment variable holding the PostgreSQL password, for a ``database_url`` without one: any
    characters work (``@ : /`` would break a URL written by hand). Empty: none."""

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql", "postgres:")):
            raise ValueError("must be a sqlite:/// path or a postgresql:// URL")
        return value


class DigestConfig(Section):
    top_n: int = Field(10, ge=1, le=50)
    jump_threshold: int = Field(3, ge=1, le=49)
    tie_band: float = Field(0.02, ge=0, lt=1)
    list_size: int = Field(50, ge=1, le=50)
    caveats_url: str = "https://openrouter.ai/rankings"

    def settings(self) -> DigestSettings:
        return DigestSettings(self.top_n, self.jump_threshold, self.tie_band, self.list_size, self.caveats_url)


class OutputConfig(Section):
    directory: Path = Path("out")
    console: bool = True
    formats: tuple[Literal["text", "markdown", "json"], ...] = ("text", "markdown", "json")
    charts: bool = True


class ServiceConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    poll_minutes: float = Field(15, gt=0)
    poll_jitter_seconds: float = Field(60, ge=0)
    weekly_cron: str = "0 9 * * mon"
    timezone: str = "UTC"
    day_expected_at: time = time(1, 0)
    late_grace_hours: float = Field(6, ge=0)
    worker_concurrency: int = Field(8, ge=1, le=256)
    worker_batch: int = Field(50, ge=1, le=1000)
    delivery_attempts: int = Field(8, ge=1, le=50)
    delivery_base_seconds: float = Field(5.0, ge=0)
    delivery_cap_seconds: float = Field(3600.0, ge=0)
    claim_lease_seconds: float = Field(300.0, gt=0)

    @field_validator("weekly_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return valid_cron(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return valid_timezone(value)


class WebConfig(Section):
    enabled: bool = True
    public_url: str = ""
    """The absolute base of every link rankbot gives out (feeds, chat image blocks, emails), e.g.
    ``https://rankings.example.com``. Empty: links follow the host each request came to."""
    title: str = Field("rankbot — OpenRouter model rankings", min_length=1, max_length=120)
    description: str = Field(
        "OpenRouter's model-usage rankings, day by day: every figure with its source day, as_of and attribution.",
        max_length=300,
    )
    trusted_proxies: tuple[str, ...] = ()
    """Addresses (or networks) of reverse proxies whose ``X-Forwarded-Proto``/``X-Forwarded-Host`` are honoured."""

    @field_validator("public_url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"{value!r} must be an absolute http(s) URL without query, like https://example.com")
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network like 10.0.0.1 or 10.0.0.0/8") from None
        return value


class Settings(Section):
    openrouter: OpenRouterConfig = OpenRouterConfig()
    storage: StorageConfig = StorageConfig()
    digest: DigestConfig = DigestConfig()
    output: OutputConfig = OutputConfig()
    service: ServiceConfig = ServiceConfig()
    web: WebConfig = WebConfig()
    slack: SlackConfig = SlackConfig()
    discord: DiscordConfig = DiscordConfig()
    email: EmailConfig = EmailConfig()
    outputs: tuple[Output, ...] = ()

    @field_validator("outputs")
    @classmethod
    def _unique_names(cls, outputs: tuple[Output, ...]) -> tuple[Output, ...]:
        names = [output.name for output in outputs]
        duplicate = next((name for name in names if names.count(name) > 1), None)
        if duplicate:
            raise ValueError(f"two [[outputs]] are named {duplicate!r}: names must be unique")
        return outputs

    def destinations(self) -> tuple[Output, ...]:
        """The configured ``[[outputs]]`` (a file output without a ``directory`` writes to ``[output].directory``);
        without any, the embedded defaults: the console and ``[output].directory``."""
        if self.outputs:
            return tuple(
                output.model_copy(update={"directory": self.output.directory})
                if isinstance(output, FileOutput) and output.directory is None
                else output
                for output in self.outputs
            )
        defaults: list[Output] = [
            FileOutput(kind="file", name="files", directory=self.output.directory, formats=self.output.formats)
        ]
        if self.output.console:
            defaults.insert(0, ConsoleOutput(kind="console", name="console"))
        return tuple(defaults)

    def lease_problem(self) -> tuple[str, str] | None:
        """(key, problem) when a worker's claim could run out during a send to some output; ``None`` if not."""
        lease = self.service.claim_lease_seconds
        for index, output in enumerate(self.outputs):
            timeout = output.send_timeout()
            if timeout is not None and lease < timeout + LEASE_MARGIN_SECONDS:
                return (
                    "service.claim_lease_seconds",
                    f"{lease:g} s is shorter than outputs[{index}].timeout_seconds ({timeout:g} s) plus a "
                    f"{LEASE_MARGIN_SECONDS:g} s margin, so a claim could run out while its send is still going: "
                    f"raise service.claim_lease_seconds to at least {timeout + LEASE_MARGIN_SECONDS:g} or lower "
                    f"outputs[{index}].timeout_seconds",
                )
        return None

    def missing_secrets(self, environ: Mapping[str, str]) -> list[str]:
        """One line per ``[[outputs]]`` secret variable that is named but not set: ``run`` refuses to start."""
        return [
            f"outputs '{output.name}' needs the environment variable {output.secret_env} (its secret_env), which "
            "is unset"
            for output in self.destinations()
            if isinstance(output, WebhookOutput) and output.secret_env and not environ.get(output.secret_env)
        ]

    def start_problems(self, environ: Mapping[str, str]) -> list[str]:
        """What stops ``rankbot run`` (and ``check-config``) before anything starts: the source, the secrets, and
        a ``[web] public_url`` that outputs with absolute links need."""
        try:
            self.source_kind(environ)
        except ConfigError as error:
            return [str(error)]
        linked = [output.name for output in self.outputs if output.needs_public_url]
        problems = self.missing_secrets(environ) + self.slack_problems(environ) + self.discord_problems(environ)
        problems += self.email.problems(environ)
        if self.email.enabled and not (self.web.enabled and self.web.public_url):
            problems.append(
                "the newsletter's pages live on the web app and its emails link to them: set web.enabled = true "
                "and web.public_url (or RANKBOT_WEB_PUBLIC_URL) to the site's absolute address"
            )
        if linked and not self.web.public_url:
            problems.append(
                f"outputs {', '.join(repr(name) for name in linked)} link to the archive and its charts: set "
                "web.public_url (or RANKBOT_WEB_PUBLIC_URL) to the site's absolute address, e.g. https://rankings.example.com"
            )
        return problems

    def slack_used(self, environ: Mapping[str, str]) -> bool:
        """Slack is on when a bot token or an OAuth client id is set, or an output posts to Slack."""
        slack = self.slack
        return bool(
            slack.bot_token(environ)
            or (slack.client_id_env and environ.get(slack.client_id_env))
            or any(output.kind == "slack" for output in self.outputs)
        )

    def slack_problems(self, environ: Mapping[str, str]) -> list[str]:
        """What stops Slack from working: no token for the outputs, no signing secret for the HTTP endpoint."""
        slack = self.slack
        if not self.slack_used(environ):
            return []
        problems = []
        oauth = slack.oauth(environ)
        if oauth:
            problems += oauth_problems(slack, environ)
        elif not slack.bot_token(environ):
            problems.append(
                f"Slack needs a bot token: set the environment variable {slack.bot_token_env} (slack.bot_token_env) "
                "to the app's xoxb- token, or configure OAuth (slack.client_id_env, slack.client_secret_env)"
            )
        if not slack.socket_mode(environ) and not environ.get(slack.signing_secret_env):
            problems.append(
                f"the Slack endpoint /slack/events needs the signing secret: set the environment variable "
                f"{slack.signing_secret_env} (slack.signing_secret_env), or set {slack.app_token_env} for Socket Mode"
            )
        return problems

    def discord_used(self, environ: Mapping[str, str]) -> bool:
        """Discord is on when its bot token is set or an output posts to Discord."""
        return bool(self.discord.token(environ) or any(o.kind in ("discord", "discord_webhook") for o in self.outputs))

    def discord_problems(self, environ: Mapping[str, str]) -> list[str]:
        """What stops Discord from working: no bot token for a bot output, no URL for a webhook output."""
        problems = []
        posted = [o.name for o in self.outputs if o.kind == "discord"]
        if posted and not self.discord.token(environ):
            problems.append(
                f"outputs {', '.join(repr(n) for n in posted)} post as the Discord bot: set the environment variable "
                f"{self.discord.token_env} (discord.token_env) to the bot's token"
            )
        for output in self.outputs:
            if not isinstance(output, DiscordWebhookOutput):
                continue
            url = environ.get(output.url_env)
            if not url:
                problems.append(
                    f"outputs '{output.name}' needs the environment variable {output.url_env} (its url_env) set to "
                    "the webhook's URL (Server Settings → Integrations → Webhooks → Copy Webhook URL)"
                )
            elif not re.search(WEBHOOK_URL, url.split("?")[0]):
                problems.append(
                    f"outputs '{output.name}': {output.url_env} (its url_env) is not a Discord webhook URL "
                    "(https://discord.com/api/webhooks/<id>/<token>)"
                )
        return problems

    def api_key(self, environ: Mapping[str, str]) -> str | None:
        """The Data API key from the environment variable the config names; ``None`` when unset or empty."""
        return environ.get(self.openrouter.api_key_env) or None

    def source_kind(self, environ: Mapping[str, str]) -> Literal["api", "exports"]:
        """``api`` when a key is configured (or ``source = "api"``), else the keyless ``exports``."""
        wanted = self.openrouter.source
        if wanted == "api" and self.api_key(environ) is None:
            raise ConfigError(
                f"openrouter.source is 'api' but the environment variable {self.openrouter.api_key_env} is not set: "
                "set it to your OpenRouter key, or use source = 'auto'"
            )
        if wanted == "auto":
            return "api" if self.api_key(environ) else "exports"
        return wanted
