"""Emails: a digest for one subscriber, and the confirmation an address gets before it receives anything.

A digest email is ``multipart/alternative``: the published text first (``text/plain``, no markup), then the HTML
(``templates/email.html``: a 600 px table layout, CSS inlined by css-inline, a dark-mode media query kept) in a
``multipart/related`` with the bump chart inline by Content-ID and described by its alt text. It carries the same
honest labels as every digest (source days, ``as_of``, caveats, attribution), and the list headers mail clients
show as an unsubscribe button: ``List-Id``, ``List-Unsubscribe`` (https and mailto) and, per RFC 8058,
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``. Its ``Message-ID`` is derived from (digest, subscriber), so
a resend after a crash is recognisably the same message.

Every header value is checked: a ``\\r`` or ``\\n`` (a header injection) is refused with ``HeaderError``. Names from
the source pass through ``display_text`` and autoescaping, so they are text in the HTML.

Pure: values in, an ``EmailMessage`` out (the date is given, never read from a clock).
"""

from __future__ import annotations

import email.policy
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from functools import cache
from typing import Any

import css_inline

from digests.render.html import _environment, _names
from digests.safety import display_text

SMTP_LINE = 998
"""The longest line SMTP allows (RFC 5321), without its CRLF."""

EMAIL_ROWS = 10
"""Rows shown in the email (the archive page has them all)."""
CHART_CID_NAME = "bump"


class HeaderError(ValueError):
    """A header value that would break the message's headers (a CR or LF in it)."""


@dataclass(frozen=True, slots=True)
class Sender:
    """Who the list's emails come from."""

    address: str
    name: str = "rankbot"
    reply_to: str | None = None
    list_id: str = "rankbot.localhost"
    """The list's identifier (``List-Id: <rankbot.example.com>``): a domain the operator controls."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """One subscriber, as a digest email addresses them: the links carry their signed tokens."""

    address: str
    key: str
    """A stable, opaque key of the subscriber (never shown): what makes the ``Message-ID`` theirs."""
    cadence: str
    unsubscribe_url: str
    preferences_url: str
    unsubscribe_mailto: str
    """``mailto:`` address whose message unsubscribes (the list's ``List-Unsubscribe`` fallback)."""


def header_value(value: str, name: str = "header") -> str:
    """``value`` when it is safe as a header value; ``HeaderError`` for a CR or LF in it."""
    if "\r" in value or "\n" in value:
        raise HeaderError(f"{name} holds a line break (a header injection): refused")
    return value


def message_id(digest_id: str, key: str, domain: str) -> str:
    """The ``Message-ID`` of one digest to one subscriber: the same on every try."""
    digest = hashlib.sha256(f"{digest_id}\x00{key}".encode()).hexdigest()[:32]
    return f"<{digest}@{header_value(domain, 'Message-ID domain')}>"


def _digest_id(document: Mapping[str, Any]) -> str:
    return str(document.get("id") or subject_for(document))


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def subject_for(document: Mapping[str, Any]) -> str:
    """The subject names the source days (``OpenRouter rankings — 2026-10-07 (UTC)``)."""
    label = "the week" if document.get("kind") == "week" else "the day"
    days = document["period"]["source_days"]
    span = days[0] if len(days) == 1 else f"{days[0]} → {days[-1]}"
    revised = " (revised)" if document.get("revision_note") else ""
    return f"OpenRouter rankings, {label}: {span} (UTC){revised}"


@cache
def _inliner() -> css_inline.CSSInliner:
    return css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False)


def email_html(
    document: Mapping[str, Any], recipient: Recipient, archive_url: str, chart_cid: str | None, chart_alt: str
) -> str:
    """The HTML part, CSS inlined."""
    html = (
        _environment()
        .get_template("email.html")
        .render(
            document=document,
            subject=subject_for(document),
            names=_names(document),
            rows=list(document["rows"])[:EMAIL_ROWS],
            chart_cid=chart_cid,
            chart_alt=chart_alt,
            archive_url=archive_url,
            recipient=recipient.address,
            cadence=recipient.cadence,
            preferences_url=recipient.preferences_url,
            unsubscribe_url=recipient.unsubscribe_url,
        )
    )
    return _short_lines(str(_inliner().inline(html)))


