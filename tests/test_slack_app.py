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
from sqlalchemy import Engine, select

from bot.config import Settings, WebConfig
from bot.config_chat import SlackConfig
from bot.config_outputs import SlackOutput
from bot.demo.fake_slack import FakeSlack
from bot.demo.generator import SyntheticHistory, generate_history
from bot.metrics import Metrics
from bot.slack.parts import slack_chat
from bot.web.app import WebParts, web_app
from bot.web.site import SiteData
from digests.model import DigestSettings
from storage.archive import Archive
from storage.chat import INSTALL
from storage.delivery import DeliveryStore
from storage.engine import open_database
from storage.outbox_rows import UNINSTALLED, UNSUBSCRIBED
from storage.repository import Repository
from tests.website import publish, serving_app, slow_once

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


class Stopped:
    """A clock that does not move, so a timestamp 299 s old is 299 s old however slow the machine is."""

    at = 1_796_000_000.0

    def now(self) -> float:
        return self.at


@pytest.mark.parametrize(
    ("timestamp", "offset", "status"),
    [(None, -299, 200), (None, -301, 401), (None, 301, 401), ("", 0, 401), ("abc", 0, 401), ("1e9", 0, 401)],
)
def test_timestamps_within_five_minutes_verify(
    original: Path, tmp_path: Path, fake: FakeSlack, timestamp: str | None, offset: int, status: int
) -> None:
    database = tmp_path / "site.db"
    shutil.copy(original, database)
    engine, serving = serve(database, fake, clock=Stopped())
    body = command_body(fake, "top 3")
    stamp = timestamp if timestamp is not None else str(int(Stopped.at) + offset)
    headers = signed(body, timestamp=stamp)
    if timestamp == "":
        del headers["X-Slack-Request-Timestamp"]
    with serving as url:
        assert SlackSite(url, fake, engine, DeliveryStore(engine)).post(body, headers).status_code == status


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


# -- slow answers, response_url, retries, sharing ---------------------------------------------------------------


