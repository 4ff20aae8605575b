"""A reader in a real browser: headless Chromium (Debian's, driven by Playwright) against a real `rankbot run` on
127.0.0.1 over a database with published digests. Open the rankings, switch to the week, open a model, browse the
archive and a digest, follow the feed link; what the reader sees, no console errors or CSP violations, charts that
load, no horizontal scroll at 360 px. Full-page screenshots land in tests/artifacts/ (ignored by git)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.demo.fake_smtp import FakeSmtp
from bot.demo.generator import generate_history
from bot.demo.server import FakeOpenRouter
from bot.email.tokens import Tokens
from storage.engine import open_database
from storage.subscribers import Subscribers
from tests.conftest import TODAY
from tests.processes import free_port, health, start, stop, wait_for, write_config
from tests.website import publish

SERVED: dict[str, str] = {}
MAIL: dict[str, FakeSmtp] = {}

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",  # this machine's closed network refuses them
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_or_skip() -> None:
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run should have installed Debian's chromium")
        pytest.skip(f"no {CHROMIUM}: apt-get install chromium (bash .ci/run does)")


NEWSLETTER_SECRET = "n" * 40
SUBSCRIBER = "reader@example.org"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    chromium_or_skip()
    folder = tmp_path_factory.mktemp("browser")
    history = generate_history(end=TODAY - timedelta(days=1), days=60)
    published = publish(folder / "site.db", history)
    Subscribers(published.repo.engine).add(SUBSCRIBER, "weekly", confirmed=True)
    published.repo.engine.dispose()
    with (
        FakeOpenRouter(
            history.days, history.catalogue, today=TODAY, api_key=None, first_snapshot=TODAY - timedelta(days=45)
        ) as openrouter,
        FakeSmtp() as smtp,
    ):
        port = free_port()
        config = write_config(
            folder / "config.toml",
            openrouter=openrouter.url,
            database_url=f"sqlite:///{folder / 'site.db'}",
            port=port,
            outputs=[],
        )
        newsletter = {
            "RANKBOT_EMAIL_ENABLED": "true",
            "RANKBOT_NEWSLETTER_SECRET": NEWSLETTER_SECRET,
            "RANKBOT_WEB_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "RANKBOT_EMAIL_SMTP_PORT": str(smtp.port),
            "RANKBOT_EMAIL_SECURITY": "none",
            "RANKBOT_EMAIL_FROM": "digest@rankings.example.com",
            "RANKBOT_EMAIL_BOUNCE_ADDRESS": "bounces@rankings.example.com",
        }
        process = start(config, "run", cwd=folder, env=newsletter)
        try:
            wait_for(lambda: health(port).get("latest_day"), what="rankbot run")
            SERVED["database"] = f"sqlite:///{folder / 'site.db'}"
            MAIL["smtp"] = smtp
            yield f"http://127.0.0.1:{port}"
        finally:
            code, log = stop(process)
            assert code == 0, log


class Reader:
    """A browser tab that remembers every console error and CSP violation it saw."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.problems.append(message.text))
        page.on("pageerror", lambda error: self.problems.append(str(error)))
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status} for {r.url}"))

    async def open(self, url: str) -> Any:
        response = await self.page.goto(url)
        await self.page.wait_for_load_state("networkidle")
        return response

    async def heading(self) -> str:
        return str(await self.page.inner_text("h1"))

    async def images_loaded(self) -> list[int]:
        return list(
            await self.page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        )

    async def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_a_reader_follows_the_site_in_chromium(service: str) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            reader = Reader(await browser.new_page(viewport={"width": 1280, "height": 900}))
            await reader.open(service + "/")
            assert await reader.heading() == "OpenRouter model rankings — the day"
            label = await reader.page.inner_text("p.label")
            assert "Source day" in label and "data as of" in label
            first = await reader.page.inner_text("tbody tr:first-child")
            assert first.split()[0] == "1"
            assert all(width > 0 for width in await reader.images_loaded()) and len(await reader.images_loaded()) == 2
            assert "Source: OpenRouter (openrouter.ai/rankings)" in await reader.page.inner_text("p.attribution")
            await reader.shot("home-desktop")

            await reader.page.click("nav.switch >> text=Week")
            await reader.page.wait_for_load_state("networkidle")
            assert reader.page.url.endswith("/?period=week")
            assert await reader.heading() == "OpenRouter model rankings — the week"
            assert "Tokens over 7 days" in await reader.page.inner_text("thead")
            await reader.shot("week-desktop")

            model = await reader.page.inner_text("tbody tr:first-child td:nth-child(3) a")
            await reader.page.click("tbody tr:first-child td:nth-child(3) a")
            await reader.page.wait_for_load_state("networkidle")
            assert "/models/" in reader.page.url and await reader.heading() == model
            assert all(width > 0 for width in await reader.images_loaded())
            await reader.shot("model-desktop")

            await reader.page.click("header nav >> text=Archive")
            await reader.page.wait_for_load_state("networkidle")
            assert await reader.heading() == "Archive"
            await reader.page.click("ol.archive li:first-child a")
            await reader.page.wait_for_load_state("networkidle")
            assert "/archive/" in reader.page.url and "Source day" in await reader.page.inner_text("main")
            await reader.shot("archived-desktop")

            feed_link = await reader.page.get_attribute("header nav >> text=Feed", "href")
            response = await reader.open(service + str(feed_link))
            assert response.headers["content-type"].startswith("application/atom+xml")
            assert "urn:rankbot:digest:" in await response.text()
            assert reader.problems == []

            phone = Reader(await browser.new_page(viewport={"width": 360, "height": 740}))
            for name, path in (
                ("home", "/"),
                ("week", "/?period=week"),
                ("archive", "/archive"),
                ("models", "/models?q=gpt"),
            ):
                await phone.open(service + path)
                width = await phone.page.evaluate("document.documentElement.scrollWidth")
                assert width <= 360, (path, width)
                await phone.shot(f"{name}-phone")
            assert phone.problems == []
        finally:
            await browser.close()


