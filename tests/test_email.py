"""The email renderer (pure): every digest email's headers once each, its MIME tree, the inline chart by
Content-ID, hostile names escaped in the HTML and a text part without markup, header injection refused, the
confirmation email."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any

import pytest

from digests.digest import build_digest
from digests.model import DigestSettings, ModelInfo
from digests.render.document import digest_document
from digests.render.email import (
    HeaderError,
    Recipient,
    Sender,
    confirmation_email,
    digest_email,
    letter_template,
    message_id,
)
from digests.render.text import render_text
from tests.test_slack import bump_chart
from tests.test_text import CATALOGUE
from tests.test_text import history as text_history

SENDER = Sender("digest@rankings.example.com", "rankbot", "team@rankings.example.com", "rankings.example.com")
RECIPIENT = Recipient(
    "Ada@Example.org",
    "subscriber-key-1",
    "weekly",
    "https://rankings.example.com/email/unsubscribe/TOKEN",
    "https://rankings.example.com/email/preferences/TOKEN",
    "unsubscribe+TOKEN@rankings.example.com",
)
WHEN = datetime(2026, 10, 8, 9, 0, tzinfo=UTC)
ARCHIVE = "https://rankings.example.com/archive/week:2026-10-01_2026-10-07"
HOSTILE = ("<script>alert(1)</script>", '" onmouseover="x', "</td></tr></table>")
REQUIRED = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Reply-To",
    "MIME-Version",
)


def rendered(kind: str = "week", catalogue: dict[str, ModelInfo] | None = None, chart: bool = True) -> EmailMessage:
    digest = build_digest(kind, text_history(), catalogue or CATALOGUE, DigestSettings())
    png = bump_chart().png if chart else None
    return digest_email(
        digest_document(digest),
        render_text(digest),
        SENDER,
        RECIPIENT,
        ARCHIVE,
        WHEN,
        (png, "Bump chart: the top 10 over the week") if png else None,
    )


class Tags(HTMLParser):
    """What a browser would make of the HTML: the elements opened and closed, every attribute name, the text."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []
        self.closed: list[str] = []
        self.attributes: set[str] = set()
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.opened.append(tag)
        self.attributes.update(name for name, _ in attrs)

    def handle_endtag(self, tag: str) -> None:
        self.closed.append(tag)

    def handle_data(self, data: str) -> None:
        self.text += data


def parsed(message: EmailMessage) -> Any:
    """The message as a receiving client reads it back from its bytes."""
    return parsed_bytes(message.as_bytes())


def parsed_bytes(data: bytes) -> Any:
    return email.message_from_bytes(data, policy=email.policy.default)


@pytest.mark.parametrize("kind", ["day", "week"])
def test_every_required_header_is_there_exactly_once(kind: str) -> None:
    message = parsed(rendered(kind))
    for name in REQUIRED:
        assert len(message.get_all(name) or []) == 1, name
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"] == (
        f"<{RECIPIENT.unsubscribe_url}>, <mailto:{RECIPIENT.unsubscribe_mailto}?subject=unsubscribe>"
    )
    assert message["List-Id"] == "rankbot <rankings.example.com>"
    assert "(UTC)" in message["Subject"] and re.search(r"\d{4}-\d{2}-\d{2}", message["Subject"])
    assert message["Auto-Submitted"] is None  # a digest is not an automatic reply


def test_the_mime_tree_is_text_first_then_html_with_the_chart_inline() -> None:
    message = parsed(rendered())
    assert message.get_content_type() == "multipart/alternative"
    text, related = message.get_payload()
    assert text.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html, image = related.get_payload()
    assert html.get_content_type() == "text/html" and image.get_content_type() == "image/png"
    cid = image["Content-ID"].strip("<>")
    body = html.get_content()
    assert f'src="cid:{cid}"' in body
    assert 'alt="Bump chart: the top 10 over the week"' in body
    assert image.get_payload(decode=True) == bump_chart().png


def test_without_a_chart_the_html_is_not_related() -> None:
    message = parsed(rendered(chart=False))
    assert [part.get_content_type() for part in message.get_payload()] == ["text/plain", "text/html"]
    assert "cid:" not in message.get_payload()[1].get_content()


def test_the_honest_labels_are_in_both_parts_and_the_text_has_no_markup() -> None:
    message = parsed(rendered())
    text = message.get_payload()[0].get_content()
    html = message.get_payload()[1].get_payload()[0].get_content()
    for part in (text, html):
        assert "data as of" in part and "CC BY 4.0" in part and "OpenRouter" in part
        assert "2026-" in part
    assert "<" not in text.replace("<=", "") and "**" not in text and "</" not in text
    assert ARCHIVE in text and RECIPIENT.unsubscribe_url in text and RECIPIENT.preferences_url in text
    assert f'href="{RECIPIENT.unsubscribe_url}"' in html and f'href="{ARCHIVE}"' in html


def test_css_is_inlined_and_the_layout_is_600_px() -> None:
    html = parsed(rendered()).get_payload()[1].get_payload()[0].get_content()
    assert 'width="600"' in html and re.search(r'<h1 style="[^"]*font-size: 20px', html)
    assert "prefers-color-scheme: dark" in html  # kept for the clients that honour it


