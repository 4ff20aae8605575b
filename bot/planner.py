"""What to publish, asked of the database every time: the planner is idempotent, so a scheduler tick, a restart
after hours down, or two overlapping ticks all queue each digest exactly once (the outbox's unique key makes the
second queueing a no-op).

- **Baseline:** the first plan on a database records the latest stored day and the time; nothing before is published.
- **Daily:** each stored day after the baseline without a day message gets one, queued to daily subscribers (a quiet
  day: skipped or one line, per destination).
- **Weekly:** for each weekly subscriber, the latest time its cron fired (in its time zone) after it subscribed and
  after the baseline. The firing fixes the week: the 7 days ending the day before it (UTC), whatever is stored when
  the planner runs, so one firing gives one weekly digest per destination however late the planner runs. If that
  last day is not complete yet, the digest waits for it up to ``late_grace``, then goes out with the days that are
  complete and says so.
- **Corrections:** a restatement of a day a published digest depends on (its period, or the period it was compared
  with) that changes what it showed (ranks, previous ranks, drop-outs, alerts) queues one correction (the next
  revision) to the same destinations.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from digests.commands import ChannelPrefs
from digests.delivery import Destination, Message, Variant, variant_for
from digests.digest import WEEK_DAYS, Digest, build_digest
from digests.messages import message_for, notice_message, same_as_published
from digests.model import DaySnapshot, DigestSettings, ModelInfo
from digests.names import display_name, model_info
from digests.watch import watch_alerts, watch_message
from storage.archive import Archive
from storage.delivery import DeliveryStore
from storage.repository import Repository
from storage.service_state import ServiceState

log = logging.getLogger(__name__)

BASELINE_DAY = "baseline_day"
BASELINE_AT = "baseline_at"
CORRECTION_WINDOW_DAYS = 21
WATCH_LOOKBACK_DAYS = 3
"""Watch alerts are for the latest few days only: a planner that was down for a week does not send a week of them."""


@dataclass
class PlanReport:
    baseline: date | None = None
    queued: list[str] = field(default_factory=list)
    """Message ids that got at least one new outbox row."""
    corrections: list[str] = field(default_factory=list)


def last_fire(cron: str, timezone: str, now: datetime) -> datetime | None:
    """The latest time ``cron`` fired in ``timezone`` at or before ``now`` (looking back 8 days)."""
    trigger = CronTrigger.from_crontab(cron, timezone=ZoneInfo(timezone))
    moment = now - timedelta(days=8)
    fired: datetime | None = None
    previous: datetime | None = None
    while True:
        upcoming = trigger.get_next_fire_time(previous, moment)
        if upcoming is None or upcoming > now:
            return fired
        fired, previous, moment = upcoming, upcoming, upcoming + timedelta(microseconds=1)


class _History:
    """Stored days and the catalogue, loaded once per plan and only if a digest must be built."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._days: tuple[DaySnapshot, ...] | None = None
        self._models: dict[str, ModelInfo] | None = None

    @property
    def days(self) -> tuple[DaySnapshot, ...]:
        if self._days is None:
            self._days = self.repo.history()
        return self._days

    @property
    def models(self) -> dict[str, ModelInfo]:
        if self._models is None:
            self._models = self.repo.models()
        return self._models


