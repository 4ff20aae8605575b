"""``/rankings``: the command's text parsed into what was asked, the same for Slack and Discord. A bad argument is a
``CommandError`` that names what was wrong and gives an example to copy.

Pure: text in, values out (time zones are checked by the shell, which can read the zone database).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from digests.delivery import Subscription

LIST_SIZE = 50
"""OpenRouter ranks 50 models a day."""
MAX_TOP = LIST_SIZE
DEFAULT_TOP = 10
DEFAULT_JUMP = 5
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_NAMES = {name: day for day, full in zip(WEEKDAYS, FULL_DAY_NAMES, strict=True) for name in (day, full)}
QUIET = ("skip", "line")
FEEDS = ("daily", "weekly")


class CommandError(ValueError):
    """What was wrong with the command, and an example that works."""

    def __init__(self, problem: str, example: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.example = example


@dataclass(frozen=True, slots=True)
class Show:
    """The top ``top`` of the latest complete day (or ``day``), or of the latest week."""

    kind: str = "day"
    top: int = DEFAULT_TOP
    day: date | None = None


@dataclass(frozen=True, slots=True)
class ModelQuery:
    query: str


@dataclass(frozen=True, slots=True)
class Movers:
    kind: str = "day"


@dataclass(frozen=True, slots=True)
class Subscribe:
    feed: str
    """``daily`` or ``weekly``."""


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    feed: str | None = None
    """``daily``, ``weekly``, or ``None``: everything (digests and watches)."""


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """``settings`` alone shows them; with arguments, changes those given."""

    top: int | None = None
    jump: int | None = None
    quiet: str | None = None
    timezone: str | None = None
    at: str | None = None
    """The weekly digest's time as a cron (``0 9 * * mon``)."""

    @property
    def changes(self) -> bool:
        return any(value is not None for value in (self.top, self.jump, self.quiet, self.timezone, self.at))


@dataclass(frozen=True, slots=True)
class Watch:
    query: str


@dataclass(frozen=True, slots=True)
class Unwatch:
    query: str


@dataclass(frozen=True, slots=True)
class Help:
    topic: str | None = None
    unknown: str | None = None
    """A word that is not a command (the help says so first)."""


Command = Show | ModelQuery | Movers | Subscribe | Unsubscribe | ChannelSettings | Watch | Unwatch | Help
CHANGES_SETTINGS = (Subscribe, Unsubscribe, ChannelSettings, Watch, Unwatch)
"""Commands that change the channel's subscription (an admin's; ``settings`` alone only shows)."""


def changes_channel(command: Command) -> bool:
    """Whether ``command`` changes what the channel receives (only an admin may)."""
    if isinstance(command, ChannelSettings):
        return command.changes
    return isinstance(command, CHANGES_SETTINGS)


@dataclass(frozen=True, slots=True)
class Usage:
    name: str
    example: str
    does: str


USAGE: tuple[Usage, ...] = (
    Usage("", "", "the top 10 of the latest complete day"),
    Usage("top", "top 25", "the top N (1–50) of the latest complete day"),
    Usage("week", "week", "the top 10 of the latest week (add `top 25` for more)"),
    Usage("day", "day 2026-10-07", "the top 10 of that day (UTC)"),
    Usage("model", "model gemini flash", "a model's card: rank, peak, days in the top 50, price, last 30 days"),
    Usage("movers", "movers", "what moved on the latest day, and why (`movers week` for the week)"),
    Usage("subscribe", "subscribe daily", "post the daily alerts (or `weekly`: the weekly digest) in this channel"),
    Usage("unsubscribe", "unsubscribe weekly", "stop `daily` or `weekly` posts (alone: stop everything)"),
    Usage(
        "settings",
        'settings top 15 jump 3 quiet line tz Europe/Berlin at "mon 09:00"',
        "show this channel's settings, or change them",
    ),
    Usage("watch", "watch deepseek v3", "an alert here when that model enters or leaves the top N, or jumps"),
    Usage("unwatch", "unwatch deepseek v3", "stop watching a model"),
    Usage("help", "help", "this list"),
)
EXAMPLES = {usage.name: usage.example for usage in USAGE}