@pytest.mark.parametrize("hostile", HOSTILE)
def test_names_from_the_source_are_text_in_the_html(hostile: str) -> None:
    slug = next(iter(CATALOGUE))
    catalogue = {**CATALOGUE, slug: ModelInfo(slug, hostile, hostile)}
    message = parsed(rendered("day", catalogue))
    html = message.get_payload()[1].get_payload()[0].get_content()
    tags = Tags()
    tags.feed(html)
    assert "script" not in tags.opened and not any(name.startswith("on") for name in tags.attributes)
    assert tags.opened.count("table") == tags.closed.count("table") == 3  # outer, inner, the rows
    assert hostile.replace('"', "") in tags.text.replace('"', "")  # shown, as text
    text = message.get_payload()[0].get_content()
    assert "&lt;" not in text and "&quot;" not in text  # the text part is plain, not escaped HTML


def test_the_message_id_is_the_same_for_a_digest_and_subscriber_and_differs_otherwise() -> None:
    first, again = rendered()["Message-ID"], rendered()["Message-ID"]
    assert first == again and first.endswith("@rankings.example.com>")
    assert message_id("week:x", "subscriber-key-2", "rankings.example.com") != message_id(
        "week:x", "subscriber-key-1", "rankings.example.com"
    )


@pytest.mark.parametrize("field", ["address", "unsubscribe_url", "unsubscribe_mailto", "preferences_url"])
def test_a_line_break_in_a_header_value_is_refused(field: str) -> None:
    from dataclasses import replace

    bad = replace(RECIPIENT, **{field: "x@example.org\r\nBcc: victim@example.org"})
    digest = build_digest("day", text_history(), CATALOGUE, DigestSettings())
    if field == "preferences_url":  # not a header: a body link, escaped there
        message = digest_email(digest_document(digest), render_text(digest), SENDER, bad, ARCHIVE, WHEN)
        assert parsed(message)["Bcc"] is None
        return
    with pytest.raises(HeaderError, match="line break"):
        digest_email(digest_document(digest), render_text(digest), SENDER, bad, ARCHIVE, WHEN)


def test_the_confirmation_is_auto_submitted_with_one_link() -> None:
    url = "https://rankings.example.com/email/confirm/SIGNED"
    message = parsed(confirmation_email(SENDER, "ada@example.org", url, "weekly", WHEN, "key"))
    assert message["Auto-Submitted"] == "auto-generated" and message["To"] == "ada@example.org"
    body = message.get_content()
    assert body.count(url) == 1 and "weekly digest" in body and "ignore this email" in body
    assert message.get_content_type() == "text/plain"


def _lines(content: Any) -> Any:
    return content.replace("\r\n", "\n") if isinstance(content, str) else content


def _tree(message: EmailMessage) -> list[tuple[str, Any]]:
    """Each part's type and decoded content (line ends as a client shows them), then every header."""
    parts = [
        (part.get_content_type(), _lines(part.get_content())) for part in message.walk() if not part.is_multipart()
    ]
    headers = [(name, str(value)) for name, value in message.items() if name != "Content-Type"]
    return [*parts, *headers]


@pytest.mark.parametrize("kind", ["week", "day"])
def test_a_letter_from_the_template_reads_exactly_as_the_subscribers_own_rendering(kind: str) -> None:
    digest = build_digest(kind, text_history(), CATALOGUE, DigestSettings())
    document, text = digest_document(digest), render_text(digest)
    chart = (bump_chart().png, "Bump chart")
    template = letter_template(document, text, SENDER, ARCHIVE, WHEN, "weekly", chart)
    others = [
        RECIPIENT,
        Recipient(
            "bob.o+news@example.net",
            "another-key",
            "weekly",
            "https://rankings.example.com/email/unsubscribe/OTHER.TOKEN-x_y",
            "https://rankings.example.com/email/preferences/OTHER.TOKEN-x_y",
            "bounces+another-key@rankings.example.com",
        ),
    ]
    for recipient in others:
        assert template.fits(recipient)
        data = template.letter(recipient)
        assert max(len(line) for line in data.split(b"\r\n")) <= 998 and b"mark.invalid" not in data
        made = parsed_bytes(data)
        own = digest_email(document, text, SENDER, recipient, ARCHIVE, WHEN, chart)
        assert _tree(made) == _tree(parsed_bytes(own.as_bytes(policy=email.policy.SMTP.clone(max_line_length=998))))
        assert made["Message-ID"] == own["Message-ID"] and made["To"] == recipient.address


def test_an_address_the_template_cannot_carry_as_it_is_is_rendered_on_its_own() -> None:
    from dataclasses import replace

    digest = build_digest("week", text_history(), CATALOGUE, DigestSettings())
    template = letter_template(digest_document(digest), render_text(digest), SENDER, ARCHIVE, WHEN, "weekly")
    for odd in (
        replace(RECIPIENT, address='"ada lovelace"@example.org'),
        replace(RECIPIENT, address="o'brien@example.org"),
        replace(RECIPIENT, address="x@example.org\r\nBcc: victim@example.org"),
        replace(RECIPIENT, cadence="daily"),
    ):
        assert not template.fits(odd)
        with pytest.raises(ValueError, match="its own rendering"):
            template.letter(odd)