class Planner:
    def __init__(
        self,
        repo: Repository,
        store: DeliveryStore,
        settings: DigestSettings,
        late_grace: timedelta = timedelta(hours=6),
        charts: Archive | None = None,
    ) -> None:
        self.repo = repo
        self.store = store
        self.state = ServiceState(store.engine, store.now)
        self.settings = settings
        self.late_grace = late_grace
        """How long a weekly digest waits after its cron fired for the week's last day (``late_grace_hours``)."""
        self.charts = charts
        """Where each new digest's charts are stored for the web archive (``None``: no charts are drawn)."""

    def plan(self, now: datetime) -> PlanReport:
        report = PlanReport()
        stored = self.repo.stored_days()
        if not stored:
            return report
        self.state.set_state(BASELINE_DAY, stored[-1].isoformat(), only_if_absent=True)
        self.state.set_state(BASELINE_AT, now.astimezone(UTC).isoformat(), only_if_absent=True)
        baseline = date.fromisoformat(self.state.state(BASELINE_DAY))
        baseline_at = datetime.fromisoformat(self.state.state(BASELINE_AT))
        report.baseline = baseline
        destinations = self.store.destinations(enabled_only=True)
        history = _History(self.repo)
        self._daily(stored, baseline, destinations, history, report)
        self._watches(stored, baseline, destinations, history, report)
        self._weekly(stored, baseline_at, destinations, history, now, report)
        self._corrections(stored, history, report)
        return report

    def _queue(
        self,
        message: Message,
        recipients: Sequence[tuple[str, Variant]],
        report: PlanReport,
        digest: Digest | None = None,
        history: _History | None = None,
    ) -> None:
        if self.store.queue(message, recipients) and message.id not in report.queued:
            report.queued.append(message.id)
        if (
            self.charts is not None
            and digest is not None
            and history is not None
            and not self.charts.chart_alts(digest.id)
        ):
            from digests.render.charts import digest_charts  # matplotlib only where charts are drawn

            self.charts.save_charts(digest.id, digest_charts(digest, history.days, history.models))

    def _daily(
        self,
        stored: Sequence[date],
        baseline: date,
        destinations: Sequence[Destination],
        history: _History,
        report: PlanReport,
    ) -> None:
        have = {m.last_day for m in self.store.messages("day", last_day_from=baseline)}
        for day in (d for d in stored if d > baseline and d not in have):
            digest = build_digest("day", history.days, history.models, self.settings, end=day)
            message = message_for(digest)
            recipients = [
                (d.name, variant)
                for d in destinations
                if (variant := variant_for(d.subscription, "day", message.notable)) is not None
            ]
            self._queue(message, recipients, report, digest, history)

    def _watches(
        self,
        stored: Sequence[date],
        baseline: date,
        destinations: Sequence[Destination],
        history: _History,
        report: PlanReport,
    ) -> None:
        """A channel's watch alerts (``/rankings watch``) for each day stored after its watch list last changed:
        one message per day and channel at most, and only when a watched model crossed the channel's top N or
        moved by its jump threshold."""
        watching = [(d, ChannelPrefs.of(d.target)) for d in destinations if d.target.get("watch")]
        if not watching:
            return
        queued = self.store.queued_destinations("watch")
        recent = [d for d in stored if d > baseline][-WATCH_LOOKBACK_DAYS:]
        by_day = {s.day: s for s in history.days if s.day >= stored[0]}
        ordered = sorted(by_day)
        for day in recent:
            position = ordered.index(day)
            if position == 0:
                continue
            today, previous = by_day[day], by_day[ordered[position - 1]]
            names = {slug: display_name(model_info(slug, history.models)) for slug in today.ranks()}
            for destination, prefs in watching:
                if destination.name in queued.get((day, day), set()):
                    continue
                if prefs.watch_since is not None and day <= prefs.watch_since:
                    continue
                for slug in prefs.watch:
                    names.setdefault(slug, display_name(model_info(slug, history.models)))
                alerts = watch_alerts(prefs.watch, today, previous, names, prefs.top, prefs.jump)
                if alerts:
                    self._queue(watch_message(today, alerts), [(destination.name, Variant.FULL)], report)

    def _weekly(
        self,
        stored: Sequence[date],
        baseline_at: datetime,
        destinations: Sequence[Destination],
        history: _History,
        now: datetime,
        report: PlanReport,
    ) -> None:
        """One weekly digest per cron firing: the 7 days ending the day before it fired (UTC). If that last day
        is not complete yet, wait for it up to ``late_grace`` after the firing, then publish what is complete."""
        queued = self.store.queued_destinations("week")
        have = set(stored)
        built: dict[date, tuple[Message, Digest]] = {}
        for destination in destinations:
            subscription = destination.subscription
            if not subscription.weekly:
                continue
            fired = last_fire(subscription.weekly_cron, subscription.timezone, now)
            since = max(baseline_at, destination.created_at or baseline_at)
            if fired is None or fired < since:
                continue
            end = fired.astimezone(UTC).date() - timedelta(days=1)
            first = end - timedelta(days=WEEK_DAYS - 1)
            if destination.name in queued.get((first, end), set()):
                continue
            if end not in have and now < fired + self.late_grace:
                continue  # the week's last day is late: wait for it
            if not any(first <= day <= end for day in have):
                log.warning("no stored day in %s → %s: no weekly digest for %s", first, end, destination.name)
                continue
            if end not in built:
                digest = build_digest("week", history.days, history.models, self.settings, end=end)
                if digest.incomplete:
                    log.warning("weekly digest %s goes out without %s (not complete)", digest.id, digest.incomplete)
                built[end] = (message_for(digest), digest)
            message, digest = built[end]
            self._queue(message, [(destination.name, Variant.FULL)], report, digest, history)

    def _corrections(self, stored: Sequence[date], history: _History, report: PlanReport) -> None:
        """Rebuild recent published digests whose source days were restated since; queue a correction when the
        ranking changed."""
        window_start = stored[-1] - timedelta(days=CORRECTION_WINDOW_DAYS)
        latest: dict[tuple[str, date | None, date | None], Message] = {}
        for message in self.store.messages(last_day_from=window_start):
            if message.kind in ("day", "week"):
                latest[(message.kind, message.first_day, message.last_day)] = message  # highest revision last
        if not latest:
            return
        revisions = {snapshot.day: snapshot.revision for snapshot in self.repo.days(start=window_start - timedelta(14))}
        for (kind, first, last), message in latest.items():
            if first is None or last is None:
                continue
            expected = 1 + sum(revisions.get(day, 1) - 1 for day in _depends_on(kind, first, last, stored))
            if expected <= message.revision:
                continue
            digest = build_digest(kind, history.days, history.models, self.settings, end=last)
            if digest.revision <= message.revision or same_as_published(digest, message.fingerprint):
                continue
            recipients = [(name, v) for name, v in self.store.recipients(message.id) if v is Variant.FULL]
            corrected = message_for(digest, corrects=message.id)
            if not recipients:
                continue
            self._queue(corrected, recipients, report, digest, history)
            report.corrections.append(corrected.id)