async def test_a_subscriber_changes_preferences_and_unsubscribes_in_chromium(service: str, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    from digests.subscribers import SubscriberState

    engine = open_database(SERVED["database"])
    subscribers = Subscribers(engine)
    found = subscribers.find(SUBSCRIBER)
    assert found is not None
    preferences = f"{service}/email/preferences/{Tokens(NEWSLETTER_SECRET).make('preferences', found.key)}"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            reader = Reader(await browser.new_page(viewport={"width": 360, "height": 740}))
            await reader.open(preferences)
            assert await reader.heading() == "Email preferences"
            await reader.page.check("input[value=daily]")
            await reader.page.click("text=Save")
            await reader.page.wait_for_load_state("networkidle")
            assert "Saved." in await reader.page.inner_text("main")
            assert subscribers.find(SUBSCRIBER).cadence == "daily"  # type: ignore[union-attr]
            assert await reader.page.evaluate("document.documentElement.scrollWidth") <= 360
            await reader.shot("email-preferences-phone")
            await reader.page.click("text=Unsubscribe from everything")
            await reader.page.wait_for_load_state("networkidle")
            assert await reader.heading() == "Unsubscribe?"
            assert subscribers.find(SUBSCRIBER).state is SubscriberState.CONFIRMED  # type: ignore[union-attr]
            await reader.page.click("button:has-text('Unsubscribe')")
            await reader.page.wait_for_load_state("networkidle")
            assert await reader.heading() == "Unsubscribed"
            assert subscribers.find(SUBSCRIBER).state is SubscriberState.UNSUBSCRIBED  # type: ignore[union-attr]
            await reader.shot("email-unsubscribed-phone")
            assert reader.problems == []
        finally:
            await browser.close()
            engine.dispose()


def mail_to(address: str, subject: str) -> Any:
    """The newest email to ``address`` whose subject starts with ``subject``, once it arrives."""

    def arrived() -> Any:
        found = [r.message for r in MAIL["smtp"].received if r.recipients == [address]]
        found = [m for m in found if str(m["Subject"]).startswith(subject)]
        return found[-1] if found else None

    return wait_for(arrived, timeout=30, what=f"an email {subject!r} to {address}")


def links(html: str) -> list[str]:
    import re

    return [found.replace("&amp;", "&") for found in re.findall(r'href="([^"]+)"', html)]


async def test_a_person_subscribes_confirms_reads_the_digest_and_its_archive_page_and_unsubscribes(
    service: str,
) -> None:
    """The whole newsletter in Chromium against `rankbot run` and aiosmtpd: the Subscribe link, the form, the
    confirmation link from the email, a weekly digest (queued as the planner does), its "read it on the web" link
    to the archive, and the unsubscribe link in its footer."""
    import base64

    from playwright.async_api import async_playwright

    from digests.delivery import Variant
    from digests.subscribers import SubscriberState
    from storage.delivery import DeliveryStore

    address = "new.reader@example.org"
    engine = open_database(SERVED["database"])
    subscribers = Subscribers(engine)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            reader = Reader(await browser.new_page(viewport={"width": 360, "height": 740}))
            await reader.open(service + "/")
            await reader.page.click("nav >> text=Subscribe")
            await reader.page.wait_for_load_state("networkidle")
            assert await reader.heading() == "Subscribe by email"
            await reader.page.fill("#address", address)
            await reader.page.check("input[value=weekly]")
            await reader.shot("email-subscribe-phone")
            await reader.page.click("button:has-text('Subscribe')")
            await reader.page.wait_for_load_state("networkidle")
            assert await reader.heading() == "Check your inbox"
            assert subscribers.find(address).state is SubscriberState.PENDING  # type: ignore[union-attr]

            confirmation = mail_to(address, "Confirm your rankbot subscription")
            [confirm] = [line for line in confirmation.get_content().splitlines() if "/email/confirm/" in line]
            assert confirm.startswith(service + "/email/confirm/")
            await reader.open(confirm)
            assert await reader.heading() == "Subscribed"
            assert subscribers.find(address).state is SubscriberState.CONFIRMED  # type: ignore[union-attr]
            mail_to(address, "You are subscribed")

            store = DeliveryStore(engine)
            week = store.messages(kind="week")[-1]
            store.queue(week, [("newsletter-weekly", Variant.FULL)])  # what the planner does on the weekly cron
            digest = mail_to(address, "OpenRouter rankings")
            assert week.last_day is not None and str(week.last_day) in digest["Subject"]
            html = digest.get_body(("html",)).get_content()
            image = next(part for part in digest.walk() if part.get_content_type() == "image/png")
            cid = str(image["Content-ID"]).strip("<>")
            assert f"cid:{cid}" in html
            inline = "data:image/png;base64," + base64.b64encode(image.get_content()).decode()
            shown = html.replace(f"cid:{cid}", inline)
            viewer = await browser.new_page(viewport={"width": 600, "height": 900})
            await viewer.set_content(shown)
            ARTIFACTS.mkdir(exist_ok=True)
            await viewer.screenshot(path=str(ARTIFACTS / "email-digest.png"), full_page=True)
            assert await viewer.eval_on_selector("img", "i => i.naturalWidth") > 0
            await viewer.close()

            archive = next(link for link in links(html) if "/archive/" in link)
            await reader.open(archive)
            assert week.id in reader.page.url or "archive" in reader.page.url
            assert "Source days" in await reader.page.inner_text("main")
            assert all(width > 0 for width in await reader.images_loaded())
            await reader.shot("email-archive-phone")

            unsubscribe = next(link for link in links(html) if "/email/unsubscribe/" in link)
            await reader.open(unsubscribe)
            assert await reader.heading() == "Unsubscribe?"
            await reader.page.click("button:has-text('Unsubscribe')")
            await reader.page.wait_for_load_state("networkidle")
            assert await reader.heading() == "Unsubscribed"
            assert subscribers.find(address).state is SubscriberState.UNSUBSCRIBED  # type: ignore[union-attr]
            assert reader.problems == []
        finally:
            await browser.close()
            engine.dispose()
