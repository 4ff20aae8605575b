"""The ``[email]`` section: the newsletter."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from bot.config_outputs import ENV_NAME, Section


class EmailConfig(Section):
    """The newsletter. Its signing secret (for the confirm, preferences and unsubscribe links) comes from the
    environment variable named here; changing it invalidates every link already sent."""

    enabled: bool = False
    token_secret_env: str = Field("RANKBOT_EMAIL_SECRET", pattern=ENV_NAME)
    confirm_hours: float = Field(48.0, gt=0)
    """How long a confirmation link works."""
    check_mx: bool = False
    """Also check that a subscribing address's domain accepts mail (a DNS lookup)."""
    bounce_local: str = Field("bounces", pattern=r"^[A-Za-z0-9._-]{1,40}$")
    """The local part of the VERP envelope sender: bounces come back to ``<bounce_local>+<key>@<domain>``."""
    soft_bounce_limit: int = Field(3, ge=1)
    """Soft bounces (mailbox full, greylisted too long…) before an address is suppressed."""

    def secret(self, environ: Mapping[str, str]) -> str | None:
        return environ.get(self.token_secret_env) or None

    def problems(self, environ: Mapping[str, str]) -> list[str]:
        if not self.enabled:
            return []
        secret = self.secret(environ)
        if secret is None or len(secret) < 32:
            return [
                f"the newsletter signs its links with a secret: set the environment variable {self.token_secret_env} "
                '(email.token_secret_env) to 32 or more random characters, e.g. from `python -c "import secrets; '
                'print(secrets.token_urlsafe(32))"`'
            ]
        return []
