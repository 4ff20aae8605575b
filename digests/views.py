"""The answers behind ``/rankings``, as values each platform renders its own way: the top N for a day or a week,
the movers, a model card, and model search for autocomplete.

Pure: digests and stored days in, values out.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from digests.digest import Digest, NoDataError
from digests.model import OTHER, DaySnapshot, ModelInfo
from digests.names import display_name, model_info
from digests.safety import display_text
from digests.series import SPARK_DAYS, window


@dataclass(frozen=True, slots=True)
class Honesty:
    """What every answer carries: the source days, ``as_of``, the caveats link and the attribution line."""

    period_label: str
    as_of: datetime
    caveats_url: str
    attribution: str


def _honesty(digest: Digest) -> Honesty:
    return Honesty(digest.period_label, digest.as_of, digest.settings.caveats_url, digest.attribution)


@dataclass(frozen=True, slots=True)
class TopRow:
    rank: int
    permaslug: str
    name: str
    author: str
    tokens_per_day: float
    share: float
    marker: str
    lower_bound: bool


@dataclass(frozen=True, slots=True)
class TopView:
    kind: str
    rows: tuple[TopRow, ...]
    honesty: Honesty


def top_view(digest: Digest, n: int = 10) -> TopView:
    """The top ``n`` of a day or week digest: rank, model, author, tokens per day, share, movement marker."""
    rows = tuple(
        TopRow(
            row.rank,
            row.permaslug,
            display_name(row.info),
            display_text(row.info.author, 40),
            row.tokens_per_day,
            row.share,
            row.movement.marker,
            row.lower_bound,
        )
        for row in digest.rows[:n]
    )
    return TopView(digest.kind, rows, _honesty(digest))


@dataclass(frozen=True, slots=True)
class Mover:
    permaslug: str
    name: str
    headline: str
    """``NEW #1``, ``Biggest climber``... or ``Alert`` for a notable movement without a headline."""
    reason: str


@dataclass(frozen=True, slots=True)
class MoversView:
    kind: str
    movers: tuple[Mover, ...]
    honesty: Honesty


def movers_view(digest: Digest) -> MoversView:
    """The notable movements with the reason each fired, headlines first."""
    movers = [Mover(c.permaslug, digest.name_of(c.permaslug), c.title, c.detail) for c in digest.callouts]
    movers += [Mover(a.permaslug, digest.name_of(a.permaslug), "Alert", a.reason) for a in digest.alerts]
    return MoversView(digest.kind, tuple(movers), _honesty(digest))


@dataclass(frozen=True, slots=True)
class SpendRange:
    """Estimated list-price spend on a day's tokens: all at the prompt price to all at the completion price —
    a range, because OpenRouter does not publish the prompt/completion split."""

    low: float
    high: float


@dataclass(frozen=True, slots=True)
class ModelCard:
    permaslug: str
    name: str
    author: str
    ranks: tuple[tuple[date, int | None], ...]
    """The last 30 days: rank, or ``None`` (below #50, or no data)."""
    peak_rank: int
    peak_day: date
    days_in_top_50: int
    days_at_1: int
    days_stored: int
    latest_day: date
    latest_rank: int | None
    latest_tokens: int | None
    latest_share: float | None
    prompt_price: float | None
    completion_price: float | None
    context_length: int | None
    open_weights: bool | None
    spend: SpendRange | None
    as_of: datetime


def model_card(
    permaslug: str, history: Sequence[DaySnapshot], catalogue: Mapping[str, ModelInfo], end: date | None = None
) -> ModelCard:
    """Everything rankbot knows about one model up to ``end`` (default: the latest stored day)."""
    days = sorted((s for s in history if end is None or s.day <= end), key=lambda s: s.day)
    if not days:
        raise NoDataError("no complete day is stored yet: run `rankbot poll` first")
    ranked = [(s, s.ranks().get(permaslug)) for s in days]
    present = [(s, rank) for s, rank in ranked if rank is not None]
    if not present:
        raise NoDataError(f"{permaslug} has not been in the top 50 on any stored day")
    peak_snapshot, peak = min(present, key=lambda item: (item[1], item[0].day))
    latest = days[-1]
    latest_rank = latest.ranks().get(permaslug)
    tokens = next((row.tokens for row in latest.rows if row.permaslug == permaslug), None)
    share = tokens / latest.total_tokens if tokens is not None and latest.total_tokens else None
    info = model_info(permaslug, catalogue)
    spend = None
    if tokens is not None and info.prompt_price is not None and info.completion_price is not None:
        low, high = sorted((tokens * info.prompt_price, tokens * info.completion_price))
        spend = SpendRange(low, high)
    by_day = {s.day: rank for s, rank in ranked}
    return ModelCard(
        permaslug=permaslug,
        name=display_name(info),
        author=display_text(info.author, 40),
        ranks=tuple((day, by_day.get(day)) for day in window(latest.day, SPARK_DAYS)),
        peak_rank=peak,
        peak_day=peak_snapshot.day,
        days_in_top_50=len(present),
        days_at_1=sum(1 for _, rank in present if rank == 1),
        days_stored=len(days),
        latest_day=latest.day,
        latest_rank=latest_rank,
        latest_tokens=tokens,
        latest_share=share,
        prompt_price=info.prompt_price,
        completion_price=info.completion_price,
        context_length=info.context_length,
        open_weights=info.open_weights,
        spend=spend,
        as_of=latest.as_of,
    )


@dataclass(frozen=True, slots=True)
class Match:
    permaslug: str
    name: str
    author: str
    score: float
    """1.0 for an exact permaslug; lower for prefixes, substrings and near-misses."""
    latest_rank: int | None


def _score(query: str, permaslug: str, info: ModelInfo) -> float:
    slug = permaslug.lower()
    name = info.name.lower()
    author = info.author.lower()
    model_part = slug.partition("/")[2]
    if query == slug:
        return 1.0
    if slug.startswith(query) or name.startswith(query) or model_part.startswith(query):
        return 0.9
    if any(query in field for field in (name, slug)):
        return 0.8
    if query == author or author.startswith(query):
        return 0.7
    words = query.split()
    if len(words) > 1 and all(any(word in field for field in (name, slug, author)) for word in words):
        return 0.65
    close = max(
        difflib.SequenceMatcher(None, query, candidate).ratio()
        for candidate in (name, model_part, *name.split(), *model_part.split("-"))
    )
    return 0.6 * close if close >= 0.75 else 0.0


def search_models(
    query: str, history: Sequence[DaySnapshot], catalogue: Mapping[str, ModelInfo], limit: int = 10
) -> list[Match]:
    """Models seen in the stored days that match ``query`` by permaslug, name or author, closest first (better
    ranked first among equals); an empty query gives the latest day's top models. Tolerates typos."""
    latest = max(history, key=lambda s: s.day, default=None)
    latest_ranks = latest.ranks() if latest is not None else {}
    seen = {row.permaslug for snapshot in history for row in snapshot.rows if row.permaslug != OTHER}
    wanted = " ".join(query.lower().split())
    found = []
    for permaslug in seen:
        info = model_info(permaslug, catalogue)
        score = _score(wanted, permaslug, info) if wanted else (1.0 if permaslug in latest_ranks else 0.0)
        if score > 0:
            found.append(
                Match(permaslug, display_name(info), display_text(info.author, 40), score, latest_ranks.get(permaslug))
            )
    found.sort(key=lambda m: (-m.score, m.latest_rank or 999, m.permaslug))
    return found[:limit]
