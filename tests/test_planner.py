"""The planner on SQLite and PostgreSQL, on an injected clock: the baseline, daily alerts and quiet-day policies,
weekly digests with catch-up after downtime, corrections after restatements, overlapping ticks, operator notices."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from bot.demo.generator import SyntheticHistory
from bot.planner import Planner, check_operations, expected_day, last_fire
from digests.delivery import Destination, Subscription, Variant
from digests.model import DaySnapshot, DigestSettings
from storage.delivery import DeliveryStore
from storage.engine import engine_for
from storage.repository import Repository
from storage.service_state import ServiceState
from tests.conftest import Clock, run_together

SUBSCRIBERS = [
    Destination("everything", "console", {}, Subscription(notable_only=False)),
    Destination("notable", "console", {}, Subscription()),
    Destination("quiet-line", "console", {}, Subscription(quiet_day="line")),
    Destination("weekly-only", "console", {}, Subscription(daily=False)),
    Destination("daily-only", "console", {}, Subscription(weekly=False)),
]


def redated(snapshot: DaySnapshot, day: date, swap: tuple[int, int] | None = None) -> DaySnapshot:
    """``snapshot``'s rows on ``day`` (a quiet day: nothing moved), or with the tokens of two ranks swapped."""
    rows = [(row.permaslug, row.tokens) for row in snapshot.rows]
    if swap is not None:
        a, b = swap
        rows[a], rows[b] = (rows[a][0], rows[b][1]), (rows[b][0], rows[a][1])
    as_of = datetime.combine(day + timedelta(days=1), time(0, 30), tzinfo=UTC)
    return DaySnapshot.of(day, [*rows, ("other", snapshot.other_tokens or 0)], as_of)


def recipients(store: DeliveryStore, message_id: str) -> dict[str, Variant]:
    return dict(store.recipients(message_id))


def setup(repo: Repository, store: DeliveryStore, history: SyntheticHistory, clock: Clock) -> Planner:
    repo.add_days(history.days, "api")
    store.sync_destinations(SUBSCRIBERS)
    planner = Planner(repo, store, DigestSettings())
    assert planner.plan(clock.now).queued == []  # the first run is the baseline
    return planner


def test_the_first_run_publishes_nothing_for_past_days(
    repo: Repository, store: DeliveryStore, history: SyntheticHistory, clock: Clock
) -> None:
    planner = setup(repo, store, history, clock)
    clock.advance(days=2)  # a restart before the weekly time: still nothing
    report = planner.plan(clock.now)
    assert report.baseline == history.days[-1].day
    assert report.queued == [] and store.messages() == []


def test_a_new_day_goes_to_daily_subscribers_by_their_quiet_day_policy(
    repo: Repository, store: DeliveryStore, history: SyntheticHistory, clock: Clock
) -> None:
    planner = setup(repo, store, history, clock)
    last = history.days[-1]
    quiet = redated(last, last.day + timedelta(days=1))
    repo.add_day(quiet)
    notable = redated(quiet, quiet.day + timedelta(days=1), swap=(0, 4))
    repo.add_day(notable)
    report = planner.plan(clock.now)
    quiet_id, notable_id = f"day:{quiet.day}:r1", f"day:{notable.day}:r1"
    assert report.queued == [quiet_id, notable_id]
    messages = {m.id: m for m in store.messages()}
    assert not messages[quiet_id].notable and messages[notable_id].notable
    assert "a quiet day — no notable moves in the top 10" in messages[quiet_id].line["text"]
    assert recipients(store, quiet_id) == {"everything": Variant.FULL, "quiet-line": Variant.LINE}
    assert recipients(store, notable_id) == {
        "everything": Variant.FULL,
        "notable": Variant.FULL,
        "quiet-line": Variant.FULL,
        "daily-only": Variant.FULL,
    }
    assert planner.plan(clock.now).queued == []


def test_overlapping_ticks_for_the_same_day_produce_one_digest(
    repo: Repository, store: DeliveryStore, history: SyntheticHistory, clock: Clock
) -> None:
    setup(repo, store, history, clock)
    new = redated(history.days[-1], history.days[-1].day + timedelta(days=1), swap=(0, 3))
    repo.add_day(new)
    url = repo.engine.url.render_as_string(hide_password=False)
    queued: list[list[str]] = []

    def tick() -> None:
        engine = engine_for(url)
        try:
            planner = Planner(Repository(engine), DeliveryStore(engine, now=clock), DigestSettings())
            queued.append(planner.plan(clock.now).queued)
        finally:
            engine.dispose()

    run_together(4, tick)
    message_id = f"day:{new.day}:r1"
    assert [m.id for m in store.messages()] == [message_id]
    assert sorted(len(names) for names in queued) == [0, 0, 0, 1]
    assert len(store.recipients(message_id)) == 4


def publish_until(repo: Repository, history: SyntheticHistory, last: date) -> None:
    """The source publishes complete days after the history's last one, through ``last`` (quiet copies)."""
    day = history.days[-1].day + timedelta(days=1)
    while day <= last:
        repo.add_day(redated(history.days[-1], day))
        day += timedelta(days=1)


