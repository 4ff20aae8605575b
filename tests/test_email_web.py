"""The newsletter's pages on the real web app (uvicorn on 127.0.0.1): the confirm link confirms in one click and
expires; the unsubscribe link is RFC 8058's one-click endpoint — POST (urlencoded or multipart, no cookie) → 200,
no redirect, suppressed before the answer, harmless repeated — while GET only shows a button; a tampered token, or
one made for another purpose, is a 404 that says nothing about why."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.config import WebConfig
from bot.config_email import EmailConfig
from bot.email.tokens import Tokens
from bot.email.web import EmailPages
from bot.metrics import Metrics
from bot.web.app import WebParts, web_app
from bot.web.security import Origin
from bot.web.site import SiteData
from digests.model import DigestSettings
from digests.subscribers import SubscriberState
from storage.archive import Archive
from storage.engine import open_database
from storage.repository import Repository
from storage.subscribers import Subscribers
from tests.website import serving_app

SECRET = "a-test-secret-that-is-long-enough-0123456789"
ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass
class Newsletter:
    url: str
    subscribers: Subscribers
    tokens: Tokens

    def link(self, purpose: str, address: str) -> str:
        found = self.subscribers.find(address)
        assert found is not None
        return f"{self.url}/email/{purpose}/{self.tokens.make(purpose, found.key)}"

    def state(self, address: str) -> SubscriberState:
        found = self.subscribers.find(address)
        assert found is not None
        return found.state


def serve(
    tmp_path: Path, config: EmailConfig, bounce_secret: str | None = None, trusted: tuple[str, ...] = ()
) -> Iterator[Newsletter]:
    engine = open_database(f"sqlite:///{tmp_path / 'news.db'}")
    subscribers, tokens = Subscribers(engine), Tokens(SECRET)
    data = SiteData(Repository(engine), Archive(engine), DigestSettings())
    email = EmailPages(subscribers, tokens, config, bounce_secret, origin=Origin("", trusted))
    app = web_app(WebParts(lambda: {}, Metrics(), WebConfig(), data, (), email))
    with serving_app(app) as url:
        yield Newsletter(url, subscribers, tokens)
    engine.dispose()


@pytest.fixture
def news(tmp_path: Path) -> Iterator[Newsletter]:
    yield from serve(tmp_path, EmailConfig(enabled=True))


def post(url: str, **options: object) -> httpx.Response:
    return httpx.post(url, timeout=10, follow_redirects=False, **options)  # type: ignore[arg-type]


def test_one_click_unsubscribes_before_the_answer_without_a_redirect_and_is_harmless_repeated(
    news: Newsletter,
) -> None:
    news.subscribers.add("ada@example.org", confirmed=True)
    link = news.link("unsubscribe", "ada@example.org")
    answer = post(link, content=ONE_CLICK, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200 and "location" not in answer.headers and "set-cookie" not in answer.headers
    assert news.state("ada@example.org") is SubscriberState.UNSUBSCRIBED
    assert "gets nothing more" in answer.text and answer.headers["cache-control"] == "no-store"
    again = post(link, content=ONE_CLICK, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert again.status_code == 200 and news.state("ada@example.org") is SubscriberState.UNSUBSCRIBED


def test_one_click_as_multipart_works_too(news: Newsletter) -> None:
    news.subscribers.add("bob@example.org", confirmed=True)
    answer = post(news.link("unsubscribe", "bob@example.org"), files={"List-Unsubscribe": (None, "One-Click")})
    assert answer.status_code == 200 and news.state("bob@example.org") is SubscriberState.UNSUBSCRIBED


def test_get_shows_a_button_and_changes_nothing(news: Newsletter) -> None:
    news.subscribers.add("carol@example.org", confirmed=True)
    link = news.link("unsubscribe", "carol@example.org")
    page = httpx.get(link, timeout=10)
    assert page.status_code == 200 and news.state("carol@example.org") is SubscriberState.CONFIRMED
    path = link.removeprefix(news.url)
    assert f'<form method="post" action="{path}">' in page.text and "<button" in page.text
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert "form-action 'self'" in page.headers["content-security-policy"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_tampered_token_or_one_for_another_purpose_is_a_404_without_detail(news: Newsletter, method: str) -> None:
    news.subscribers.add("dan@example.org", confirmed=True)
    link = news.link("unsubscribe", "dan@example.org")
    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    other_purpose = news.link("preferences", "dan@example.org").replace("/preferences/", "/unsubscribe/")
    for url in (tampered, other_purpose, f"{news.url}/email/unsubscribe/1", f"{news.url}/email/confirm/x.y.z"):
        answer = httpx.request(method, url, timeout=10, content=ONE_CLICK)
        if method == "POST" and "/confirm/" in url:
            assert answer.status_code == 405
            continue
        assert answer.status_code == 404, url
        assert "This link does not work." in answer.text
        assert "signature" not in answer.text.lower() and "expired" not in answer.text.lower()
    assert news.state("dan@example.org") is SubscriberState.CONFIRMED


def test_the_confirm_link_confirms_in_one_click_and_never_brings_back_someone_who_left(news: Newsletter) -> None:
    news.subscribers.add("erin@example.org", "daily")
    link = news.link("confirm", "erin@example.org")
    page = httpx.get(link, timeout=10)
    assert page.status_code == 200 and "erin@example.org gets the daily alerts" in page.text
    confirmed = news.subscribers.find("erin@example.org")
    assert confirmed is not None and confirmed.receives and confirmed.confirmed_ip == "127.0.0.1"
    post(news.link("unsubscribe", "erin@example.org"), content=ONE_CLICK)
    replayed = httpx.get(link, timeout=10)
    assert replayed.status_code == 200 and "left the list" in replayed.text
    assert news.state("erin@example.org") is SubscriberState.UNSUBSCRIBED


def test_an_expired_confirm_link_says_so_and_confirms_nothing(tmp_path: Path) -> None:
    for news in serve(tmp_path, EmailConfig(enabled=True, confirm_hours=1 / 3600)):  # links last 1 s
        news.subscribers.add("fay@example.org")
        link = news.link("confirm", "fay@example.org")
        time.sleep(2.1)
        page = httpx.get(link, timeout=10)
        assert page.status_code == 410 and "expired" in page.text and "Subscribe again" in page.text
        assert news.state("fay@example.org") is SubscriberState.PENDING


def test_the_newsletter_needs_its_signing_secret_to_start() -> None:
    config = EmailConfig(enabled=True)
    assert "RANKBOT_NEWSLETTER_SECRET" in config.problems({})[0]
    assert config.problems({"RANKBOT_NEWSLETTER_SECRET": "short"})
    assert config.problems({"RANKBOT_NEWSLETTER_SECRET": SECRET}) == []
    assert EmailConfig().problems({}) == []  # off: nothing asked


def test_preferences_change_the_cadence_and_link_to_unsubscribe(news: Newsletter) -> None:
    news.subscribers.add("gus@example.org", "weekly", confirmed=True)
    link = news.link("preferences", "gus@example.org")
    page = httpx.get(link, timeout=10)
    assert page.status_code == 200 and 'value="weekly" checked' in page.text and "gus@example.org" in page.text
    unsubscribe = re.search(r'href="(/email/unsubscribe/[^"]+)"', page.text)
    assert unsubscribe is not None
    saved = httpx.post(link, data={"cadence": "daily"}, timeout=10)
    assert saved.status_code == 200 and "Saved." in saved.text and 'value="daily" checked' in saved.text
    found = news.subscribers.find("gus@example.org")
    assert found is not None and found.cadence == "daily"
    bad = httpx.post(link, data={"cadence": "hourly"}, timeout=10)
    assert bad.status_code == 400 and news.subscribers.find("gus@example.org").cadence == "daily"  # type: ignore[union-attr]
    assert post(news.url + unsubscribe.group(1), content=ONE_CLICK).status_code == 200
    assert httpx.get(link, timeout=10).status_code == 404  # gone: no preferences left to change


def test_the_bounce_webhook_needs_its_bearer_secret_and_marks_the_subscriber(tmp_path: Path) -> None:
    from tests.test_bounces import arf, dsn

    hook = "h" * 40
    for news in serve(tmp_path, EmailConfig(enabled=True), bounce_secret=hook):
        ada = news.subscribers.add("ada@example.org", confirmed=True).subscriber
        news.subscribers.add("bob@example.org", confirmed=True)
        url = f"{news.url}/email/bounce"
        report = dsn("x@example.org", "5.1.1", f"bounces+{ada.key}@rankings.example.com")
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": hook}):
            refused = post(url, content=report, headers=headers)
            assert refused.status_code == 401 and hook not in refused.text
        assert news.state("ada@example.org") is SubscriberState.CONFIRMED
        bearer = {"Authorization": f"Bearer {hook}"}
        marked = post(url, content=report, headers=bearer)
        assert marked.status_code == 200 and "for ada@example.org: now bounced" in marked.text
        complaint = post(url, content=arf("bob@example.org", "fbl@x.example"), headers=bearer)
        assert "now complained" in complaint.text and news.state("bob@example.org") is SubscriberState.COMPLAINED
        assert "nothing done" in post(url, content=b"From: a@b.example\n\nhi\n", headers=bearer).text
        assert post(url, content=b"x" * (1024 * 1024 + 1), headers=bearer).status_code == 413


def test_without_its_secret_the_bounce_webhook_is_not_there(news: Newsletter) -> None:
    assert post(f"{news.url}/email/bounce", content=b"x").status_code == 404
    problems = EmailConfig(enabled=True, bounce_webhook_secret_env="HOOK").problems(
        {"RANKBOT_NEWSLETTER_SECRET": SECRET}
    )
    assert problems and "HOOK" in problems[0]


def confirmations(news: Newsletter, address: str) -> int:
    from storage.letters import LETTER

    found = news.subscribers.find(address)
    if found is None:
        return 0
    with news.subscribers.engine.connect() as connection:
        rows = connection.execute(LETTER.select().where(LETTER.c.subscriber_key == found.key)).all()
    return sum(1 for row in rows if row.kind == "confirm")


def subscribe(
    news: Newsletter, address: str, cadence: str = "weekly", headers: dict[str, str] | None = None, **extra: str
) -> httpx.Response:
    form = {"address": address, "cadence": cadence, **extra}
    return post(news.url + "/email/subscribe", data=form, headers=headers or {})


def test_the_subscribe_form_has_an_address_a_cadence_and_a_hidden_honeypot(news: Newsletter) -> None:
    page = httpx.get(news.url + "/email/subscribe", timeout=10)
    assert page.status_code == 200
    html = page.text
    assert 'type="email"' in html and 'name="cadence" value="weekly" checked' in html
    assert re.search(r'class="trap" aria-hidden="true">.*?name="website" type="text" tabindex="-1"', html, re.S)
    assert 'href="/email/subscribe" aria-current="page">Subscribe</a>' in html  # the site links to it


def test_subscribing_queues_one_confirmation_and_an_existing_address_gets_the_same_answer_and_nothing(
    news: Newsletter,
) -> None:
    first = subscribe(news, "ada@example.org", "daily")
    assert first.status_code == 200 and "Check your inbox" in first.text
    pending = news.subscribers.find("ada@example.org")
    assert pending is not None and pending.state is SubscriberState.PENDING and pending.cadence == "daily"
    assert pending.confirmed_ip is None and confirmations(news, "ada@example.org") == 1
    again = subscribe(news, "ada@example.org", "daily")  # pending, its link still works: no second email
    assert again.status_code == 200 and again.text == first.text
    assert confirmations(news, "ada@example.org") == 1
    news.subscribers.confirm(pending.key, "127.0.0.1")
    known = subscribe(news, "ada@EXAMPLE.org")  # confirmed already: the same words, nothing sent
    assert known.text.replace("ada@EXAMPLE.org", "ada@example.org") == first.text
    assert confirmations(news, "ada@example.org") == 1
    assert news.state("ada@example.org") is SubscriberState.CONFIRMED


def test_the_honeypot_gets_the_same_answer_and_nothing_is_stored(news: Newsletter) -> None:
    trapped = subscribe(news, "victim@example.org", website="https://spam.example")
    assert trapped.status_code == 200 and "Check your inbox" in trapped.text
    assert news.subscribers.find("victim@example.org") is None


def test_a_bad_address_gets_the_form_back_saying_why(news: Newsletter) -> None:
    bad = subscribe(news, "not-an-address")
    assert bad.status_code == 400 and "That address does not work" in bad.text and 'value="not-an-address"' in bad.text
    hostile = subscribe(news, '"><script>alert(1)</script>@example.org')
    assert hostile.status_code == 400 and "<script>alert" not in hostile.text


def test_the_subscribe_endpoint_is_rate_limited_per_ip(tmp_path: Path) -> None:
    for news in serve(tmp_path, EmailConfig(enabled=True, subscribe_per_ip_per_hour=3)):
        codes = [subscribe(news, f"reader{n}@example.org").status_code for n in range(3)]
        spoofed = [  # a client's own X-Forwarded-For is not believed: still this client
            subscribe(news, f"x{n}@example.org", headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
            for n in range(2)
        ]
        assert codes + spoofed == [200, 200, 200, 429, 429]
        assert news.subscribers.find("x0@example.org") is None


def test_behind_a_trusted_proxy_the_limit_is_per_forwarded_client(tmp_path: Path) -> None:
    config = EmailConfig(enabled=True, subscribe_per_ip_per_hour=1)
    for news in serve(tmp_path, config, trusted=("127.0.0.1",)):

        def via(client: str, address: str, news: Newsletter = news) -> int:
            headers = {"X-Forwarded-For": f"198.51.100.9, {client}"}  # the proxy appends the peer it saw
            return subscribe(news, address, headers=headers).status_code

        assert [via("203.0.113.1", "a@example.org"), via("203.0.113.2", "b@example.org")] == [200, 200]
        assert via("203.0.113.1", "c@example.org") == 429
        ada = news.subscribers.find("a@example.org")
        assert ada is not None
        assert httpx.get(news.link("confirm", "a@example.org"), headers={"X-Forwarded-For": "203.0.113.1"},
                         timeout=10).status_code == 200  # fmt: skip
        confirmed = news.subscribers.find("a@example.org")
        assert confirmed is not None and confirmed.confirmed_ip == "203.0.113.1"


def test_a_returning_address_must_confirm_again_and_confirming_queues_one_welcome(news: Newsletter) -> None:
    from storage.letters import Letters

    subscribe(news, "bob@example.org")
    link = news.link("confirm", "bob@example.org")
    assert httpx.get(link, timeout=10).status_code == 200
    assert httpx.get(link, timeout=10).status_code == 200  # replayed: no second welcome
    letters = Letters(news.subscribers.engine)
    assert letters.progress()["pending"] == 2  # the confirmation and one welcome
    found = news.subscribers.find("bob@example.org")
    assert found is not None
    news.subscribers.set_state(found.key, SubscriberState.UNSUBSCRIBED)
    subscribe(news, "bob@example.org")
    assert news.state("bob@example.org") is SubscriberState.PENDING  # back, but only once confirmed
    assert confirmations(news, "bob@example.org") == 2  # a new link for the returning address
    for _ in range(3):  # leaving and coming back over and over: at most 3 confirmations a day
        news.subscribers.set_state(found.key, SubscriberState.UNSUBSCRIBED)
        subscribe(news, "bob@example.org")
    assert confirmations(news, "bob@example.org") == 3
