"""The Slack app over HTTP: signed requests to ``POST /slack/events`` served by uvicorn on 127.0.0.1, bolt talking
to a fake Slack Web API — signatures, every ``/rankings`` command as admin and not, bad arguments, a slow data
layer answered through ``response_url`` (and only on Slack's host), retries done once, "Share to channel",
subscriptions from chat delivered through the outbox, OAuth installs and uninstalls."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import Engine

from bot.config import Settings, SlackConfig, WebConfig
from bot.config_outputs import SlackOutput
from bot.demo.fake_slack import FakeSlack
from bot.demo.generator import SyntheticHistory, generate_history
from bot.metrics import Metrics
from bot.slack.parts import slack_chat
from bot.web.app import WebParts, web_app
from bot.web.site import SiteData
from digests.model import DigestSettings
from storage.archive import Archive
from storage.delivery import DeliveryStore
from storage.engine import open_database
from storage.outbox_rows import UNSUBSCRIBED
from storage.repository import Repository
from tests.website import publish, serving_app

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM, CHANNEL = "T0TEAM", "C0CHAN"
PUBLIC = "https://rankings.example.com"
HOSTILE = "<!channel> *x* a&b <https://evil|y>"


@pytest.fixture(scope="module")
def generated() -> SyntheticHistory:
    return generate_history(end=datetime.now(UTC).date() - timedelta(days=1), days=40)


@pytest.fixture(scope="module")
def original(generated: SyntheticHistory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("slack") / "site.db"
    publish(path, generated).repo.engine.dispose()  # closed: the write-ahead log is folded in, the file is whole
    return path


@dataclass
class SlackSite:
    url: str
    fake: FakeSlack
    engine: Engine
    store: DeliveryStore
    clock: Any = None

    def post(self, body: bytes, headers: dict[str, str] | None = None, **options: Any) -> httpx.Response:
        wanted = signed(body, **options) if headers is None else headers
        return httpx.post(
            f"{self.url}/slack/events",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **wanted},
            timeout=30,
        )

    def command(self, text: str, user: str = "UADMIN", channel: str = CHANNEL, **fields: str) -> httpx.Response:
        return self.post(command_body(self.fake, text, user, channel, **fields))

    def reply(self, text: str, user: str = "UADMIN", channel: str = CHANNEL) -> dict[str, Any]:
        response = self.command(text, user, channel)
        assert response.status_code == 200, response.text
        return dict(response.json())


def command_body(fake: FakeSlack, text: str, user: str = "UADMIN", channel: str = CHANNEL, **fields: str) -> bytes:
    form = {
        "token": "unused",
        "team_id": TEAM,
        "team_domain": "fake",
        "channel_id": channel,
        "channel_name": "rankings",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/rankings",
        "text": text,
        "response_url": fake.response_url(uuid.uuid4().hex[:8]),
        "trigger_id": uuid.uuid4().hex,
        **fields,
    }
    return urlencode(form).encode()


def signed(body: bytes, secret: str = SECRET, timestamp: str | None = None, offset: int = 0) -> dict[str, str]:
    """Slack's v0 signature over the raw bytes (by hand, so a body that is not UTF-8 can be signed too)."""
    stamp = timestamp if timestamp is not None else str(int(time.time()) + offset)
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def flat(reply: dict[str, Any]) -> str:
    return json.dumps(reply, ensure_ascii=False)


def settings_for(fake: FakeSlack, **slack: Any) -> Settings:
    config = SlackConfig(api_url=fake.api_url, hooks_url=fake.url + "/response/", admins=("UOPS",), **slack)
    return Settings(slack=config, web=WebConfig(public_url=PUBLIC))


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as running:
        yield running


def serve(
    database: Path,
    fake: FakeSlack,
    settings: Settings | None = None,
    environ: dict[str, str] | None = None,
    clock: Any = None,
) -> Any:
    engine = open_database(f"sqlite:///{database}")
    settings = settings or settings_for(fake)
    environ = environ if environ is not None else {"SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": SECRET}
    data = SiteData(Repository(engine), Archive(engine), DigestSettings())
    chat = slack_chat(settings, environ, engine, data, clock)
    app = web_app(WebParts(lambda: {"status": "ok"}, Metrics(), settings.web, data, chat.routes()))
    return engine, serving_app(app)