def _short_lines(html: str, longest: int = 900) -> str:
    """``html`` with lines longer than ``longest`` broken between two tags (where a line break is only
    whitespace), so the part can be sent as it is (8bit) within SMTP's line limit."""
    lines = []
    for line in html.split("\n"):
        while len(line) > longest:
            cut = line.rfind("><", 0, longest)
            if cut <= 0:
                break
            lines.append(line[: cut + 1])
            line = line[cut + 1 :]
        lines.append(line)
    return "\n".join(lines)


def email_text(text: str, recipient: Recipient, archive_url: str) -> str:
    """The text part: the digest as published in text, then where to read it and how to stop."""
    return (
        f"{text.rstrip()}\n\nRead it on the web: {archive_url}\n\n"
        f"You get this because {recipient.address} subscribed. Preferences: {recipient.preferences_url}\n"
        f"Unsubscribe: {recipient.unsubscribe_url}\n"
    )


def _addressed(message: EmailMessage, sender: Sender, to: str, subject: str, date: datetime) -> None:
    message["From"] = Address(header_value(sender.name, "From name"), addr_spec=header_value(sender.address, "From"))
    message["To"] = header_value(to, "To")
    message["Subject"] = header_value(subject, "Subject")
    message["Date"] = format_datetime(date)
    if sender.reply_to:
        message["Reply-To"] = header_value(sender.reply_to, "Reply-To")


def _list_headers(message: EmailMessage, sender: Sender, recipient: Recipient) -> None:
    message["List-Id"] = f"{display_text(sender.name, 60)} <{header_value(sender.list_id, 'List-Id')}>"
    unsubscribe = header_value(recipient.unsubscribe_url, "List-Unsubscribe")
    mailto = header_value(recipient.unsubscribe_mailto, "List-Unsubscribe")
    message["List-Unsubscribe"] = f"<{unsubscribe}>, <mailto:{mailto}?subject=unsubscribe>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"


def digest_email(
    document: Mapping[str, Any],
    text: str,
    sender: Sender,
    recipient: Recipient,
    archive_url: str,
    date: datetime,
    chart: tuple[bytes, str] | None = None,
    transfer: str | None = None,
) -> EmailMessage:
    """One digest to one subscriber (``document``: the digest's JSON document; ``text``: its published text;
    ``chart``: the bump chart's PNG and alt text; ``transfer``: the text parts' Content-Transfer-Encoding, the
    email package's choice by default)."""
    message = EmailMessage()
    _addressed(message, sender, recipient.address, subject_for(document), date)
    message["Message-ID"] = message_id(_digest_id(document), recipient.key, _domain(sender.address))
    _list_headers(message, sender, recipient)
    message.set_content(email_text(text, recipient, archive_url), cte=transfer)
    cid = f"{CHART_CID_NAME}.{hashlib.sha256(_digest_id(document).encode()).hexdigest()[:12]}@rankbot"
    html = email_html(document, recipient, archive_url, cid if chart else None, chart[1] if chart else "")
    message.add_alternative(html, subtype="html", cte=transfer)
    if chart is not None:
        html_part = message.get_payload()[1]  # type: ignore[index]
        assert isinstance(html_part, EmailMessage)
        html_part.add_related(chart[0], "image", "png", cid=f"<{cid}>", filename="bump.png")
    return message


_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
"""An address that reads the same in a header, the text and the HTML: ASCII, nothing to quote or escape."""
_PLAIN_LINK = re.compile(r"[A-Za-z0-9!#$%*+/=?^_`{|}~.:;,@()\[\]-]+")
_MARKS = Recipient(
    address="rankbot-recipient-mark@mark.invalid",
    key="rankbot-key-mark",
    cadence="",
    unsubscribe_url="https://mark.invalid/rankbot-unsubscribe-mark",
    preferences_url="https://mark.invalid/rankbot-preferences-mark",
    unsubscribe_mailto="rankbot-mailto-mark@mark.invalid",
)


