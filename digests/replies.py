"""What ``/rankings`` answers, as values each platform renders its own way (``digests.render.slack`` …): a view of
the rankings (``digests.views``), a model card with its sparkline, a list of models to choose from, or text.

Pure: values only.
"""

from __future__ import annotations

from dataclasses import dataclass

from digests.views import Match, ModelCard, MoversView, TopView


@dataclass(frozen=True, slots=True)
class Notice:
    """A reply that is text: help, a confirmation, a refusal, a bad argument with its example."""

    lines: tuple[str, ...]
    example: str | None = None


@dataclass(frozen=True, slots=True)
class Card:
    card: ModelCard
    spark_url: str | None
    """The sparkline's absolute URL on the public site (``None`` without ``[web] public_url``)."""
    spark_alt: str


@dataclass(frozen=True, slots=True)
class Matches:
    """Several models match the query: the person picks one."""

    query: str
    matches: tuple[Match, ...]


Answer = TopView | MoversView | Card | Matches | Notice
