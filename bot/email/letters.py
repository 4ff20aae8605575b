"""A published digest as one subscriber's email: their signed links, the chart from the archive, the VERP envelope
sender that brings their bounces back named."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from bot.config_email import EmailConfig
from bot.email.tokens import Tokens
from digests.delivery import Message
from digests.render.email import Recipient, Sender, digest_email
from digests.render.html import Site


@dataclass(frozen=True, slots=True)
class Letter:
    message: EmailMessage
    envelope_from: str
    to: str


def sender_of(config: EmailConfig) -> Sender:
    return Sender(config.from_address, config.from_name, config.reply_to or None, config.list_id)


def recipient_for(address: str, key: str, cadence: str, config: EmailConfig, tokens: Tokens, site: Site) -> Recipient:
    return Recipient(
        address,
        key,
        cadence,
        site.absolute(f"/email/unsubscribe/{tokens.make('unsubscribe', key)}"),
        site.absolute(f"/email/preferences/{tokens.make('preferences', key)}"),
        config.verp(key),
    )


def digest_letter(
    digest: Message,
    recipient: Recipient,
    config: EmailConfig,
    site: Site,
    date: datetime,
    chart: tuple[bytes, str] | None,
) -> Letter:
    document = json.loads(digest.full["json"])
    message = digest_email(
        document,
        digest.full["text"],
        sender_of(config),
        recipient,
        site.absolute(site.archive_url(digest.id)),
        date,
        chart,
    )
    return Letter(message, config.verp(recipient.key), recipient.address)
