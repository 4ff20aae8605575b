"""The digest as a stable JSON document (``rankbot digest --format json``).

Pure: value in, ``dict`` out. The schema is versioned by ``schema``; fields are only ever added within a version.
Token counts are integers; shares are fractions of the period's total (``other`` included).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from digests.digest import Digest, DigestRow
from digests.model import Period

SCHEMA = "rankbot.digest/v1"


def _period(period: Period | None) -> dict[str, Any] | None:
    if period is None:
        return None
    return {"label": period.label(), "source_days": [day.isoformat() for day in period.days]}


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _row(row: DigestRow) -> dict[str, Any]:
    movement = row.movement
    return {
        "rank": row.rank,
        "previous_rank": movement.previous_rank,
        "permaslug": row.permaslug,
        "name": row.info.name,
        "author": row.info.author,
        "tags": list(row.tags),
        "tokens": row.tokens,
        "tokens_lower_bound": row.lower_bound,
        "tokens_per_day": round(row.tokens_per_day, 1),
        "share": row.share,
        "days_in_top_50": row.days_present,
        "days_in_period": row.days_in_period,
        "movement": movement.kind.value,
        "marker": movement.marker,
        "rank_change": movement.delta,
        "volume_change": movement.volume_change,
        "near_tie": movement.noise,
        "run_rate_estimate_30d": round(row.run_rate),
        "open_weights": row.info.open_weights,
        "chart": {
            "peak_rank": row.stats.peak_rank,
            "days_in_top_50": row.stats.days_in_top,
            "days_at_1": row.stats.days_at_1,
        },
    }


def digest_document(digest: Digest) -> dict[str, Any]:
    """Everything the digest says, as JSON-ready values."""
    return {
        "schema": SCHEMA,
        "id": digest.id,
        "kind": digest.kind,
        "period": {
            **(_period(digest.period) or {}),
            "label": digest.period_label,
            "days_with_data": [day.isoformat() for day in digest.available],
            "not_yet_complete": [day.isoformat() for day in digest.incomplete],
        },
        "previous_period": None
        if digest.previous is None
        else {
            **(_period(digest.previous) or {}),
            "days_with_data": [day.isoformat() for day in digest.previous_available],
            "missing_days": [day.isoformat() for day in digest.previous_missing_days],
            "volume_changes_shown": digest.volume_compared,
        },
        "comparison": digest.comparison_label,
        "as_of": _utc(digest.as_of),
        "revision": digest.revision,
        "restated": [{"day": day.isoformat(), "as_of": _utc(as_of)} for day, as_of in digest.restated],
        "revision_note": digest.revision_note,
        "unit": digest.unit,
        "totals": {
            "tokens": digest.total_tokens,
            "other_tokens": digest.other_tokens,
            "top_n": digest.settings.top_n,
            "top_n_share": digest.top_n_share,
            "open_weights_share": digest.open_weights_share,
        },
        "rows": [_row(row) for row in digest.rows],
        "dropped": [
            {"permaslug": d.info.permaslug, "name": d.info.name, "previous_rank": d.previous_rank}
            for d in digest.dropped
        ],
        "callouts": [{"title": c.title, "permaslug": c.permaslug, "detail": c.detail} for c in digest.callouts],
        "alerts": [{"permaslug": a.permaslug, "reason": a.reason} for a in digest.alerts],
        "caveats": list(digest.caveats),
        "caveats_url": digest.settings.caveats_url,
        "attribution": digest.attribution,
    }
