"""Bounces and complaints fed to ``rankbot email bounce`` as an MTA pipes them: an RFC 3464 DSN back to the VERP
address (hard: suppressed at once; soft: after the limit), one without VERP matched by its Final-Recipient, an ARF
complaint, an MTA's home-made format (flufl.bounce), and a plain reply that is neither."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.email.bounces import read_bounce
from digests.subscribers import SubscriberState
from storage.engine import open_database
from storage.subscribers import Subscribers
from tests.test_cli import rankbot

ORIGINAL = (
    "From: rankbot <digest@rankings.example.com>\nTo: {rcpt}\nSubject: OpenRouter rankings, the day: 2026-10-07 (UTC)\n"
    "Message-ID: <abc@rankings.example.com>\n\nThe digest.\n"
)


def dsn(rcpt: str, status: str, to: str = "bounces@rankings.example.com", action: str = "failed") -> bytes:
    """A delivery status notification as Postfix sends one (RFC 3464)."""
    return (
        f"From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\nTo: {to}\nDelivered-To: {to}\n"
        "Subject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nI'm sorry to have to inform you that your message could not be delivered.\n"
        "\n--B\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.org\nArrival-Date: Wed, 7 Oct 2026 09:00:01 +0000\n\n"
        f"Final-Recipient: rfc822; {rcpt}\nOriginal-Recipient: rfc822;{rcpt}\nAction: {action}\n"
        f"Status: {status}\nDiagnostic-Code: smtp; 550 {status} User unknown\n"
        f"\n--B\nContent-Type: message/rfc822\n\n{ORIGINAL.format(rcpt=rcpt)}\n--B--\n"
    ).encode()


def arf(rcpt: str, to: str) -> bytes:
    """A complaint in the Abuse Reporting Format (RFC 5965), as a mailbox provider's feedback loop sends one."""
    return (
        f"From: feedback@provider.example\nTo: {to}\nSubject: complaint\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\n\n'
        "--F\nContent-Type: text/plain\n\nThis is an email abuse report.\n"
        "\n--F\nContent-Type: message/feedback-report\n\n"
        f"Feedback-Type: abuse\nUser-Agent: Provider-FBL/1.0\nVersion: 1\nOriginal-Rcpt-To: {rcpt}\n"
        f"\n--F\nContent-Type: message/rfc822\n\n{ORIGINAL.format(rcpt=rcpt)}\n--F--\n"
    ).encode()


QMAIL = (
    b"From: MAILER-DAEMON@example.net\nTo: bounces@rankings.example.com\nSubject: failure notice\n\n"
    b"Hi. This is the qmail-send program at example.net.\n"
    b"I'm afraid I wasn't able to deliver your message to the following addresses.\n"
    b"This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
    b"<gone@example.net>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
    b"--- Below this line is a copy of the message.\n\nFrom: digest@rankings.example.com\n"
)


def test_a_hard_dsn_to_the_verp_address_names_the_subscriber() -> None:
    found = read_bounce(dsn("ada@example.org", "5.1.1", "bounces+KEY0123456789abcdefXYZ@rankings.example.com"))
    assert found is not None and (found.kind, found.key, found.status) == ("hard", "KEY0123456789abcdefXYZ", "5.1.1")
    assert found.addresses == {"ada@example.org"}


@pytest.mark.parametrize(
    ("raw", "kind", "addresses"),
    [
        (dsn("ada@example.org", "4.2.2", action="delayed"), "soft", {"ada@example.org"}),
        (arf("ada@example.org", "fbl@rankings.example.com"), "complaint", {"ada@example.org"}),
        (QMAIL, "hard", {"gone@example.net"}),
    ],
)
def test_soft_bounces_complaints_and_home_made_formats(raw: bytes, kind: str, addresses: set[str]) -> None:
    found = read_bounce(raw)
    assert found is not None and found.kind == kind and found.addresses == addresses and found.key is None


def test_a_plain_reply_is_neither() -> None:
    assert (
        read_bounce(b"From: ada@example.org\nTo: digest@rankings.example.com\nSubject: Re: rankings\n\nThanks!\n")
        is None
    )


def test_rankbot_email_bounce_marks_the_right_subscriber(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'news.db'}"
    engine = open_database(url)
    subscribers = Subscribers(engine)
    ada = subscribers.add("ada@example.org", confirmed=True).subscriber
    bob = subscribers.add("bob@example.org", confirmed=True).subscriber
    carol = subscribers.add("carol@example.org", confirmed=True).subscriber
    env = {"RANKBOT_STORAGE_DATABASE_URL": url, "RANKBOT_EMAIL_SOFT_BOUNCE_LIMIT": "2"}

    def bounce(raw: bytes, *args: str) -> str:
        done = rankbot("email", "bounce", *args, cwd=tmp_path, env=env, input=raw.decode())
        assert done.returncode == 0, done.stderr
        return done.stdout

    verp = f"bounces+{ada.key}@rankings.example.com"
    assert "dry run" in bounce(dsn("ada@example.org", "5.1.1", verp), "--dry-run")
    assert subscribers.by_key(ada.key).state is SubscriberState.CONFIRMED  # type: ignore[union-attr]
    said = bounce(dsn("someone-else@example.org", "5.1.1", verp))  # the VERP key wins over the report's address
    assert "hard bounce, 5.1.1 for ada@example.org: now bounced" in said
    soft = dsn("bob@example.org", "4.2.2", action="delayed")
    assert "now confirmed" in bounce(soft)  # matched by Final-Recipient; 1 of 2
    assert "now bounced" in bounce(soft)
    assert "complaint bounce for carol@example.org: now complained" in bounce(arf("carol@example.org", "fbl@x"))
    assert "no subscriber matched" in bounce(dsn("stranger@example.org", "5.1.1"))
    assert "not a bounce" in bounce(b"From: a@b.example\nSubject: hi\n\nhello\n")
    states = {s.address: s.state for page in subscribers.pages() for s in page}
    assert states == {
        "ada@example.org": SubscriberState.BOUNCED,
        "bob@example.org": SubscriberState.BOUNCED,
        "carol@example.org": SubscriberState.COMPLAINED,
    }
    assert bob.key and carol.key
    engine.dispose()