@pytest.fixture
def site(original: Path, tmp_path: Path, fake: FakeSlack) -> Iterator[SlackSite]:
    database = tmp_path / "site.db"
    shutil.copy(original, database)
    engine, serving = serve(database, fake)
    with serving as url:
        yield SlackSite(url, fake, engine, DeliveryStore(engine))


# -- signatures ------------------------------------------------------------------------------------------------
SLACK_EXAMPLE_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
    b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
    b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_EXAMPLE_HEADERS = {
    "X-Slack-Request-Timestamp": "1531420618",
    "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
}


class AtSlacksExample:
    """The clock of Slack's published signing example (https://api.slack.com/authentication/verifying-requests)."""

    def now(self) -> float:
        return 1531420618.0 + 30


def test_slacks_published_signing_example_verifies_and_a_changed_byte_does_not(
    original: Path, tmp_path: Path, fake: FakeSlack
) -> None:
    database = tmp_path / "site.db"
    shutil.copy(original, database)
    _, serving = serve(database, fake, clock=AtSlacksExample())
    with serving as url:
        site = SlackSite(url, fake, _, DeliveryStore(_))  # type: ignore[arg-type]
        verified = site.post(SLACK_EXAMPLE_BODY, SLACK_EXAMPLE_HEADERS)
        tampered = site.post(SLACK_EXAMPLE_BODY.replace(b"foobar", b"foobas"), SLACK_EXAMPLE_HEADERS)
    assert verified.status_code not in (401, 500)  # verified; bolt has no /webhook-collect command
    assert tampered.status_code == 401


@pytest.mark.parametrize(
    ("timestamp", "offset", "status"),
    [(None, -299, 200), (None, -301, 401), (None, 301, 401), ("", 0, 401), ("abc", 0, 401), ("1e9", 0, 401)],
)
def test_timestamps_within_five_minutes_verify(
    site: SlackSite, timestamp: str | None, offset: int, status: int
) -> None:
    body = command_body(site.fake, "top 3")
    headers = signed(body, timestamp=timestamp, offset=offset)
    if timestamp == "":
        del headers["X-Slack-Request-Timestamp"]
    assert site.post(body, headers).status_code == status


def test_bad_signatures_are_401_never_500(site: SlackSite) -> None:
    body = command_body(site.fake, "")
    good = signed(body)
    cases = [
        {},
        {**good, "X-Slack-Signature": "v0=" + "0" * 64},
        {**good, "X-Slack-Signature": "garbage"},
        signed(body, secret="another-secret"),
        {"X-Slack-Request-Timestamp": "9" * 40, "X-Slack-Signature": good["X-Slack-Signature"]},
    ]
    for headers in cases:
        assert site.post(body, headers).status_code == 401
    assert site.post(b"\xff\xfe not utf-8").status_code == 401  # signed, but Slack only sends UTF-8
    assert site.post(b"{not a form").status_code < 500


@pytest.mark.parametrize(
    "text",
    [b"model+gemini+flash", b"model%20gemini%20flash", "model gémini ☃".encode(), b""],
    ids=["plus", "percent", "utf-8", "empty"],
)
def test_bodies_verify_over_their_raw_bytes(site: SlackSite, text: bytes) -> None:
    body = command_body(site.fake, "PLACEHOLDER").replace(b"text=PLACEHOLDER", b"text=" + text)
    response = site.post(body)
    assert response.status_code == 200 and response.json()["response_type"] == "ephemeral"


# -- the commands ----------------------------------------------------------------------------------------------
def test_rankings_answers_the_top_10_of_the_latest_day_with_its_labels(site: SlackSite) -> None:
    reply = site.reply("")
    text = flat(reply)
    latest = Repository(site.engine).latest_day()
    assert f"Source day {latest} (UTC, complete)" in text and "data as of" in text
    assert "Source: OpenRouter (openrouter.ai/rankings), as of" in text and "CC BY 4.0" in text
    table = next(b for b in reply["blocks"] if b["type"] == "section" and "```" in b["text"]["text"])
    assert len(table["text"]["text"].strip("`").strip().splitlines()) == 11  # header + 10 rows
    assert any(b["type"] == "actions" and b["elements"][0]["action_id"] == "rankings_share" for b in reply["blocks"])


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("top 25", "Top 25 on OpenRouter — the day"),
        ("week", "Top 10 on OpenRouter — the week"),
        ("week top 5", "Top 5 on OpenRouter — the week"),
        ("movers", "What moved on OpenRouter — the day"),
        ("movers week", "What moved on OpenRouter — the week"),
        ("model deepseek-1.0-flash", "Days in the top 50"),
        ("model flash", "Several models match"),
        ("model zzzzqqq", "No model matches"),
        ("help", "/rankings subscribe daily"),
        ("settings", "This channel subscribes to nothing yet"),
    ],
)
def test_every_reading_command_answers_anyone(site: SlackSite, command: str, expected: str) -> None:
    for user in ("UADMIN", "UUSER"):
        reply = site.reply(command, user)
        assert reply["response_type"] == "ephemeral"
        assert expected in flat(reply), (command, user)