def weeks(report_queued: list[str]) -> list[str]:
    return [message_id for message_id in report_queued if message_id.startswith("week:")]


def test_the_weekly_digest_catches_up_once_after_downtime(
    repo: Repository, store: DeliveryStore, history: SyntheticHistory, clock: Clock
) -> None:
    """Down across Monday 09:00 UTC and back on Wednesday, after two more days were published: the firing's week
    (the 7 days ending Sunday) goes out once, and the later days do not make a second, different weekly digest."""
    planner = setup(repo, store, history, clock)  # Friday 2026-11-20 12:00 UTC
    publish_until(repo, history, date(2026, 11, 22))
    clock.now = datetime(2026, 11, 23, 8, 59, tzinfo=UTC)
    assert weeks(planner.plan(clock.now).queued) == []
    publish_until(repo, history, date(2026, 11, 24))  # the service was down; its first poll stores Mon and Tue
    clock.now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    week = "week:2026-11-16_2026-11-22:r1"
    assert weeks(planner.plan(clock.now).queued) == [week]
    assert recipients(store, week) == dict.fromkeys(
        ("everything", "notable", "quiet-line", "weekly-only"), Variant.FULL
    )
    clock.advance(minutes=5)
    assert planner.plan(clock.now).queued == []
    clock.advance(days=2)  # restarts later in the week change nothing
    assert planner.plan(clock.now).queued == []
    assert [m.id for m in store.messages(kind="week")] == [week]


def test_a_weekly_digest_waits_for_a_last_day_that_arrives_after_the_cron(
    repo: Repository, store: DeliveryStore, history: SyntheticHistory, clock: Clock
) -> None:
    planner = setup(repo, store, history, clock)
    publish_until(repo, history, date(2026, 11, 21))
    clock.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # the cron fires; Sunday 2026-11-22 is not complete yet
    assert weeks(planner.plan(clock.now).queued) == []
    clock.now = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
    publish_until(repo, history, date(2026, 11, 22))
    assert weeks(planner.plan(clock.now).queued) == ["week:2026-11-16_2026-11-22:r1"]
    [message] = store.messages(kind="week")
    assert "not yet complete" not in message.full["text"]
    assert "Source days 2026-11-16 → 2026-11-22 (UTC, complete)" in message.full["text"]


def test_a_week_whose_last_day_is_later_than_the_grace_goes_out_with_what_is_complete_and_says_so(
    repo: Repository, store: DeliveryStore, history: SyntheticHistory, clock: Clock
) -> None:
    planner = Planner(repo, store, DigestSettings(), late_grace=timedelta(hours=6))
    repo.add_days(history.days, "api")
    store.sync_destinations(SUBSCRIBERS)
    assert planner.plan(clock.now).queued == []
    publish_until(repo, history, date(2026, 11, 21))
    clock.now = datetime(2026, 11, 23, 14, 59, tzinfo=UTC)
    assert weeks(planner.plan(clock.now).queued) == []
    clock.now = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    week = "week:2026-11-16_2026-11-22:r1"
    assert weeks(planner.plan(clock.now).queued) == [week]
    message = store.message(week)
    assert message is not None
    assert (
        "Source days 2026-11-16 → 2026-11-22 (UTC); 2026-11-22 not yet complete when this digest was published: "
        "figures cover the 6 complete days" in message.full["text"]
    )
    assert "tokens over 6 days" in message.full["text"]
    publish_until(repo, history, date(2026, 11, 22))  # it arrives at last: no second weekly digest
    clock.advance(hours=1)
    assert weeks(planner.plan(clock.now).queued) == []


def test_each_destination_keeps_its_own_cron_and_time_zone(
    repo: Repository, store: DeliveryStore, history: SyntheticHistory, clock: Clock
) -> None:
    planner = setup(repo, store, history, clock)
    publish_until(repo, history, date(2026, 11, 22))
    store.sync_destinations(
        [Destination("new-york", "console", {}, Subscription(daily=False, timezone="America/New_York"))]
    )
    clock.now = datetime(2026, 11, 23, 13, 59, tzinfo=UTC)  # 08:59 in New York
    planner.plan(clock.now)
    week = "week:2026-11-16_2026-11-22:r1"
    assert "new-york" not in recipients(store, week)
    clock.now = datetime(2026, 11, 23, 14, 1, tzinfo=UTC)
    assert weeks(planner.plan(clock.now).queued) == [week]
    assert "new-york" in recipients(store, week)


def test_a_destination_added_after_the_weekly_time_waits_for_the_next_one(
    repo: Repository, store: DeliveryStore, history: SyntheticHistory, clock: Clock
) -> None:
    planner = setup(repo, store, history, clock)
    clock.now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    store.sync_destinations([*SUBSCRIBERS, Destination("late-joiner", "console", {}, Subscription())])
    publish_until(repo, history, date(2026, 11, 22))
    planner.plan(clock.now)
    assert "late-joiner" not in recipients(store, "week:2026-11-16_2026-11-22:r1")
    assert "notable" in recipients(store, "week:2026-11-16_2026-11-22:r1")