def text_usage(example: str, command: str = "/rankings") -> str:
    """How a command is typed where it is one line of text (Slack): ``/rankings top 25``."""
    return f"{command} {example}".strip()


def help_lines(usage: Callable[[str], str] = text_usage) -> list[str]:
    """One line per command, as the platform types it (``usage`` of each example) — what it does."""
    return [f"`{usage(u.example)}` — {u.does}" for u in USAGE]


def _number(word: str | None, what: str, low: int, high: int, example: str) -> int:
    if word is None:
        raise CommandError(f"`{what}` needs a number from {low} to {high}.", example)
    if not word.isdigit() or not low <= int(word) <= high:
        raise CommandError(f"`{what} {word}`: {what} must be a whole number from {low} to {high}.", example)
    return int(word)


def _day(word: str | None) -> date:
    if word is None:
        raise CommandError("`day` needs a date.", EXAMPLES["day"])
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", word):
        try:
            return date.fromisoformat(word)
        except ValueError:
            pass
    raise CommandError(f"`{word}` is not a date: write it as YYYY-MM-DD.", EXAMPLES["day"])


def weekly_cron(value: str) -> str:
    """``mon 09:00`` as the cron ``0 9 * * mon``."""
    match = re.fullmatch(r"(?i)\s*([a-z]+)\s+([01]?\d|2[0-3]):([0-5]\d)\s*", value)
    if match is None or match.group(1).lower() not in DAY_NAMES:
        raise CommandError(
            f'`at {value}`: give a weekday and a 24-hour time, like "mon 09:00".', 'settings at "mon 09:00"'
        )
    return f"{int(match.group(3))} {int(match.group(2))} * * {DAY_NAMES[match.group(1).lower()]}"


def _show(words: list[str], kind: str = "day", day: date | None = None) -> Show:
    """``top``, ``week`` or ``day``, then in any order ``top N`` (or ``N``) and ``day YYYY-MM-DD`` (the day, or the
    week ending that day)."""
    top = DEFAULT_TOP
    example = "week top 25" if kind == "week" else EXAMPLES["top"]
    while words:
        word = words.pop(0).lower()
        if word == "top":
            top = _number(words.pop(0) if words else None, "top", 1, MAX_TOP, example)
        elif word == "day":
            day = _day(words.pop(0) if words else None)
        elif word.isdigit():
            top = _number(word, "top", 1, MAX_TOP, example)
        else:
            raise CommandError(f"`{word}` is not understood after `{kind}`.", example)
    return Show(kind, top, day)


def _settings(words: list[str]) -> ChannelSettings:
    values: dict[str, int | str] = {}
    example = EXAMPLES["settings"]
    while words:
        word = words.pop(0).lower()
        value = words.pop(0) if words else None
        if word == "top":
            values["top"] = _number(value, "top", 1, MAX_TOP, "settings top 15")
        elif word == "jump":
            values["jump"] = _number(value, "jump", 1, LIST_SIZE - 1, "settings jump 3")
        elif word == "quiet":
            if value is None or value.lower() not in QUIET:
                raise CommandError(
                    "`quiet` is `skip` (nothing on a quiet day) or `line` (one line saying so).", "settings quiet line"
                )
            values["quiet"] = value.lower()
        elif word in ("tz", "timezone"):
            if value is None:
                raise CommandError("`tz` needs a time zone name.", "settings tz Europe/Berlin")
            values["timezone"] = value
        elif word == "at":
            if value is None:
                raise CommandError("`at` needs the weekly digest's day and time.", 'settings at "mon 09:00"')
            values["at"] = weekly_cron(value)
        else:
            raise CommandError(f"`{word}` is not a setting: use top, jump, quiet, tz or at.", example)
    return ChannelSettings(**values)  # type: ignore[arg-type]


def _query(words: list[str], name: str) -> str:
    query = " ".join(words).strip()
    if not query:
        raise CommandError(f"`{name}` needs part of a model's name, its author or its permaslug.", EXAMPLES[name])
    return query[:100]


