"""The published archive: every day and week digest as it was queued (``message`` rows, newest first), the
revisions of a period, each digest's stored charts, and a version that changes whenever a day is stored or a
digest published (what the web pages are cached by).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial

from sqlalchemy import Engine, func, select

from digests.delivery import Message
from digests.render.charts import Chart
from storage.records import MESSAGE, insert_ignoring_duplicates, message_of
from storage.tables import ChartRecord, DayRevisionRecord

CHART = ChartRecord.__table__  # type: ignore[attr-defined]
_REVISION = DayRevisionRecord.__table__  # type: ignore[attr-defined]
DIGEST_KINDS = ("day", "week")


@dataclass(frozen=True, slots=True)
class Page:
    messages: tuple[Message, ...]
    number: int
    pages: int
    total: int


class Archive:
    def __init__(self, engine: Engine, now: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.now = now or partial(datetime.now, UTC)

    # -- digests -----------------------------------------------------------------------------------------
    def page(self, number: int, size: int) -> Page:
        """Published day and week digests, newest first: page ``number`` (from 1) of ``size``."""
        kinds = MESSAGE.c.kind.in_(DIGEST_KINDS)
        with self.engine.connect() as connection:
            total = int(connection.execute(select(func.count()).select_from(MESSAGE).where(kinds)).scalar() or 0)
            rows = connection.execute(
                select(MESSAGE)
                .where(kinds)
                .order_by(MESSAGE.c.created_at.desc(), MESSAGE.c.last_day.desc(), MESSAGE.c.id.desc())
                .offset((number - 1) * size)
                .limit(size)
            ).mappings()
            messages = tuple(message_of(row) for row in rows)
        return Page(messages, number, max(1, -(-total // size)), total)

    def digest(self, digest_id: str) -> Message | None:
        """A published day or week digest (notices are not in the archive)."""
        with self.engine.connect() as connection:
            row = (
                connection.execute(select(MESSAGE).where(MESSAGE.c.id == digest_id, MESSAGE.c.kind.in_(DIGEST_KINDS)))
                .mappings()
                .first()
            )
        return message_of(row) if row else None

    def revisions(self, kind: str, first: date | None, last: date | None) -> list[Message]:
        """Every published revision of one period, oldest first."""
        query = (
            select(MESSAGE)
            .where(MESSAGE.c.kind == kind, MESSAGE.c.first_day == first, MESSAGE.c.last_day == last)
            .order_by(MESSAGE.c.revision)
        )
        with self.engine.connect() as connection:
            return [message_of(row) for row in connection.execute(query).mappings()]

    # -- charts ------------------------------------------------------------------------------------------
    def save_charts(self, digest_id: str, charts: Mapping[str, Chart]) -> None:
        """Store a digest's charts (once: charts already stored for it are kept)."""
        rows = [
            {
                "digest_id": digest_id,
                "name": name,
                "png": chart.png,
                "alt": chart.alt,
                "width": chart.width,
                "height": chart.height,
                "created_at": self.now(),
            }
            for name, chart in charts.items()
        ]
        with self.engine.begin() as connection:
            insert_ignoring_duplicates(connection, CHART, rows)

    def chart(self, digest_id: str, name: str) -> Chart | None:
        with self.engine.connect() as connection:
            row = (
                connection.execute(select(CHART).where(CHART.c.digest_id == digest_id, CHART.c.name == name))
                .mappings()
                .first()
            )
        return Chart(bytes(row["png"]), row["alt"], row["width"], row["height"]) if row else None

    def chart_alts(self, digest_id: str) -> dict[str, str]:
        """The stored charts of a digest: name → alt text."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(CHART.c.name, CHART.c.alt).where(CHART.c.digest_id == digest_id)).all()
        return {str(name): str(alt) for name, alt in rows}

    # -- what the pages depend on ------------------------------------------------------------------------
    def version(self) -> str:
        """Changes whenever a day (or a revision of one) is stored or a digest is published."""
        with self.engine.connect() as connection:
            days = connection.execute(select(func.count(), func.max(_REVISION.c.stored_at))).one()
            messages = connection.execute(select(func.count(), func.max(MESSAGE.c.created_at))).one()
        return f"{days[0]}.{days[1]}.{messages[0]}.{messages[1]}"