def test_day_answers_a_stored_day_and_names_the_range_otherwise(site: SlackSite) -> None:
    stored = Repository(site.engine).stored_days()
    assert f"Source day {stored[-5]} (UTC, complete)" in flat(site.reply(f"day {stored[-5]}"))
    missing = flat(site.reply("day 2001-01-01"))
    assert f"no complete day 2001-01-01 is stored (stored days run from {stored[0]} to {stored[-1]})" in missing


def test_a_model_card_carries_its_sparkline_from_the_public_site(site: SlackSite) -> None:
    reply = site.reply("model deepseek/deepseek-1.0-flash-20260810")
    image = next(b for b in reply["blocks"] if b["type"] == "image")
    assert image["image_url"] == f"{PUBLIC}/charts/models/deepseek/deepseek-1.0-flash-20260810"
    assert image["alt_text"].startswith("DeepSeek 1.0 Flash: rank #") and "in the top 50 on" in image["alt_text"]


@pytest.mark.parametrize(
    ("command", "problem", "example"),
    [
        ("top 99", "top must be a whole number from 1 to 50", "/rankings top 25"),
        ("top", "`top` needs a number", "/rankings top 25"),
        ("day 2026-13-45", "is not a date: write it as YYYY-MM-DD", "/rankings day 2026-10-07"),
        ("week sideways", "`sideways` is not understood after `week`", "/rankings week top 25"),
        ("movers month", "say `movers` or `movers week`", "/rankings movers week"),
        ("subscribe hourly", "`subscribe daily` or `subscribe weekly`", "/rankings subscribe daily"),
        ("settings top 0", "top must be a whole number from 1 to 50", "/rankings settings top 15"),
        ("settings quiet loud", "`quiet` is `skip`", "/rankings settings quiet line"),
        ('settings at "someday 25:00"', "give a weekday and a 24-hour time", '/rankings settings at "mon 09:00"'),
        ("settings colour blue", "`colour` is not a setting", "/rankings settings top 15"),
        ("settings tz Mars/Olympus", "`Mars/Olympus` is not a time zone", "/rankings settings tz Europe/Berlin"),
        ("model", "`model` needs part of a model's name", "/rankings model gemini flash"),
        ('settings at "mon 09:00', "a quote is not closed", "/rankings settings"),
    ],
)
def test_a_bad_argument_names_the_problem_and_gives_an_example(
    site: SlackSite, command: str, problem: str, example: str
) -> None:
    text = site.reply(command)["text"]
    assert text.startswith("That did not work: ") and problem in text and f"Try: `{example}" in text, text


def test_an_unknown_word_gets_the_help_and_cannot_notify(site: SlackSite) -> None:
    text = flat(site.reply(f"frobnicate{HOSTILE}"))
    assert "is not a `/rankings` command" in text and "/rankings watch deepseek v3" in text
    assert "<!channel>" not in text and "&lt;" in text


def test_changing_a_subscription_needs_an_admin(site: SlackSite) -> None:
    for command in ("subscribe daily", "unsubscribe", "settings top 5", "watch deepseek-1.0-flash", "unwatch flash"):
        text = flat(site.reply(command, "UUSER"))
        assert "Only a workspace admin or owner" in text, command
    assert site.store.destination(f"slack:{TEAM}:{CHANNEL}") is None
    assert "Subscribed" in flat(site.reply("subscribe weekly", "UOPS"))  # named in [slack] admins