def test_a_restatement_that_changes_a_published_rank_queues_one_correction(
    repo: Repository, store: DeliveryStore, history: SyntheticHistory, clock: Clock
) -> None:
    planner = setup(repo, store, history, clock)
    new = redated(history.days[-1], history.days[-1].day + timedelta(days=1), swap=(0, 3))
    repo.add_day(new)
    planner.plan(clock.now)
    published = f"day:{new.day}:r1"
    slight = DaySnapshot.of(
        new.day, [(r.permaslug, r.tokens + 1) for r in new.rows], new.as_of + timedelta(hours=1)
    )  # figures change, ranks do not
    repo.add_day(slight)
    assert planner.plan(clock.now).corrections == []
    reordered = redated(slight, new.day, swap=(1, 2))
    repo.add_day(reordered)
    report = planner.plan(clock.now)
    assert report.corrections == [f"day:{new.day}:r3"]
    correction = store.message(f"day:{new.day}:r3")
    assert correction is not None and correction.corrects == published
    assert correction.title.startswith("Correction — ")
    assert correction.full["text"].startswith(f"Correction: OpenRouter restated figures for day {new.day}")
    assert dict(store.recipients(correction.id)) == {
        name: Variant.FULL for name, variant in store.recipients(published) if variant is Variant.FULL
    }
    assert planner.plan(clock.now).corrections == []


def test_last_fire_is_the_latest_cron_time_not_after_now() -> None:
    monday_nine = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert last_fire("0 9 * * mon", "UTC", monday_nine) == monday_nine
    assert last_fire("0 9 * * mon", "UTC", monday_nine - timedelta(seconds=1)) == monday_nine - timedelta(days=7)
    assert last_fire("30 8 * * *", "Europe/Berlin", monday_nine) == datetime(2026, 11, 23, 7, 30, tzinfo=UTC)


def test_expected_day_allows_the_grace() -> None:
    at = time(1, 0)
    grace = timedelta(hours=6)
    assert expected_day(datetime(2026, 11, 20, 6, 59, tzinfo=UTC), at, grace) == date(2026, 11, 18)
    assert expected_day(datetime(2026, 11, 20, 7, 0, tzinfo=UTC), at, grace) == date(2026, 11, 19)


def test_a_late_day_raises_one_notice_and_resolves_when_it_arrives(
    repo: Repository, store: DeliveryStore, history: SyntheticHistory, clock: Clock
) -> None:
    ops = Destination("ops", "console", {}, Subscription(daily=False, weekly=False, notices=True))
    setup(repo, store, history, clock)
    store.sync_destinations([*SUBSCRIBERS, ops])
    clock.now = datetime(2026, 11, 21, 7, 1, tzinfo=UTC)  # 2026-11-20 was due by 01:00 + 6 h
    report = check_operations(repo, store, clock.now, time(1, 0), timedelta(hours=6))
    assert report.raised == ["late:2026-11-20"]
    [notice] = store.messages(kind="notice")
    assert "no complete day for 2026-11-20 yet" in notice.full["text"]
    assert dict(store.recipients(notice.id)) == {"ops": Variant.FULL}
    clock.advance(minutes=30)
    assert check_operations(repo, store, clock.now, time(1, 0), timedelta(hours=6)).raised == []
    assert [n.key for n in ServiceState(store.engine).open_notices()] == ["late:2026-11-20"]
    repo.add_day(redated(history.days[-1], date(2026, 11, 20)))
    check_operations(repo, store, clock.now, time(1, 0), timedelta(hours=6))
    assert ServiceState(store.engine).open_notices() == []


def test_a_restatement_of_the_comparison_day_that_changes_what_was_shown_queues_a_correction(
    repo: Repository, store: DeliveryStore, history: SyntheticHistory, clock: Clock
) -> None:
    """The day digest shows each model's previous rank (▲/▼): when the source restates the day it was compared
    with and those ranks change, the published digest is corrected like a restatement of its own day."""
    planner = setup(repo, store, history, clock)
    before = history.days[-1]
    new = redated(before, before.day + timedelta(days=1), swap=(0, 3))
    repo.add_day(new)
    planner.plan(clock.now)
    published = f"day:{new.day}:r1"
    assert store.message(published) is not None
    repo.add_day(redated(before, before.day, swap=(5, 6)))  # the comparison day restated: #6 and #7 swap
    report = planner.plan(clock.now)
    assert report.corrections == [f"day:{new.day}:r2"]
    correction = store.message(f"day:{new.day}:r2")
    assert correction is not None and correction.corrects == published
    assert "Revised (revision 2): " + before.day.isoformat() + " restated on" in correction.full["text"]
    assert planner.plan(clock.now).corrections == []
