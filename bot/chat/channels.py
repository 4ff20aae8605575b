"""Channel subscriptions from chat: ``/rankings subscribe``, ``unsubscribe``, ``settings`` and ``watch`` keep a
destination per channel (``origin`` = the platform, named ``slack:T…:C…``) in the same table as the configured ones,
so the planner, the outbox, ``/healthz`` and ``rankbot outbox list`` treat them alike. Every method reads or writes
the database: call it in a thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digests.commands import (
    ChannelPrefs,
    ChannelSettings,
    CommandError,
    Subscribe,
    Unsubscribe,
    settings_lines,
)
from digests.delivery import Destination, Subscription
from digests.views import Match
from storage.delivery import DeliveryStore
from storage.outbox_rows import UNSUBSCRIBED
from storage.repository import Repository

MAX_WATCHES = 20
NOTHING = Subscription(daily=False, weekly=False)
"""A channel's subscription before it subscribes to anything."""


class ConfiguredChannelError(CommandError):
    """The channel is posted to from the configuration: it is changed there, not from chat."""


class ChatChannels:
    def __init__(
        self,
        platform: str,
        store: DeliveryStore,
        repo: Repository,
        configured: Callable[[str, str], str | None] = lambda team, channel: None,
    ) -> None:
        self.platform = platform
        self.store = store
        self.repo = repo
        self.configured = configured
        """The name of the ``[[outputs]]`` entry posting to (team, channel), if any."""

    def name(self, team: str, channel: str) -> str:
        return f"{self.platform}:{team}:{channel}"

    def current(self, team: str, channel: str) -> Destination | None:
        return self.store.destination(self.name(team, channel))

    def _editable(self, team: str, channel: str) -> Destination:
        output = self.configured(team, channel)
        if output is not None:
            raise ConfiguredChannelError(
                f"this channel's posts are set in rankbot's configuration (output `{output}`): ask its operator to "
                "change them there.",
                "settings",
            )
        found = self.current(team, channel)
        if found is not None:
            return found
        return Destination(
            self.name(team, channel),
            self.platform,
            {"channel": channel, "team": team, **ChannelPrefs().target()},
            NOTHING,
            origin=self.platform,
        )

    def _save(self, destination: Destination, restart: bool = False) -> Destination:
        """Store it: enabled while it subscribes to something or watches a model; otherwise off, as unsubscribed."""
        wanted = (
            destination.subscription.daily or destination.subscription.weekly or bool(destination.target.get("watch"))
        )
        gone = destination.disabled_reason if not destination.enabled else None
        if wanted:
            destination = replace(destination, enabled=True, disabled_reason=None)
        else:
            destination = replace(destination, enabled=False, disabled_reason=gone or UNSUBSCRIBED)
        self.store.save_destination(destination, restart)
        return destination

    def subscribe(self, team: str, channel: str, command: Subscribe) -> Destination:
        found = self._editable(team, channel)
        subscription = found.subscription
        if command.feed == "daily":
            subscription = replace(subscription, daily=True)
        else:
            subscription = replace(subscription, weekly=True)
        restart = command.feed == "weekly" and not found.subscription.weekly
        return self._save(replace(found, subscription=subscription), restart)

    def unsubscribe(self, team: str, channel: str, command: Unsubscribe) -> Destination:
        found = self._editable(team, channel)
        subscription = found.subscription
        target = dict(found.target)
        if command.feed in (None, "daily"):
            subscription = replace(subscription, daily=False)
        if command.feed in (None, "weekly"):
            subscription = replace(subscription, weekly=False)
        if command.feed is None:
            target["watch"] = []
        return self._save(replace(found, subscription=subscription, target=target))

    def change(self, team: str, channel: str, command: ChannelSettings) -> Destination:
        found = self._editable(team, channel)
        if command.timezone is not None:
            _check_zone(command.timezone)
        subscription = found.subscription
        prefs = ChannelPrefs.of(found.target)
        if command.top is not None:
            prefs = replace(prefs, top=command.top)
        if command.jump is not None:
            prefs = replace(prefs, jump=command.jump)
        if command.quiet is not None:
            subscription = replace(subscription, quiet_day=command.quiet)
        if command.timezone is not None:
            subscription = replace(subscription, timezone=command.timezone)
        if command.at is not None:
            subscription = replace(subscription, weekly_cron=command.at)
        restart = (subscription.weekly_cron, subscription.timezone) != (
            found.subscription.weekly_cron,
            found.subscription.timezone,
        )
        target = {**found.target, **prefs.target()}
        return self._save(replace(found, subscription=subscription, target=target), restart)

    def watch(self, team: str, channel: str, match: Match, adding: bool) -> Destination:
        """Add (or remove) a model from the channel's watch list; alerts start with the next stored day."""
        found = self._editable(team, channel)
        prefs = ChannelPrefs.of(found.target)
        watched = [slug for slug in prefs.watch if slug != match.permaslug]
        if adding:
            if len(watched) >= MAX_WATCHES:
                raise CommandError(
                    f"this channel already watches {MAX_WATCHES} models: unwatch one first.", "unwatch deepseek v3"
                )
            watched.append(match.permaslug)
        prefs = replace(prefs, watch=tuple(watched), watch_since=self.repo.latest_day())
        return self._save(replace(found, target={**found.target, **prefs.target()}))

    def describe(self, team: str, channel: str, names: Mapping[str, str]) -> list[str]:
        """The channel's settings as ``/rankings settings`` shows them."""
        output = self.configured(team, channel)
        if output is not None:
            return [f"This channel's posts are set in rankbot's configuration (output `{output}`)."]
        found = self.current(team, channel)
        if found is None:
            return ["This channel subscribes to nothing yet: an admin can say `/rankings subscribe daily`."]
        prefs = ChannelPrefs.of(found.target)
        reason = found.disabled_reason if not found.enabled and found.disabled_reason != UNSUBSCRIBED else None
        return settings_lines(
            found.subscription,
            prefs,
            [names.get(slug, slug) for slug in prefs.watch],
            reason,
            found.last_error if found.failures else None,
        )


def _check_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CommandError(
            f"`{name[:40]}` is not a time zone: use a name from the tz database.", "settings tz Europe/Berlin"
        ) from None


def slack_target(target: Mapping[str, Any]) -> tuple[str, str]:
    """(team, channel) of a Slack destination."""
    return str(target.get("team") or ""), str(target["channel"])
