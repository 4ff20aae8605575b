"""Watched models: a channel's own alerts when a model it watches enters or leaves its top N, or moves by its jump
threshold from one complete day to the next (``/rankings watch``).

Pure: two stored days in, alert lines and a message out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC

from digests.delivery import Message
from digests.labels import attribution
from digests.model import DaySnapshot
from digests.numbers import format_as_of

WATCH_SCHEMA = "rankbot.watch/1"


@dataclass(frozen=True, slots=True)
class WatchAlert:
    permaslug: str
    name: str
    rank: int | None
    previous: int | None
    reason: str


def _rank(rank: int | None) -> str:
    return f"#{rank}" if rank is not None else "below #50"


def watch_alerts(
    watched: Sequence[str],
    today: DaySnapshot,
    previous: DaySnapshot,
    names: Mapping[str, str],
    top: int,
    jump: int,
) -> list[WatchAlert]:
    """For each watched model (in the order given): entered the top ``top``, left it, or moved ``jump`` places or
    more (up or down) from ``previous`` to ``today``. A model that did none of these gives nothing."""
    now, before = today.ranks(), previous.ranks()
    alerts = []
    for permaslug in watched:
        rank, was = now.get(permaslug), before.get(permaslug)
        inside, was_inside = rank is not None and rank <= top, was is not None and was <= top
        if inside and not was_inside:
            reason = f"entered the top {top}: {_rank(was)} → #{rank}"
        elif was_inside and not inside:
            reason = f"left the top {top}: #{was} → {_rank(rank)}"
        elif rank is not None and was is not None and abs(rank - was) >= jump:
            reason = f"{'up' if rank < was else 'down'} {abs(rank - was)} places: #{was} → #{rank}"
        else:
            continue
        alerts.append(WatchAlert(permaslug, names.get(permaslug, permaslug), rank, was, reason))
    return alerts


def watch_message(today: DaySnapshot, alerts: Sequence[WatchAlert]) -> Message:
    """The alerts of one day as a message; its id is the day, its revision and a hash of what it says, so channels
    watching the same models with the same thresholds share one message, and each is queued once per day."""
    label = f"Source day {today.day.isoformat()} (UTC, complete), compared with the day before"
    lines = [f"• {alert.name} — {alert.reason}" for alert in alerts]
    credit = attribution(today.as_of)
    text = "\n".join([f"Watched models on OpenRouter — {label}:", *lines, credit]) + "\n"
    markdown = "\n".join([f"**Watched models on OpenRouter** — {label}:", "", *lines, "", f"_{credit}_"]) + "\n"
    document = {
        "schema": WATCH_SCHEMA,
        "day": today.day.isoformat(),
        "revision": today.revision,
        "as_of": today.as_of.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "alerts": [
            {"permaslug": a.permaslug, "name": a.name, "rank": a.rank, "previous": a.previous, "reason": a.reason}
            for a in alerts
        ],
        "attribution": credit,
    }
    body = json.dumps(document, sort_keys=True)
    key = hashlib.sha256(body.encode()).hexdigest()[:12]
    return Message(
        id=f"watch:{today.day.isoformat()}:r{today.revision}:{key}",
        kind="watch",
        first_day=today.day,
        last_day=today.day,
        revision=today.revision,
        title=f"Watched models — {today.day.isoformat()} (data as of {format_as_of(today.as_of)})",
        full={"text": text, "markdown": markdown, "json": body + "\n"},
    )
