"""What ``/healthz`` says: ``ok``, or ``degraded`` with one line per problem an operator should look at — no
successful poll yet, an open notice, rows held by an instance that stopped sending heartbeats, a destination whose
last tries all failed — and the facts behind them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.outbox import HEARTBEAT_SECONDS
from storage.delivery import DeliveryStore
from storage.outbox_rows import WITHDRAWN
from storage.repository import Repository
from storage.service_state import ServiceState

LAST_POLL = "last_successful_poll"
STALE_AFTER = timedelta(seconds=3 * HEARTBEAT_SECONDS)
"""A claim whose holder has written no heartbeat for this long is reported as stale."""
FAILING_AFTER = 2
"""``degraded`` while a destination's last tries, at least this many, all failed."""


def health_report(
    repo: Repository, store: DeliveryStore, state: ServiceState, instance: str, lease: timedelta, leader: bool
) -> dict[str, Any]:
    """The ``/healthz`` document (reads the database: call it in a thread)."""
    notices = state.open_notices()
    latest = repo.latest_day()
    last_poll, poll_error = state.state(LAST_POLL), state.state("last_poll_error")
    stale = store.stale_claims(STALE_AFTER)
    failing = store.failing_destinations(FAILING_AFTER)
    disabled = [d for d in store.destinations() if not d.enabled and d.disabled_reason not in WITHDRAWN]
    problems = [notice.text for notice in notices]
    if last_poll is None:
        problems.append("no successful poll yet" + (f": {poll_error}" if poll_error else ""))
    problems += [
        f"{claim.rows} row(s) in sending are held by {claim.holder}, silent since "
        f"{claim.last_heartbeat.isoformat() if claim.last_heartbeat else 'it started'}: they are settled after "
        f"their claim runs out, by {(claim.oldest_claim + lease).isoformat()}"
        for claim in stale
    ]
    problems += [
        f"destination {d.name}: the last {d.failures} tries failed (since "
        f"{d.failing_since.isoformat() if d.failing_since else '?'}): {d.last_error}"
        for d in failing
    ]
    return {
        "status": "degraded" if problems else "ok",
        "problems": problems,
        "instance": instance,
        "leader": leader,
        "last_successful_poll": last_poll,
        "last_poll_error": poll_error,
        "latest_day": latest.isoformat() if latest else None,
        "outbox": store.backlog(),
        "stale_claims": [
            {
                "holder": claim.holder,
                "rows": claim.rows,
                "claimed_at": claim.oldest_claim.isoformat(),
                "last_heartbeat": claim.last_heartbeat.isoformat() if claim.last_heartbeat else None,
                "settled_by": (claim.oldest_claim + lease).isoformat(),
            }
            for claim in stale
        ],
        "failing_destinations": [{"name": d.name, "failures": d.failures, "last_error": d.last_error} for d in failing],
        "disabled_destinations": [{"name": d.name, "reason": d.disabled_reason} for d in disabled],
        "notices": [{"key": n.key, "text": n.text, "raised_at": n.raised_at.isoformat()} for n in notices],
    }