def _depends_on(kind: str, first: date, last: date, stored: Sequence[date]) -> list[date]:
    """The days a published digest's figures come from: its period and the one it was compared with (the latest
    stored day before a day digest; the 7 days before a week)."""
    days = [first + timedelta(n) for n in range((last - first).days + 1)]
    if kind == "week":
        return [day - timedelta(days=WEEK_DAYS) for day in days] + days
    earlier = [day for day in stored if day < first]
    return earlier[-1:] + days


# -- operator notices ------------------------------------------------------------------------------------------
DISCORD_REFUSED = "discord_token_refused"
"""Service state: why Discord refused the bot token (``bot.discord.rest``), while it does."""


def expected_day(now: datetime, expected_at: clock_time, grace: timedelta) -> date:
    """The latest day that should be complete by ``now``: day D is due at ``expected_at`` UTC on D+1, plus grace."""
    moment = now.astimezone(UTC) - grace
    due_today = datetime.combine(moment.date(), expected_at, tzinfo=UTC)
    return moment.date() - timedelta(days=1 if moment >= due_today else 2)


@dataclass
class NoticeReport:
    raised: list[str] = field(default_factory=list)


def _notify(
    store: DeliveryStore, state: ServiceState, key: str, text: str, now: datetime, report: NoticeReport
) -> None:
    if not state.raise_notice(key, text):
        return
    log.warning("operator notice: %s", text)
    report.raised.append(key)
    recipients = [(d.name, Variant.FULL) for d in store.destinations(enabled_only=True) if d.subscription.notices]
    if recipients:
        store.queue(notice_message(f"{key}:{int(now.timestamp())}", text, now), recipients)


def check_operations(
    repo: Repository,
    store: DeliveryStore,
    now: datetime,
    expected_at: clock_time,
    grace: timedelta,
) -> NoticeReport:
    """Raise (once) and resolve operator notices: a late day, dead deliveries, disabled destinations."""
    report = NoticeReport()
    state = ServiceState(store.engine, store.now)
    latest = repo.latest_day()
    due = expected_day(now, expected_at, grace)
    if latest is not None and latest < due:
        last_poll = state.state("last_successful_poll") or "never"
        _notify(
            store,
            state,
            f"late:{due.isoformat()}",
            f"no complete day for {due.isoformat()} yet: it usually arrives by {expected_at:%H:%M} UTC the next day "
            f"(grace {grace.total_seconds() / 3600:g} h). Latest stored day: {latest.isoformat()}; last successful "
            f"poll: {last_poll}.",
            now,
            report,
        )
    state.resolve_notices("late:", keep=[f"late:{due.isoformat()}"] if latest is not None and latest < due else [])
    dead, disabled = store.dead_or_disabled()
    notice_ids = {m.id for m in store.messages(kind="notice")} if dead else set()
    dead_keys = []
    for entry in dead:
        if entry.message_id in notice_ids:
            continue  # a notice that could not be delivered does not raise another notice
        key = f"dead:{entry.id}"
        dead_keys.append(key)
        _notify(
            store,
            state,
            key,
            f"delivery of {entry.message_id} to {entry.destination} is dead after {entry.attempts} tries: "
            f"{entry.last_error}. Fix the cause, then `rankbot outbox requeue-dead --destination {entry.destination}`.",
            now,
            report,
        )
    state.resolve_notices("dead:", keep=dead_keys)
    disabled_keys = [f"disabled:{d.name}" for d in disabled]
    for destination, key in zip(disabled, disabled_keys, strict=True):
        _notify(
            store, state, key, f"destination {destination.name} is disabled: {destination.disabled_reason}", now, report
        )
    state.resolve_notices("disabled:", keep=disabled_keys)
    refused = state.state(DISCORD_REFUSED)
    if refused:
        _notify(store, state, "discord:token", f"Discord sends are stopped: {refused}", now, report)
    state.resolve_notices("discord:", keep=["discord:token"] if refused else [])
    return report
