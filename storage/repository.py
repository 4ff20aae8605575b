"""The repository: stores and returns ``digests`` values; SQLModel rows never leave ``storage/``.

Invariants: only complete days are handed in (the caller decides completeness); storing a day whose figures are
already current changes nothing; a day whose figures changed becomes a new revision and the old one is kept.
Bulk stores run in one transaction, so a crash stores all of a batch or none of it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import partial

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.engine import Connection

from digests.aliases import resolved, with_aliases
from digests.model import OTHER, DaySnapshot, ModelInfo, ModelTokens
from storage.tables import (
    AliasRecord,
    DayRevisionRecord,
    DayRowRecord,
    ModelRecord,
    ServiceStateRecord,
    SourceDayRecord,
)

_DAY = SourceDayRecord.__table__  # type: ignore[attr-defined]  # SQLModel sets it at class creation
_REVISION = DayRevisionRecord.__table__  # type: ignore[attr-defined]
_ROW = DayRowRecord.__table__  # type: ignore[attr-defined]
_MODEL = ModelRecord.__table__  # type: ignore[attr-defined]
_ALIAS = AliasRecord.__table__  # type: ignore[attr-defined]
_STATE = ServiceStateRecord.__table__  # type: ignore[attr-defined]
MARK_PREFIX = "source:"
MARK_KEY_LENGTH = 64


class Outcome(StrEnum):
    STORED = "stored"
    UNCHANGED = "unchanged"
    REVISED = "revised"


@dataclass(frozen=True, slots=True)
class StoreResult:
    day: date
    outcome: Outcome
    revision: int


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class Repository:
    """Days, their revisions and the model catalogue, over one SQLAlchemy engine."""

    def __init__(self, engine: Engine, now: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self._now = now or partial(datetime.now, UTC)

    def close(self) -> None:
        """Close the engine's pooled connections."""
        self.engine.dispose()

    # -- days --------------------------------------------------------------------------------------------
    def add_days(self, snapshots: Sequence[DaySnapshot], source: str) -> list[StoreResult]:
        """Store complete days in one transaction; one result per day, in the order given."""
        stored_at = _utc(self._now())
        with self.engine.begin() as connection:
            current = self._load(connection, [s.day for s in snapshots])
            results: list[StoreResult] = []
            revisions: list[dict[str, object]] = []
            rows: list[dict[str, object]] = []
            for snapshot in snapshots:
                existing = current.get(snapshot.day)
                if existing is not None and existing.same_figures(snapshot):
                    results.append(StoreResult(snapshot.day, Outcome.UNCHANGED, existing.revision))
                    continue
                revision = 1 if existing is None else existing.revision + 1
                revisions.append(
                    {
                        "day": snapshot.day,
                        "revision": revision,
                        "as_of": _utc(snapshot.as_of),
                        "other_tokens": snapshot.other_tokens,
                        "source": source,
                        "stored_at": stored_at,
                    }
                )
                rows.extend(
                    {
                        "day": snapshot.day,
                        "revision": revision,
                        "permaslug": r.permaslug,
                        "rank": rank,
                        "tokens": r.tokens,
                    }
                    for rank, r in enumerate(snapshot.rows, start=1)
                )
                outcome = Outcome.STORED if existing is None else Outcome.REVISED
                results.append(StoreResult(snapshot.day, outcome, revision))
                current[snapshot.day] = DaySnapshot(
                    snapshot.day, snapshot.rows, snapshot.other_tokens, snapshot.as_of, revision
                )
            if revisions:
                connection.execute(insert(_REVISION), revisions)
            if rows:
                connection.execute(insert(_ROW), rows)
            self._point(connection, results)
        return results

    def _point(self, connection: Connection, results: Iterable[StoreResult]) -> None:
        changed = {r.day: r.revision for r in results if r.outcome is not Outcome.UNCHANGED}
        new = [{"day": day, "revision": rev} for day, rev in changed.items() if rev == 1]
        if new:
            connection.execute(insert(_DAY), new)
        for day, revision in changed.items():
            if revision > 1:
                connection.execute(update(_DAY).where(_DAY.c.day == day).values(revision=revision))

    def add_day(self, snapshot: DaySnapshot, source: str = "api") -> StoreResult:
        return self.add_days([snapshot], source)[0]

    def _load(
        self,
        connection: Connection,
        days: Sequence[date] | None = None,
        *,
        start: date | None = None,
        end: date | None = None,
    ) -> dict[date, DaySnapshot]:
        """Current snapshots by day, filtered by ``days`` or by ``start``/``end``."""
        revisions = select(_REVISION.c.day, _REVISION.c.revision, _REVISION.c.as_of, _REVISION.c.other_tokens).join(
            _DAY, (_DAY.c.day == _REVISION.c.day) & (_DAY.c.revision == _REVISION.c.revision)
        )
        rows = select(_ROW.c.day, _ROW.c.permaslug, _ROW.c.tokens).join(
            _DAY, (_DAY.c.day == _ROW.c.day) & (_DAY.c.revision == _ROW.c.revision)
        )
        if days is not None:
            if not days:
                return {}
            revisions = revisions.where(_DAY.c.day.in_(days))
            rows = rows.where(_DAY.c.day.in_(days))
        if start is not None:
            revisions, rows = revisions.where(_DAY.c.day >= start), rows.where(_DAY.c.day >= start)
        if end is not None:
            revisions, rows = revisions.where(_DAY.c.day <= end), rows.where(_DAY.c.day <= end)
        by_day: dict[date, list[ModelTokens]] = defaultdict(list)
        for day, permaslug, tokens in connection.execute(rows.order_by(_ROW.c.day, _ROW.c.rank)):
            by_day[day].append(ModelTokens(permaslug, tokens))
        return {
            day: DaySnapshot(day, tuple(by_day[day]), other, _aware(as_of), revision)
            for day, revision, as_of, other in connection.execute(revisions.order_by(_REVISION.c.day))
        }

    def days(self, start: date | None = None, end: date | None = None) -> tuple[DaySnapshot, ...]:
        """Current revisions of the stored days between ``start`` and ``end`` (inclusive), oldest first."""
        with self.engine.connect() as connection:
            return tuple(self._load(connection, start=start, end=end).values())

    def get_day(self, day: date) -> DaySnapshot | None:
        with self.engine.connect() as connection:
            return self._load(connection, [day]).get(day)

    def revisions(self, day: date) -> tuple[DaySnapshot, ...]:
        """Every stored revision of ``day``, oldest first."""
        with self.engine.connect() as connection:
            heads = connection.execute(
                select(_REVISION.c.revision, _REVISION.c.as_of, _REVISION.c.other_tokens)
                .where(_REVISION.c.day == day)
                .order_by(_REVISION.c.revision)
            ).all()
            rows = connection.execute(
                select(_ROW.c.revision, _ROW.c.permaslug, _ROW.c.tokens)
                .where(_ROW.c.day == day)
                .order_by(_ROW.c.revision, _ROW.c.rank)
            ).all()
        by_revision: dict[int, list[ModelTokens]] = defaultdict(list)
        for revision, permaslug, tokens in rows:
            by_revision[revision].append(ModelTokens(permaslug, tokens))
        return tuple(
            DaySnapshot(day, tuple(by_revision[rev]), other, _aware(as_of), rev) for rev, as_of, other in heads
        )

    def stored_days(self) -> tuple[date, ...]:
        with self.engine.connect() as connection:
            return tuple(connection.execute(select(_DAY.c.day).order_by(_DAY.c.day)).scalars())

    def latest_day(self) -> date | None:
        stored = self.stored_days()
        return stored[-1] if stored else None

    # -- models ------------------------------------------------------------------------------------------
    def replace_models(self, infos: Iterable[ModelInfo]) -> int:
        """Make the stored catalogue ``infos``, writing only the entries that changed (an unchanged catalogue
        writes nothing, so each model's ``updated_at`` says when it last changed); returns how many are stored."""
        records = {
            info.permaslug: {
                "permaslug": info.permaslug,
                "name": info.name,
                "author": info.author,
                "context_length": info.context_length,
                "prompt_price": info.prompt_price,
                "completion_price": info.completion_price,
                "open_weights": info.open_weights,
            }
            for info in infos
            if info.permaslug != OTHER
        }
        columns = [_MODEL.c[name] for name in next(iter(records.values()), {})] or [_MODEL.c.permaslug]
        with self.engine.begin() as connection:
            stored = {row["permaslug"]: dict(row) for row in connection.execute(select(*columns)).mappings()}
            gone = [slug for slug in stored if slug not in records]
            changed = [record for slug, record in records.items() if stored.get(slug) != record]
            if gone:
                connection.execute(delete(_MODEL).where(_MODEL.c.permaslug.in_(gone)))
            if changed:
                updated_at = _utc(self._now())
                connection.execute(delete(_MODEL).where(_MODEL.c.permaslug.in_([r["permaslug"] for r in changed])))
                connection.execute(insert(_MODEL), [record | {"updated_at": updated_at} for record in changed])
        return len(records)

    def models(self) -> dict[str, ModelInfo]:
        with self.engine.connect() as connection:
            found = connection.execute(select(_MODEL).order_by(_MODEL.c.permaslug)).mappings().all()
        return {
            row["permaslug"]: ModelInfo(
                row["permaslug"],
                row["name"],
                row["author"],
                row["context_length"],
                row["prompt_price"],
                row["completion_price"],
                row["open_weights"],
                in_catalogue=True,
            )
            for row in found
        }

    # -- what the sources said last time -----------------------------------------------------------------
    def source_marks(self) -> dict[str, str]:
        """Validators and hashes of the sources' last answers (``bot.sources.marks``)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(_STATE.c.key, _STATE.c.value).where(_STATE.c.key.startswith(MARK_PREFIX, autoescape=True))
            ).all()
        return {str(key).removeprefix(MARK_PREFIX): json.loads(value) for key, value in rows}

    def save_source_marks(self, changed: Mapping[str, str]) -> None:
        """Store the marks that changed (nothing is written when none did). Names are short (the key column holds
        64 characters)."""
        if not changed:
            return
        too_long = [key for key in changed if len(MARK_PREFIX + key) > MARK_KEY_LENGTH]
        if too_long:
            raise ValueError(f"source mark names longer than {MARK_KEY_LENGTH - len(MARK_PREFIX)}: {too_long}")
        now = _utc(self._now())
        with self.engine.begin() as connection:
            keys = [MARK_PREFIX + key for key in changed]
            connection.execute(delete(_STATE).where(_STATE.c.key.in_(keys)))
            connection.execute(
                insert(_STATE),
                [
                    {"key": MARK_PREFIX + key, "value": json.dumps(value), "updated_at": now}
                    for key, value in changed.items()
                ],
            )

    # -- aliases -----------------------------------------------------------------------------------------
    def aliases(self) -> dict[str, str]:
        """Old permaslug → new permaslug, as the operator linked them."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(_ALIAS.c.old_permaslug, _ALIAS.c.new_permaslug)).all()
        return {str(old): str(new) for old, new in rows}

    def add_alias(self, old: str, new: str) -> None:
        """Link ``old`` to ``new`` (replacing an earlier link of ``old``); raises ``AliasError`` on a loop."""
        resolved({**self.aliases(), old: new})
        with self.engine.begin() as connection:
            connection.execute(delete(_ALIAS).where(_ALIAS.c.old_permaslug == old))
            connection.execute(
                insert(_ALIAS), [{"old_permaslug": old, "new_permaslug": new, "created_at": _utc(self._now())}]
            )

    def remove_alias(self, old: str) -> bool:
        with self.engine.begin() as connection:
            return connection.execute(delete(_ALIAS).where(_ALIAS.c.old_permaslug == old)).rowcount == 1

    def history(self, end: date | None = None) -> tuple[DaySnapshot, ...]:
        """Every stored day up to ``end`` with the operator's aliases applied: what digests and charts read."""
        return with_aliases(self.days(end=end), self.aliases())