def wait_for(condition: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_slow_data_layer_is_acknowledged_at_once_and_answered_through_response_url(site: SlackSite) -> None:
    slow_once(site.engine, 5.0)
    body = command_body(site.fake, "week", response_url=site.fake.response_url("slow"))
    started = time.monotonic()
    response = site.post(body)
    acknowledged = time.monotonic() - started
    assert response.status_code == 200 and response.text == "" and acknowledged < 1.0
    wait_for(lambda: any(name == "slow" for name, _ in site.fake.responses))
    [(_, answer)] = [item for item in site.fake.responses if item[0] == "slow"]
    assert answer["response_type"] == "ephemeral" and "Top 10 on OpenRouter — the week" in answer["text"]
    assert "Source days" in flat(answer) and "CC BY 4.0" in flat(answer)


def test_a_response_url_on_another_host_is_refused_without_a_request(
    site: SlackSite, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeSlack() as elsewhere:
        slow_once(site.engine, 2.0)
        body = command_body(site.fake, "week", response_url=elsewhere.response_url("stolen"))
        assert site.post(body).status_code == 200
        wait_for(lambda: "refused a response_url outside" in caplog.text)
        time.sleep(0.2)
        assert elsewhere.responses == [] and elsewhere.calls == []


def share_body(site: SlackSite, value: str, trigger: str, user: str = "UUSER") -> bytes:
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "fake"},
        "user": {"id": user, "name": user.lower(), "team_id": TEAM},
        "channel": {"id": CHANNEL, "name": "rankings"},
        "api_app_id": "A0APP",
        "trigger_id": trigger,
        "response_url": site.fake.response_url("share"),
        "container": {"type": "message", "is_ephemeral": True},
        "actions": [
            {"type": "button", "action_id": "rankings_share", "block_id": "b1", "value": value, "action_ts": "1.2"}
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_share_to_channel_posts_the_answer_once_with_who_shared_it_even_when_retried(site: SlackSite) -> None:
    reply = site.reply("top 3", "UUSER")
    button = next(b for b in reply["blocks"] if b["type"] == "actions")["elements"][0]
    assert button["value"] == "top 3"
    body = share_body(site, button["value"], "trigger-share-1")
    assert site.post(body).status_code == 200
    assert (
        site.post(body, {**signed(body), "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "timeout"}).status_code
        == 200
    )
    wait_for(lambda: len([r for n, r in site.fake.responses if n == "share"]) >= 2)
    time.sleep(0.3)
    answers = [r for n, r in site.fake.responses if n == "share"]
    shared = [r for r in answers if r.get("response_type") == "in_channel"]
    assert len(shared) == 1 and [r for r in answers if r.get("delete_original")] == [{"delete_original": True}]
    text = flat(shared[0])
    assert "Shared by uuser with `/rankings`" in text and "Top 3 on OpenRouter" in text
    assert "rankings_share" not in text  # the shared copy has no button
    assert "CC BY 4.0" in text and "data as of" in text


def event_body(kind: str, team: str = TEAM, event_id: str = "Ev0001", **event_fields: Any) -> bytes:
    return json.dumps(
        {
            "token": "unused",
            "team_id": team,
            "api_app_id": "A0APP",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": {"type": kind, **event_fields},
        }
    ).encode()


def post_json(site: SlackSite, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{site.url}/slack/events",
        content=body,
        headers={"Content-Type": "application/json", **signed(body), **headers},
        timeout=30,
    )


def test_url_verification_answers_the_challenge(site: SlackSite) -> None:
    body = json.dumps({"type": "url_verification", "token": "x", "challenge": "c-123"}).encode()
    response = post_json(site, body)
    assert response.status_code == 200 and "c-123" in response.text


def test_an_uninstall_disables_the_workspaces_channels_once_even_when_retried(site: SlackSite) -> None:
    site.reply("subscribe daily")
    site.reply("subscribe weekly", channel="C0SECOND")
    body = event_body("app_uninstalled")
    assert post_json(site, body).status_code == 200
    assert post_json(site, body, **{"X-Slack-Retry-Num": "1"}).status_code == 200
    wait_for(lambda: all(not d.enabled for d in site.store.destinations() if d.origin == "slack"))
    disabled = [d for d in site.store.destinations() if d.origin == "slack"]
    assert len(disabled) == 2 and {d.disabled_reason for d in disabled} == {UNINSTALLED}
    _, notices = site.store.dead_or_disabled()
    assert notices == []  # an uninstall is someone's choice: no operator notice


# -- digests and watch alerts to channels subscribed from chat ---------------------------------------------------
async def test_a_channel_subscribed_from_chat_gets_its_digest_with_the_chart_once_and_its_watch_alerts(
    site: SlackSite,
) -> None:
    import random

    from bot.outbox import OutboxWorker
    from bot.planner import Planner
    from bot.publishers.registry import Publishers, publisher_factories
    from bot.slack.parts import publisher_factory
    from digests.delivery import DeliveryState, RetrySchedule
    from digests.model import DaySnapshot

    repo = Repository(site.engine)
    latest = repo.history()[-1]
    leader = latest.rows[0].permaslug
    site.reply("subscribe daily")
    site.reply(f"watch {leader}")
    site.reply("settings jump 1")
    swapped = [(row.permaslug, row.tokens) for row in latest.rows]
    swapped[0], swapped[1] = (swapped[0][0], swapped[1][1] // 2), (swapped[1][0], swapped[0][1])
    new_day = latest.day + timedelta(days=1)
    as_of = datetime.combine(new_day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    repo.add_day(DaySnapshot.of(new_day, [*swapped, ("other", latest.other_tokens or 0)], as_of))
    planner = Planner(repo, site.store, DigestSettings(), charts=Archive(site.engine))
    for _ in range(2):  # planning twice queues nothing twice
        planner.plan(as_of + timedelta(hours=1))
    settings = settings_for(site.fake)
    factory = publisher_factory(settings, {"SLACK_BOT_TOKEN": site.fake.token}, site.engine)
    async with httpx.AsyncClient(trust_env=False) as http:
        worker = OutboxWorker(
            site.store,
            Publishers(publisher_factories(http, {"slack": factory}), {}),
            RetrySchedule(attempts=3, base=1.0, cap=5.0),
            name="worker",
            rng=random.Random(1),
        )
        first = await worker.drain()
        again = await worker.drain()
    assert first.sent >= 2 and again.handled == 0  # (the site's console destination gets its copies too)
    assert len(site.fake.in_channel(CHANNEL)) == 2
    digest_post, watch_post = sorted(site.fake.in_channel(CHANNEL), key=lambda p: "Watched" in p.text)
    assert any(b["type"] == "image" and b["image_url"].startswith(f"{PUBLIC}/charts/day:") for b in digest_post.blocks)
    assert f"Source day {new_day}" in flat({"b": digest_post.blocks})
    assert "Watched models on OpenRouter" in watch_post.text and " places: #1 → #" in watch_post.text
    assert "Source: OpenRouter (openrouter.ai/rankings)" in watch_post.text
    ours = [e for e in site.store.entries() if e.destination == f"slack:{TEAM}:{CHANNEL}"]
    assert len(ours) == 2 and all(e.state is DeliveryState.SENT for e in ours)


# -- OAuth installs --------------------------------------------------------------------------------------------
def test_an_oauth_install_stores_the_token_sealed_and_an_uninstall_removes_it(
    original: Path, tmp_path: Path, fake: FakeSlack
) -> None:
    from cryptography.fernet import Fernet

    from bot.slack.parts import slack_parts

    database = tmp_path / "site.db"
    shutil.copy(original, database)
    key = Fernet.generate_key().decode()
    environ = {
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_CLIENT_ID": "111.222",
        "SLACK_CLIENT_SECRET": "client-secret",
        "RANKBOT_SLACK_TOKEN_KEY": key,
    }
    settings = settings_for(fake, client_id_env="SLACK_CLIENT_ID", client_secret_env="SLACK_CLIENT_SECRET")
    assert settings.slack_problems(environ) == []
    token = "xoxb-installed-T0NEW"
    fake.oauth_codes["code-1"] = {
        "access_token": token,
        "token_type": "bot",
        "scope": "commands,chat:write",
        "bot_user_id": "UBOT",
        "app_id": "A0APP",
        "team": {"id": "T0NEW", "name": "New team"},
        "enterprise": None,
        "is_enterprise_install": False,
        "authed_user": {"id": "UINSTALLER"},
    }
    engine, serving = serve(database, fake, settings, environ)
    with serving as url:
        install = httpx.get(f"{url}/slack/install", timeout=30)
        assert install.status_code == 200 and "client_id=111.222" in install.text
        state = install.text.split("state=")[1].split("&")[0].split('"')[0]
        cookie = install.headers["set-cookie"].split(";")[0]
        finished = httpx.get(
            f"{url}/slack/oauth_redirect", params={"code": "code-1", "state": state}, headers={"Cookie": cookie}
        )
        assert finished.status_code == 200, finished.text
        with engine.connect() as connection:
            [row] = connection.execute(select(INSTALL)).mappings().all()
        assert row["team_id"] == "T0NEW" and token.encode() not in row["sealed"]
        clients = slack_parts(settings, environ, engine).clients
        assert clients.token({"team": "T0NEW", "channel": "C1"}) == token
        site = SlackSite(url, fake, engine, DeliveryStore(engine))
        body = command_body(fake, "subscribe daily", team_id="T0NEW", channel_id="C0NEWCHAN")
        assert "Subscribed" in flat(site.post(body).json())
        assert any(call == "users.info" for call, _ in fake.calls)
        replay = httpx.get(f"{url}/slack/oauth_redirect", params={"code": "code-1", "state": state})
        assert replay.status_code != 200  # a state is good once
        assert post_json(site, event_body("app_uninstalled", team="T0NEW", event_id="Ev9")).status_code == 200
        wait_for(lambda: not DeliveryStore(engine).destination("slack:T0NEW:C0NEWCHAN").enabled)  # type: ignore[union-attr]
        with engine.connect() as connection:
            assert connection.execute(select(INSTALL)).all() == []
        with pytest.raises(Exception, match="not installed in the Slack workspace T0NEW"):
            clients.token({"team": "T0NEW", "channel": "C1"})


# -- Socket Mode -----------------------------------------------------------------------------------------------
async def test_socket_mode_answers_the_same_commands_and_reconnects_after_a_drop(
    original: Path, tmp_path: Path, fake: FakeSlack
) -> None:
    import asyncio

    from bot.demo.fake_socket_mode import FakeSocketMode

    database = tmp_path / "site.db"
    shutil.copy(original, database)
    engine = open_database(f"sqlite:///{database}")
    environ = {"SLACK_BOT_TOKEN": fake.token, "SLACK_APP_TOKEN": "xapp-test"}
    settings = settings_for(fake)
    assert settings.slack_problems(environ) == []  # no signing secret needed over Socket Mode
    data = SiteData(Repository(engine), Archive(engine), DigestSettings())
    chat = slack_chat(settings, environ, engine, data)
    stopping = asyncio.Event()
    async with FakeSocketMode() as socket:
        fake.socket_url = socket.url
        running = asyncio.create_task(chat.socket_mode("xapp-test", stopping))
        try:
            async with asyncio.timeout(20):
                await socket.connected(1)
                form = dict(item.split("=", 1) for item in command_body(fake, "PLACEHOLDER").decode().split("&"))
                payload = {key: httpx.QueryParams(f"v={value}")["v"] for key, value in form.items()}
                top = await socket.send("slash_commands", {**payload, "text": "top 5"})
                assert "Top 5 on OpenRouter — the day" in flat(top["payload"])
                assert top["payload"]["response_type"] == "ephemeral"
                await socket.drop()
                await socket.connected(2)  # slack_sdk opened a new connection (apps.connections.open again)
                changed = await socket.send("slash_commands", {**payload, "text": "subscribe weekly"})
                assert "Subscribed: this channel gets the weekly digest" in flat(changed["payload"])
                refused = await socket.send("slash_commands", {**payload, "text": "unsubscribe", "user_id": "UUSER"})
                assert "Only a workspace admin or owner" in flat(refused["payload"])
        finally:
            stopping.set()
            await running
    assert fake.socket_opens >= 2
    destination = DeliveryStore(engine).destination(f"slack:{TEAM}:{CHANNEL}")
    assert destination is not None and destination.subscription.weekly


def test_settings_say_why_a_channel_is_not_posted_to(site: SlackSite) -> None:
    site.reply("subscribe daily")
    reason = "Slack answered not_in_channel: the app is not in the channel: /invite it, or give it chat:write.public"
    site.store.disable_destination(f"slack:{TEAM}:{CHANNEL}", reason)
    assert f"Not posting:* {reason}" in site.reply("settings", "UUSER")["blocks"][0]["text"]["text"]
    assert "Subscribed" in flat(site.reply("subscribe daily"))  # subscribing again (after /invite) turns it back on
    back = site.store.destination(f"slack:{TEAM}:{CHANNEL}")
    assert back is not None and back.enabled


@pytest.mark.parametrize("name", ["manifest.yml", "manifest.socket-mode.yml"])
def test_the_app_manifests_ask_for_what_the_app_uses(name: str) -> None:
    import yaml

    from bot.slack.app import COMMAND, SCOPES

    manifest = yaml.safe_load((Path(__file__).parent.parent / "slack" / name).read_text())
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == COMMAND and command["should_escape"] is False
    assert tuple(manifest["oauth_config"]["scopes"]["bot"]) == SCOPES
    settings = manifest["settings"]
    assert set(settings["event_subscriptions"]["bot_events"]) == {"app_uninstalled", "tokens_revoked"}
    assert settings["interactivity"]["is_enabled"] is True
    socket = name == "manifest.socket-mode.yml"
    assert settings["socket_mode_enabled"] is socket
    urls = [
        command.get("url"),
        settings["event_subscriptions"].get("request_url"),
        settings["interactivity"].get("request_url"),
    ]
    if socket:
        assert urls == [None, None, None]
    else:
        assert all(url is not None and url.endswith("/slack/events") for url in urls)
        assert manifest["oauth_config"]["redirect_urls"][0].endswith("/slack/oauth_redirect")


# -- rankbot run -----------------------------------------------------------------------------------------------
def test_rankbot_run_serves_the_slack_endpoint_and_refuses_to_start_without_its_signing_secret(
    generated: SyntheticHistory, original: Path, tmp_path: Path, fake: FakeSlack
) -> None:
    from bot.demo.server import FakeOpenRouter
    from tests.processes import finish, free_port, health, start, stop, write_config
    from tests.processes import wait_for as wait_until

    database = tmp_path / "site.db"
    shutil.copy(original, database)
    today = generated.days[-1].day + timedelta(days=1)
    with FakeOpenRouter(generated.days, generated.catalogue, today=today, api_key=None) as openrouter:
        port = free_port()
        config = write_config(
            tmp_path / "config.toml", openrouter=openrouter.url, database_url=f"sqlite:///{database}", port=port,
            outputs=[],
        )  # fmt: skip
        with config.open("a") as text:
            text.write(f'[slack]\napi_url = "{fake.api_url}"\nhooks_url = "{fake.url}/response/"\n')
        code, _, err = finish(config, "run", cwd=tmp_path, env={"SLACK_BOT_TOKEN": fake.token})
        assert code != 0 and "needs the signing secret: set the environment variable SLACK_SIGNING_SECRET" in err
        process = start(
            config, "run", cwd=tmp_path, env={"SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": SECRET}
        )
        try:
            wait_until(lambda: health(port).get("latest_day"), what="rankbot run")
            site = SlackSite(f"http://127.0.0.1:{port}", fake, None, None)  # type: ignore[arg-type]
            reply = site.reply("week")
            assert "Top 10 on OpenRouter — the week" in flat(reply) and "CC BY 4.0" in flat(reply)
            assert "Subscribed" in flat(site.reply("subscribe weekly"))
            assert site.command("top 3", **{"trigger_id": "x"}).status_code == 200
            assert site.post(command_body(fake, "top 3"), {"X-Slack-Signature": "v0=00"}).status_code == 401
        finally:
            code, log = stop(process)
        assert code == 0, log
        assert SECRET not in log and fake.token not in log
    destination = DeliveryStore(open_database(f"sqlite:///{database}")).destination(f"slack:{TEAM}:{CHANNEL}")
    assert destination is not None and destination.subscription.weekly


def test_a_known_answer_is_the_same_from_memory_and_follows_a_new_day(site: SlackSite) -> None:
    from digests.model import DaySnapshot

    first = site.command("top 3")  # worked out through bolt, then kept
    again = site.command("top 3")  # served from memory
    assert first.json() == again.json() and again.headers["content-type"].startswith("application/json")
    other_team = site.post(command_body(site.fake, "top 3", team_id="T0OTHER"))
    assert other_team.json() == first.json()  # (bolt authorized it; a single-workspace token answers any team)
    repo = Repository(site.engine)
    latest = repo.history()[-1]
    new_day = latest.day + timedelta(days=1)
    as_of = datetime.combine(new_day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    repo.add_day(DaySnapshot.of(new_day, [*((r.permaslug, r.tokens) for r in latest.rows), ("other", 1)], as_of))
    wait_for(lambda: f"Source day {new_day} (UTC, complete)" in flat(site.command("top 3").json()), 10)
