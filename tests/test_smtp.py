"""The SMTP sender against a real SMTP server (aiosmtpd on 127.0.0.1): connections reused, STARTTLS verified before
AUTH, a server without STARTTLS refused before anything is sent, a refused login stops the send, replies scripted
per recipient (421, 451, 550 5.1.1, 552) mean what they should, and a server that drops the connection every N
messages is reconnected without losing one."""

from __future__ import annotations

import ssl
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.config import WebConfig
from bot.config_email import EmailConfig
from bot.demo.fake_smtp import Certificate, FakeSmtp, self_signed
from bot.email.smtp import DeferredError, MailSender, RecipientRefusedError, SendingStoppedError, verifying_context

USER, PASSWORD = "rankbot", "s3cret-password"
ENVIRON = {"SMTP_USER": USER, "SMTP_PASSWORD": PASSWORD}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("tls"))


def config(server: FakeSmtp, security: str = "none", login: bool = False, **extra: object) -> EmailConfig:
    names = {"username_env": "SMTP_USER", "password_env": "SMTP_PASSWORD"} if login else {}
    return EmailConfig(
        smtp_port=server.port, security=security, rate_per_second=1000, timeout_seconds=5, **names, **extra
    )  # type: ignore[arg-type]


def mail(to: str, subject: str = "hello") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "digest@rankings.example.com", to, subject
    message.set_content("body")
    return message


async def test_messages_go_over_reused_connections() -> None:
    with FakeSmtp() as server:
        sender = MailSender(config(server, concurrency=2), {})
        for n in range(10):
            reply = await sender.send(
                mail(f"user{n}@example.org"), "bounces+k@rankings.example.com", f"user{n}@example.org"
            )
            assert "Message accepted" in reply
        await sender.close()
    assert len(server.received) == 10 and sender.connections == 1
    assert server.received[0].sender == "bounces+k@rankings.example.com"
    assert server.received[3].recipients == ["user3@example.org"]


def test_the_client_asks_for_a_verifying_context() -> None:
    context = verifying_context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


async def test_starttls_is_verified_and_login_happens_only_after_it(certificate: Certificate) -> None:
    with FakeSmtp(certificate, login=(USER, PASSWORD)) as server:
        sender = MailSender(config(server, "starttls", login=True), ENVIRON, certificate.client_context())
        await sender.send(mail("ada@example.org"), "b@x.example", "ada@example.org")
        await sender.close()
    assert server.logins == [USER] and len(server.received) == 1


async def test_a_certificate_that_does_not_verify_stops_the_send(certificate: Certificate) -> None:
    with FakeSmtp(certificate, login=(USER, PASSWORD)) as server:
        sender = MailSender(config(server, "starttls", login=True), ENVIRON)  # the system CAs: not ours
        with pytest.raises(SendingStoppedError, match=r"TLS with 127\.0\.0\.1 failed"):
            await sender.send(mail("ada@example.org"), "b@x.example", "ada@example.org")
    assert server.logins == [] and server.received == []


async def test_no_starttls_offered_when_required_aborts_before_auth_and_sends_nothing(
    certificate: Certificate,
) -> None:
    with FakeSmtp(certificate, starttls=False) as server:
        sender = MailSender(config(server, "starttls", login=True), ENVIRON, certificate.client_context())
        with pytest.raises(SendingStoppedError, match="does not offer STARTTLS"):
            await sender.send(mail("ada@example.org"), "b@x.example", "ada@example.org")
    assert server.logins == [] and server.received == []


async def test_a_refused_login_stops_the_send(certificate: Certificate) -> None:
    with FakeSmtp(certificate, login=(USER, "another-password")) as server:
        sender = MailSender(config(server, "starttls", login=True), ENVIRON, certificate.client_context())
        with pytest.raises(SendingStoppedError, match="refused the login"):
            await sender.send(mail("ada@example.org"), "b@x.example", "ada@example.org")
        assert PASSWORD not in repr(sender.__dict__.get("config"))
    assert server.received == []