@dataclass(frozen=True, slots=True)
class LetterTemplate:
    """One digest's email rendered once, as bytes with marks where each subscriber's address, links and
    ``Message-ID`` go: ``letter`` fills them in, byte for byte what ``digest_email`` would have produced (with
    8bit text parts). Rendering the HTML per subscriber (Jinja2 + css-inline) is what would limit a fan-out."""

    data: bytes
    digest_id: str
    domain: str
    cadence: str

    def fits(self, recipient: Recipient) -> bool:
        """Whether ``letter`` can address ``recipient`` (else render with ``digest_email``)."""
        links = (recipient.unsubscribe_url, recipient.preferences_url, recipient.unsubscribe_mailto)
        return (
            recipient.cadence == self.cadence
            and _PLAIN_ADDRESS.fullmatch(recipient.address) is not None
            and all(_PLAIN_LINK.fullmatch(link) for link in links)
        )

    def letter(self, recipient: Recipient) -> bytes:
        """The message to ``recipient``, CRLF line ends, ready for ``DATA``."""
        if not self.fits(recipient):
            raise ValueError("this address needs its own rendering (digest_email)")
        values = {
            _MARKS.unsubscribe_url: recipient.unsubscribe_url,
            _MARKS.preferences_url: recipient.preferences_url,
            _MARKS.unsubscribe_mailto: recipient.unsubscribe_mailto,
            _MARKS.address: recipient.address,
        }
        mark_id = message_id(self.digest_id, _MARKS.key, self.domain)
        data = self.data.replace(mark_id.encode(), message_id(self.digest_id, recipient.key, self.domain).encode())
        for mark, value in values.items():
            data = data.replace(mark.encode(), value.encode())
        return data


def letter_template(
    document: Mapping[str, Any],
    text: str,
    sender: Sender,
    archive_url: str,
    date: datetime,
    cadence: str,
    chart: tuple[bytes, str] | None = None,
) -> LetterTemplate:
    """``document``'s email for every subscriber with ``cadence``, rendered once."""
    marks = Recipient(
        _MARKS.address,
        _MARKS.key,
        cadence,
        _MARKS.unsubscribe_url,
        _MARKS.preferences_url,
        _MARKS.unsubscribe_mailto,
    )
    message = digest_email(document, text, sender, marks, archive_url, date, chart, transfer="8bit")
    data = message.as_bytes(policy=email.policy.SMTP.clone(max_line_length=SMTP_LINE))
    return LetterTemplate(data, _digest_id(document), _domain(sender.address), cadence)


def confirmation_email(
    sender: Sender, address: str, confirm_url: str, cadence: str, date: datetime, key: str
) -> EmailMessage:
    """The double opt-in: one link that confirms in one click; nothing else is sent until it is followed."""
    message = EmailMessage()
    _addressed(message, sender, address, "Confirm your rankbot subscription", date)
    message["Message-ID"] = message_id(f"confirm:{confirm_url}", key, _domain(sender.address))
    message["Auto-Submitted"] = "auto-generated"
    what = "the weekly digest" if cadence == "weekly" else "the daily alerts"
    link = header_value(confirm_url, "confirm link")
    message.set_content(
        f"Someone (hopefully you) asked for {what} of OpenRouter's model rankings at {address}.\n\n"
        f"Confirm with this link (it works once, for 48 hours):\n{link}\n\n"
        "If it was not you, ignore this email: nothing more will be sent.\n"
    )
    return message


def welcome_email(sender: Sender, recipient: Recipient, site_url: str, date: datetime) -> EmailMessage:
    """Sent once an address confirms: what it will get and when, and how to change or stop it."""
    message = EmailMessage()
    _addressed(message, sender, recipient.address, "You are subscribed to rankbot", date)
    message["Message-ID"] = message_id(f"welcome:{recipient.cadence}", recipient.key, _domain(sender.address))
    message["Auto-Submitted"] = "auto-generated"
    _list_headers(message, sender, recipient)
    what = (
        "the weekly digest of OpenRouter's model rankings, the morning after each week's last complete day"
        if recipient.cadence == "weekly"
        else "the daily alerts of OpenRouter's model rankings, on days something notable moved"
    )
    message.set_content(
        f"{recipient.address} is subscribed: you will get {what}.\n\n"
        f"Past issues: {site_url}\n"
        f"Preferences (weekly or daily): {header_value(recipient.preferences_url, 'preferences link')}\n"
        f"Unsubscribe: {recipient.unsubscribe_url}\n\n"
        "Data: OpenRouter (openrouter.ai/rankings); every figure names its source days.\n"
    )
    return message
