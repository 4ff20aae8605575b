"""Digests and operator notices frozen into ``Message`` values for the outbox.

A message is rendered once, when it is queued: every destination gets the same figures even if a restatement lands
while deliveries are still pending (a restatement that changes the ranking queues a correction instead).
Pure: value in, value out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from digests.delivery import Message
from digests.digest import Digest
from digests.numbers import format_as_of
from digests.render.document import digest_document
from digests.render.text import render_text

NOTICE_SCHEMA = "rankbot.notice/v1"


FINGERPRINT_VERSION = "v2|"


def fingerprint(digest: Digest) -> str:
    """What a reader saw that a restatement can change: each row's rank and previous rank (its movement), the
    drop-outs, and which models raised an alert. Equal fingerprints mean no correction is needed."""
    rows = " ".join(f"{row.permaslug}@{row.movement.previous_rank or '-'}" for row in digest.rows)
    dropped = " ".join(d.info.permaslug for d in digest.dropped)
    alerted = " ".join(sorted({alert.permaslug for alert in digest.alerts}))
    return f"{FINGERPRINT_VERSION}{rows}|{dropped}|{alerted}"


def same_as_published(digest: Digest, published: str) -> bool:
    """Does ``digest`` show what the message with fingerprint ``published`` showed? Messages queued before
    fingerprints covered the comparison (no version prefix) recorded only the ranking."""
    if published.startswith(FINGERPRINT_VERSION):
        return fingerprint(digest) == published
    return " ".join(row.permaslug for row in digest.rows) == published


def digest_title(digest: Digest) -> str:
    kind = "Daily" if digest.kind == "day" else "Weekly"
    return f"{kind} OpenRouter rankings: {digest.period.label().removeprefix('Source ')}"


def correction_line(digest: Digest, corrects: str) -> str:
    return (
        f"Correction: OpenRouter restated figures for {digest.period.label().removeprefix('Source ')}, "
        f"which changed the ranking. This digest ({digest.id}) replaces {corrects}."
    )


def quiet_line(digest: Digest) -> str:
    """One line for a quiet day: what was checked, #1, and the honest labels."""
    leader = f"#1 {digest.name_of(digest.rows[0].permaslug)}" if digest.rows else "no ranked models"
    return (
        f"OpenRouter rankings, {digest.period_label}: a quiet day — no notable moves in the top "
        f"{digest.settings.top_n}; {leader}. {digest.attribution}"
    )


def _with_correction(text: str, line: str | None, markdown: bool) -> str:
    if line is None:
        return text
    return (f"**{line}**" if markdown else line) + "\n\n" + text


def message_for(digest: Digest, corrects: str | None = None) -> Message:
    """The digest as a queued message: text, Markdown and JSON, plus the quiet-day line."""
    correction = correction_line(digest, corrects) if corrects else None
    document = {**digest_document(digest), "corrects": corrects}
    line = quiet_line(digest)
    return Message(
        id=digest.id,
        kind=digest.kind,
        first_day=digest.period.first,
        last_day=digest.period.last,
        revision=digest.revision,
        title=("Correction — " if corrects else "") + digest_title(digest),
        full={
            "text": _with_correction(render_text(digest), correction, markdown=False),
            "markdown": _with_correction(render_text(digest, markdown=True), correction, markdown=True),
            "json": json.dumps(document, ensure_ascii=False, indent=2) + "\n",
        },
        line={
            "text": line + "\n",
            "markdown": line + "\n",
            "json": json.dumps(
                {"schema": document["schema"], "id": digest.id, "kind": "quiet-day", "text": line}, ensure_ascii=False
            )
            + "\n",
        },
        notable=bool(digest.alerts),
        fingerprint=fingerprint(digest),
        corrects=corrects,
    )


def notice_message(key: str, text: str, raised_at: datetime) -> Message:
    """An operator notice (late data, a dead delivery, a disabled destination) as a queued message."""
    stamped = f"rankbot notice ({format_as_of(raised_at)}): {text}"
    document = {
        "schema": NOTICE_SCHEMA,
        "id": f"notice:{key}",
        "raised_at": raised_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "text": text,
    }
    return Message(
        id=f"notice:{key}",
        kind="notice",
        first_day=None,
        last_day=None,
        revision=1,
        title="rankbot operator notice",
        full={"text": stamped + "\n", "markdown": stamped + "\n", "json": json.dumps(document) + "\n"},
    )
