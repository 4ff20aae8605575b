"""The ``[email]`` section: the newsletter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from bot.config_outputs import ENV_NAME, Section

LOOPBACK = ("127.0.0.1", "::1", "localhost")


class EmailConfig(Section):
    """The newsletter. Its signing secret (for the confirm, preferences and unsubscribe links) comes from the
    environment variable named here; changing it invalidates every link already sent."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    enabled: bool = False
    token_secret_env: str = Field("RANKBOT_NEWSLETTER_SECRET", pattern=ENV_NAME)
    confirm_hours: float = Field(48.0, gt=0)
    """How long a confirmation link works."""
    check_mx: bool = False
    """Also check that a subscribing address's domain accepts mail (a DNS lookup)."""
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    """``starttls`` (port 587) or ``tls`` (port 465): certificate and host name verified; ``none``: only on
    127.0.0.1 (a local relay)."""
    username_env: str = Field("", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")
    password_env: str = Field("", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")
    from_address: str = Field("rankbot@localhost", alias="from")
    from_name: str = "rankbot"
    reply_to: str = ""
    list_id: str = "rankbot.localhost"
    concurrency: int = Field(4, ge=1, le=64)
    """SMTP connections kept open to the server."""
    rate_per_second: float = Field(50.0, gt=0)
    timeout_seconds: float = Field(30.0, gt=0)
    bounce_address: str = "bounces@localhost"
    """The VERP envelope sender's base: bounces come back to ``bounces+<subscriber key>@domain``."""
    bounce_webhook_secret_env: str = Field("", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")
    """When set, ``POST /email/bounce`` takes bounces from a provider that sends ``Authorization: Bearer
    <that variable's value>``; empty: the endpoint is off."""
    soft_bounce_limit: int = Field(3, ge=1)
    """Soft bounces (mailbox full, greylisted too long…) before an address is suppressed."""
    attempts: int = Field(8, ge=1, le=30)
    """Tries of a deferred email before it is given up."""
    deferred_run_limit: int = Field(20, ge=1)
    """Deferrals in a row (any recipients) that pause the send, as a refused login does."""
    pause_seconds: float = Field(60.0, gt=0)
    claim_lease_seconds: float = Field(120.0, gt=0)
    subscribe_per_ip_per_hour: int = Field(10, ge=1)
    confirmations_per_address_per_day: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _plain_only_on_loopback(self) -> EmailConfig:
        if self.security == "none" and self.smtp_host not in LOOPBACK:
            raise ValueError(
                f'security = "none" sends mail and passwords in clear: it is allowed only to 127.0.0.1, not '
                f'{self.smtp_host!r} (use "starttls" or "tls")'
            )
        if self.claim_lease_seconds < self.timeout_seconds * 3:
            raise ValueError(
                f"claim_lease_seconds ({self.claim_lease_seconds:g}) must be at least 3 × timeout_seconds "
                f"({self.timeout_seconds:g}): an email still being sent would be claimed again"
            )
        if "@" not in self.bounce_address:
            raise ValueError(f"bounce_address {self.bounce_address!r} is not an address (bounces@example.com)")
        return self

    @property
    def bounce_local(self) -> str:
        return self.bounce_address.partition("@")[0]

    def verp(self, key: str) -> str:
        """The envelope sender of one subscriber's emails: their bounces come back naming them."""
        local, _, domain = self.bounce_address.partition("@")
        return f"{local}+{key}@{domain}"

    def credentials(self, environ: Mapping[str, str]) -> tuple[str, str] | None:
        if not self.username_env:
            return None
        return environ.get(self.username_env, ""), environ.get(self.password_env, "") if self.password_env else ""

    def secret(self, environ: Mapping[str, str]) -> str | None:
        return environ.get(self.token_secret_env) or None

    def problems(self, environ: Mapping[str, str]) -> list[str]:
        if not self.enabled:
            return []
        problems = [
            f"the SMTP login needs the environment variable {name} (email.{key}) set"
            for key, name in (("username_env", self.username_env), ("password_env", self.password_env))
            if name and not environ.get(name)
        ]
        hook = self.bounce_webhook_secret_env
        if hook and len(environ.get(hook, "")) < 32:
            problems.append(f"the bounce webhook checks a secret: set {hook} (email.bounce_webhook_secret_env) to 32 "
                            "or more random characters, or leave email.bounce_webhook_secret_env empty")  # fmt: skip
        secret = self.secret(environ)
        if secret is None or len(secret) < 32:
            problems += [
                f"the newsletter signs its links with a secret: set the environment variable {self.token_secret_env} "
                '(email.token_secret_env) to 32 or more random characters, e.g. from `python -c "import secrets; '
                'print(secrets.token_urlsafe(32))"`'
            ]
        return problems