def parse_command(text: str) -> Command:
    """The command in ``text`` (what follows ``/rankings``)."""
    try:
        words = shlex.split(text.replace("“", '"').replace("”", '"'))
    except ValueError:
        raise CommandError("a quote is not closed.", EXAMPLES["settings"]) from None
    if not words:
        return Show()
    head, rest = words[0].lower(), words[1:]
    if head == "top" or head.isdigit():
        return _show(words)
    if head == "week":
        return _show(rest, "week")
    if head == "day":
        return _show(rest[1:], "day", _day(rest[0] if rest else None))
    if head == "model":
        return ModelQuery(_query(rest, "model"))
    if head == "movers":
        kind = rest[0].lower() if rest else "day"
        if kind not in ("day", "week") or len(rest) > 1:
            raise CommandError(f"`movers {' '.join(rest)}`: say `movers` or `movers week`.", "movers week")
        return Movers(kind)
    if head == "subscribe":
        if len(rest) != 1 or rest[0].lower() not in FEEDS:
            raise CommandError("say which posts: `subscribe daily` or `subscribe weekly`.", EXAMPLES["subscribe"])
        return Subscribe(rest[0].lower())
    if head == "unsubscribe":
        if len(rest) > 1 or (rest and rest[0].lower() not in FEEDS):
            raise CommandError("say `unsubscribe`, `unsubscribe daily` or `unsubscribe weekly`.", "unsubscribe")
        return Unsubscribe(rest[0].lower() if rest else None)
    if head == "settings":
        return _settings(rest)
    if head == "watch":
        return Watch(_query(rest, "watch"))
    if head == "unwatch":
        return Unwatch(_query(rest, "unwatch"))
    if head in ("help", "?"):
        return Help(rest[0].lower() if rest else None)
    return Help(unknown=words[0][:40])


@dataclass(frozen=True, slots=True)
class ChannelPrefs:
    """A chat channel's own settings, kept with its destination (``target``)."""

    top: int = DEFAULT_TOP
    jump: int = DEFAULT_JUMP
    watch: tuple[str, ...] = field(default_factory=tuple)
    """Permaslugs watched in this channel."""
    watch_since: date | None = None
    """Watch alerts are for days stored after this one (the latest stored when the watch list last changed)."""

    @classmethod
    def of(cls, target: Mapping[str, Any]) -> ChannelPrefs:
        since = target.get("watch_since")
        return cls(
            int(target.get("top", DEFAULT_TOP)),
            int(target.get("jump", DEFAULT_JUMP)),
            tuple(str(slug) for slug in target.get("watch", ())),
            date.fromisoformat(since) if since else None,
        )

    def target(self) -> dict[str, Any]:
        """What is kept in the destination's ``target`` (with its channel and team)."""
        return {
            "top": self.top,
            "jump": self.jump,
            "watch": list(self.watch),
            "watch_since": self.watch_since.isoformat() if self.watch_since else None,
        }


def schedule_text(cron: str) -> str:
    """A weekly cron as people say it: ``0 9 * * mon`` → ``mon 09:00`` (another cron is shown as it is)."""
    match = re.fullmatch(r"(\d{1,2}) (\d{1,2}) \* \* ([a-z]{3})", cron.strip())
    if match is None:
        return f"cron `{cron}`"
    return f"{match.group(3)} {int(match.group(2)):02d}:{int(match.group(1)):02d}"


def settings_lines(
    subscription: Subscription,
    prefs: ChannelPrefs,
    watched_names: Sequence[str],
    disabled_reason: str | None,
    last_error: str | None,
) -> list[str]:
    """What ``/rankings settings`` shows for a channel."""
    daily = "on" if subscription.daily else "off"
    if subscription.daily:
        daily += f" (notable days only; quiet days: {'one line' if subscription.quiet_day == 'line' else 'nothing'})"
    weekly = "off"
    if subscription.weekly:
        weekly = f"on, {schedule_text(subscription.weekly_cron)} {subscription.timezone}"
    lines = [
        f"*Daily alerts:* {daily}",
        f"*Weekly digest:* {weekly}",
        f"*Top shown:* {prefs.top} · *jump threshold for watches:* {prefs.jump} places",
        f"*Watching:* {', '.join(watched_names) if watched_names else 'nothing'}",
    ]
    if disabled_reason:
        lines.append(f"*Not posting:* {disabled_reason}")
    elif last_error:
        lines.append(f"*Last delivery failed:* {last_error}")
    return lines