def test_subscriptions_from_chat_are_destinations_kept_across_restarts(
    site: SlackSite, original: Path, tmp_path: Path
) -> None:
    name = f"slack:{TEAM}:{CHANNEL}"
    assert "Subscribed: this channel gets the daily alerts" in flat(site.reply("subscribe daily"))
    saved = flat(site.reply('settings top 15 jump 3 quiet line tz Europe/Berlin at "fri 17:30"'))
    assert "Settings saved" in saved and "fri 17:30 Europe/Berlin" not in saved  # weekly is off
    site.reply("subscribe weekly")
    destination = site.store.destination(name)
    assert destination is not None and destination.origin == "slack" and destination.enabled
    assert destination.kind == "slack" and destination.target["channel"] == CHANNEL
    assert destination.target["top"] == 15 and destination.target["jump"] == 3
    subscription = destination.subscription
    assert (subscription.daily, subscription.weekly, subscription.quiet_day) == (True, True, "line")
    assert (subscription.weekly_cron, subscription.timezone) == ("30 17 * * fri", "Europe/Berlin")
    shown = flat(site.reply("settings", "UUSER"))
    assert "on, fri 17:30 Europe/Berlin" in shown and "quiet days: one line" in shown and "Top shown:* 15" in shown
    # a restart: a new app over the same database says the same
    engine, serving = serve(Path(str(site.engine.url.database)), site.fake)
    with serving as url:
        again = SlackSite(url, site.fake, engine, DeliveryStore(engine))
        assert "on, fri 17:30 Europe/Berlin" in flat(again.reply("settings"))
    assert "Unsubscribed from the weekly digest" in flat(site.reply("unsubscribe weekly"))
    assert "Unsubscribed from everything" in flat(site.reply("unsubscribe"))
    gone = site.store.destination(name)
    assert gone is not None and not gone.enabled and gone.disabled_reason == UNSUBSCRIBED
    assert "Subscribed" in flat(site.reply("subscribe daily"))
    back = site.store.destination(name)
    assert back is not None and back.enabled


def test_a_configured_channel_is_not_changed_from_chat(original: Path, tmp_path: Path, fake: FakeSlack) -> None:
    database = tmp_path / "site.db"
    shutil.copy(original, database)
    settings = settings_for(fake).model_copy(
        update={"outputs": (SlackOutput(kind="slack", name="team-room", channel=CHANNEL),)}
    )
    engine, serving = serve(database, fake, settings)
    with serving as url:
        site = SlackSite(url, fake, engine, DeliveryStore(engine))
        text = flat(site.reply("subscribe daily"))
        assert "set in rankbot's configuration (output `team-room`)" in text
        assert "output `team-room`" in flat(site.reply("settings"))
        assert "Subscribed" in flat(site.reply("subscribe daily", channel="C0OTHER"))


def test_watch_and_unwatch_a_model(site: SlackSite) -> None:
    text = flat(site.reply("watch deepseek-1.0-flash"))
    assert "Watching DeepSeek 1.0 Flash (`deepseek/deepseek-1.0-flash-20260810`)" in text
    assert "Watching:* DeepSeek 1.0 Flash" in text
    destination = site.store.destination(f"slack:{TEAM}:{CHANNEL}")
    assert destination is not None and destination.enabled and not destination.subscription.daily
    assert destination.target["watch"] == ["deepseek/deepseek-1.0-flash-20260810"]
    assert "Several models match" in flat(site.reply("watch flash"))
    assert "No longer watching DeepSeek 1.0 Flash" in flat(site.reply("unwatch deepseek/deepseek-1.0-flash-20260810"))
    off = site.store.destination(f"slack:{TEAM}:{CHANNEL}")
    assert off is not None and not off.enabled  # watching nothing, subscribed to nothing


def test_model_names_are_escaped_in_replies(original: Path, tmp_path: Path, fake: FakeSlack) -> None:
    database = tmp_path / "site.db"
    shutil.copy(original, database)
    repo = Repository(open_database(f"sqlite:///{database}"))
    models = repo.models()
    top = repo.history()[-1].rows[0].permaslug
    renamed = replace(models[top], name=HOSTILE, author=HOSTILE)
    repo.replace_models([*(m for slug, m in models.items() if slug != top), renamed])
    engine, serving = serve(database, fake)
    with serving as url:
        site = SlackSite(url, fake, engine, DeliveryStore(engine))
        for command in ("", "week", "movers", f"model {top}", f"watch {top}", "settings"):
            reply = site.reply(command)
            for block in reply["blocks"]:
                block.pop("alt_text", None)  # plain text, which Slack never parses for mentions or links
            text = flat(reply)
            assert "<!channel>" not in text and "<https://evil" not in text, command
        assert "&lt;!channel&gt;" in flat(site.reply(f"model {top}"))