@pytest.mark.parametrize(
    ("reply", "outcome", "hard"),
    [
        ("421 4.3.2 Service not available, closing", DeferredError, None),
        ("451 4.7.1 Greylisted, try again later", DeferredError, None),
        ("550 5.1.1 No such user here", RecipientRefusedError, True),
        ("552 5.2.2 Mailbox full", RecipientRefusedError, False),
        ("554 5.7.1 Rejected for policy reasons", RecipientRefusedError, True),
    ],
)
async def test_scripted_replies_mean_what_they_say(reply: str, outcome: type[Exception], hard: bool | None) -> None:
    with FakeSmtp() as server:
        server.script("ada@example.org", reply)
        sender = MailSender(config(server), {})
        with pytest.raises(outcome) as raised:
            await sender.send(mail("ada@example.org"), "b@x.example", "ada@example.org")
        if hard is not None:
            assert isinstance(raised.value, RecipientRefusedError) and raised.value.hard is hard
        assert reply[:3] in str(raised.value)
        await sender.send(mail("bob@example.org"), "b@x.example", "bob@example.org")  # the connection goes on
        await sender.close()
    assert [r.recipients for r in server.received] == [["bob@example.org"]]


async def test_a_server_that_drops_the_connection_every_3_messages_loses_none() -> None:
    with FakeSmtp(drop_after=3) as server:
        sender = MailSender(config(server), {})
        for n in range(10):
            await sender.send(mail(f"user{n}@example.org"), "b@x.example", f"user{n}@example.org")
        await sender.close()
    assert [r.recipients[0] for r in server.received] == [f"user{n}@example.org" for n in range(10)]
    assert sender.connections == 4


def test_plain_smtp_is_only_for_loopback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"allowed only to 127\.0\.0\.1"):
        EmailConfig(smtp_host="mail.example.com", security="none")


def test_rankbot_email_test_sends_the_latest_digest_and_its_one_click_link_unsubscribes(tmp_path: Path) -> None:
    import httpx

    from bot.demo.generator import generate_history
    from bot.email.tokens import Tokens
    from bot.email.web import EmailPages
    from bot.metrics import Metrics
    from bot.web.app import WebParts, web_app
    from bot.web.site import SiteData
    from digests.model import DigestSettings
    from digests.subscribers import SubscriberState
    from storage.archive import Archive
    from storage.repository import Repository
    from storage.subscribers import Subscribers
    from tests.test_cli import rankbot
    from tests.website import publish, serving_app

    secret = "x" * 40
    database = tmp_path / "site.db"
    published = publish(database, generate_history(end=date(2026, 11, 20), days=20))
    engine = published.repo.engine
    subscribers = Subscribers(engine)
    ada = subscribers.add("ada@example.org", "weekly", confirmed=True).subscriber
    with FakeSmtp() as server:
        env = {
            "RANKBOT_STORAGE_DATABASE_URL": f"sqlite:///{database}",
            "RANKBOT_WEB_PUBLIC_URL": "https://rankings.example.com",
            "RANKBOT_EMAIL_SMTP_PORT": str(server.port),
            "RANKBOT_EMAIL_SECURITY": "none",
            "RANKBOT_EMAIL_BOUNCE_ADDRESS": "bounces@rankings.example.com",
            "RANKBOT_NEWSLETTER_SECRET": secret,
        }
        done = rankbot("email", "test", "ada@example.org", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        assert "sent 'OpenRouter rankings" in done.stdout and "to ada@example.org" in done.stdout
        missing = rankbot(
            "email", "test", "ada@example.org", cwd=tmp_path, env={**env, "RANKBOT_NEWSLETTER_SECRET": ""}
        )
        assert missing.returncode == 1 and "set RANKBOT_NEWSLETTER_SECRET" in missing.stderr
    [received] = server.received
    assert received.sender == f"bounces+{ada.key}@rankings.example.com" and received.recipients == ["ada@example.org"]
    message = received.message
    latest = Archive(engine).page(1, 1).messages[0]
    assert message["Subject"].startswith("OpenRouter rankings") and str(latest.last_day) in message["Subject"]
    unsubscribe = message["List-Unsubscribe"].split(",")[0].strip("<> ")
    assert unsubscribe.startswith("https://rankings.example.com/email/unsubscribe/")
    pages = EmailPages(subscribers, Tokens(secret), EmailConfig(enabled=True))
    data = SiteData(Repository(engine), Archive(engine), DigestSettings())
    with serving_app(web_app(WebParts(lambda: {}, Metrics(), WebConfig(), data, (), pages))) as url:
        answer = httpx.post(url + unsubscribe.removeprefix("https://rankings.example.com"),
                            content="List-Unsubscribe=One-Click", timeout=10)  # fmt: skip
    assert answer.status_code == 200
    assert subscribers.find("ada@example.org").state is SubscriberState.UNSUBSCRIBED  # type: ignore[union-attr]
    engine.dispose()
