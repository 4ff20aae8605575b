"""The ``[[outputs]]`` entries of the configuration: what every entry has (a name and what it subscribes to), what
each kind takes, and the validators the sections share. ``bot.config`` assembles them into ``Settings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator

from digests.delivery import Subscription

if TYPE_CHECKING:
    from bot.config import ServiceConfig

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def valid_cron(value: str) -> str:
    try:
        CronTrigger.from_crontab(value, timezone="UTC")
    except ValueError as error:
        raise ValueError(f"{value!r} is not a crontab expression like '0 9 * * mon' ({error})") from None
    return value


def valid_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone like 'UTC' or 'Europe/Berlin'") from None
    return value


class _Destination(Section):
    """What every ``[[outputs]]`` entry has: a name, and what it subscribes to."""

    needs_public_url: ClassVar[bool] = False
    """Whether this kind's messages carry absolute links (chat image blocks, emails): then ``[web] public_url``
    must be set, and ``rankbot run`` refuses to start without it."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    daily: bool = True
    notable_only: bool = True
    quiet_day: Literal["skip", "line"] = "skip"
    weekly: bool = True
    weekly_cron: str | None = None
    timezone: str | None = None
    notices: bool = False

    @field_validator("weekly_cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return value if value is None else valid_cron(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return value if value is None else valid_timezone(value)

    def subscription(self, service: ServiceConfig) -> Subscription:
        return Subscription(
            daily=self.daily,
            notable_only=self.notable_only,
            quiet_day=self.quiet_day,
            weekly=self.weekly,
            weekly_cron=self.weekly_cron or service.weekly_cron,
            timezone=self.timezone or service.timezone,
            notices=self.notices,
        )

    def send_timeout(self) -> float | None:
        """The longest one send to this output may take (``None``: no network, nothing to wait for)."""
        return None

    def target(self) -> dict[str, Any]:
        """The kind-specific settings stored with the destination (no secrets: only the names of variables)."""
        return self.model_dump(mode="json", exclude=set(_Destination.model_fields) | {"kind"})


class ConsoleOutput(_Destination):
    kind: Literal["console"]
    format: Literal["text", "markdown", "json"] = "text"


class FileOutput(_Destination):
    kind: Literal["file"]
    directory: Path | None = None
    """Default: ``[output].directory`` (``/out`` in the Docker image)."""
    formats: tuple[Literal["text", "markdown", "json"], ...] = ("text", "markdown", "json")


class WebhookOutput(_Destination):
    kind: Literal["webhook"]
    url: str
    secret_env: str | None = Field(None, pattern=ENV_NAME)
    status_url: str | None = None
    timeout_seconds: float = Field(10.0, gt=0)

    @field_validator("url", "status_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must start with http:// or https://")
        return value

    def send_timeout(self) -> float | None:
        return self.timeout_seconds


class SlackOutput(_Destination):
    """A Slack channel the bot posts digests to (``chat.postMessage``, Block Kit, the bump chart)."""

    kind: Literal["slack"]
    channel: str = Field(pattern=r"^[CGD][A-Z0-9]{2,30}$")
    team: str | None = Field(None, pattern=r"^[TE][A-Z0-9]{2,30}$")
    """The workspace, when the app is installed in several (OAuth); a single-workspace bot token needs none."""
    top: int = Field(10, ge=1, le=50)
    """How many rows the posted table shows."""

    def send_timeout(self) -> float | None:
        return SLACK_SEND_TIMEOUT


SLACK_SEND_TIMEOUT = 30.0
"""The longest one Slack delivery may take: a post (two or three for a long digest, a second apart) or an upload."""

DISCORD_SEND_TIMEOUT = 60.0
"""The longest one Discord delivery may take: discord.py retries a 5xx a few times (1, 3, 5 … s apart) itself."""
SNOWFLAKE = r"^\d{15,21}$"
WEBHOOK_URL = r"/webhooks/(\d{15,21})/([A-Za-z0-9_.\-]+)/?$"
"""What a Discord webhook URL ends with: its id and its token."""


class _DiscordDestination(_Destination):
    top: int = Field(10, ge=1, le=50)
    """How many rows the posted table shows."""
    mention_role: str | None = Field(None, pattern=SNOWFLAKE)
    """A role to ping with each digest (opt-in): the only mention any rankbot message allows."""

    def send_timeout(self) -> float | None:
        return DISCORD_SEND_TIMEOUT


class DiscordOutput(_DiscordDestination):
    """A Discord channel the bot posts digests to (an embed with the bump chart attached)."""

    kind: Literal["discord"]
    channel_id: str = Field(pattern=SNOWFLAKE)


class DiscordWebhookOutput(_DiscordDestination):
    """A Discord webhook: the same embeds, without a bot. Its URL holds its token, so it comes from the environment
    variable named here, never from the config file."""

    kind: Literal["discord_webhook"]
    url_env: str = Field(pattern=ENV_NAME)


Output = Annotated[
    ConsoleOutput | FileOutput | WebhookOutput | SlackOutput | DiscordOutput | DiscordWebhookOutput,
    Field(discriminator="kind"),
]
