"""The answer to each ``/rankings`` command, as a value the platform renders: views of the stored days (through the
web's ``SiteData``, so digests are built once per site version) and channel settings (``ChatChannels``). Every
method reads the database: call it in a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from bot.chat.channels import ChatChannels
from bot.web.site import SiteData
from digests.commands import (
    ChannelSettings,
    Command,
    CommandError,
    Help,
    ModelQuery,
    Movers,
    Show,
    Subscribe,
    Unsubscribe,
    Unwatch,
    Watch,
    help_lines,
    text_usage,
)
from digests.digest import Digest, NoDataError
from digests.names import display_name, model_info
from digests.render.alt_text import sparkline_alt
from digests.render.html import Site
from digests.replies import Answer, Card, Matches, Notice
from digests.series import sparkline
from digests.views import Match, TopView, model_card, movers_view, search_models, top_view

NOTHING_STORED = "rankbot has no complete day stored yet: it publishes once OpenRouter's first full day arrives."


@dataclass(frozen=True, slots=True)
class Where:
    """Where a command was given."""

    team: str
    channel: str


def problem(error: CommandError, usage: Callable[[str], str] = text_usage) -> Notice:
    """A bad command: what was wrong, and the example as the platform types it (``usage``)."""
    return Notice((f"That did not work: {error.problem}", f"Try: `{usage(error.example)}`"), error.example)


class Answers:
    def __init__(
        self,
        data: SiteData,
        channels: ChatChannels,
        public_url: str = "",
        usage: Callable[[str], str] = text_usage,
        shown: Callable[[str], str] = str,
    ) -> None:
        self.data = data
        self.channels = channels
        self.site = Site("", "", public_url.rstrip("/")) if public_url else None
        self.usage = usage
        """How the platform types a command given in the text grammar (``/rankings top 25``)."""
        self.shown = shown
        """A model's name from the source as the platform's markup shows it literally (within a notice's lines)."""

    def version(self) -> str:
        """The site version: replies are the same until it changes (``SiteData.page`` caches them by it)."""
        return self.data.version()

    def answer(self, command: Command, where: Where) -> Answer:
        try:
            return self._answer(command, where)
        except CommandError as error:
            return problem(error, self.usage)
        except NoDataError as error:
            return Notice((str(error) if self.data.repo.latest_day() else NOTHING_STORED,))

    def _answer(self, command: Command, where: Where) -> Answer:
        if isinstance(command, Show):
            return self.top(command)
        if isinstance(command, Movers):
            return movers_view(self._digest(command.kind, None))
        if isinstance(command, ModelQuery):
            return self.model(command.query)
        if isinstance(command, Subscribe):
            self.channels.subscribe(where.team, where.channel, command)
            what = "the daily alerts" if command.feed == "daily" else "the weekly digest"
            return Notice((f"Subscribed: this channel gets {what}.", *self._settings(where)))
        if isinstance(command, Unsubscribe):
            self.channels.unsubscribe(where.team, where.channel, command)
            what = {None: "everything", "daily": "the daily alerts", "weekly": "the weekly digest"}[command.feed]
            return Notice((f"Unsubscribed from {what}.", *self._settings(where)))
        if isinstance(command, ChannelSettings):
            if command.changes:
                self.channels.change(where.team, where.channel, command)
                return Notice(("Settings saved.", *self._settings(where)))
            return Notice(tuple(self._settings(where)))
        if isinstance(command, Watch | Unwatch):
            return self.watch(command, where)
        assert isinstance(command, Help)
        first = (f"`{command.unknown}` is not a `{self.usage('')}` command. These are:",) if command.unknown else ()
        return Notice((*first, *help_lines(self.usage)))

    def _digest(self, kind: str, end: date | None) -> Digest:
        if end is not None:
            stored = self.data.repo.stored_days()
            if end not in stored:
                span = f"stored days run from {stored[0]} to {stored[-1]}" if stored else "no day is stored yet"
                raise CommandError(f"no complete day {end} is stored ({span}).", f"day {stored[-1] if stored else end}")
        return self.data.digest(kind, end)

    def top(self, command: Show) -> TopView:
        return top_view(self._digest(command.kind, command.day), command.top)

    def search(self, query: str, limit: int = 8) -> list[Match]:
        """The models ``query`` finds (typos forgiven), best first."""
        history, catalogue = self.data.history()
        if not history:
            raise NoDataError(NOTHING_STORED)
        return search_models(query, history, catalogue, limit=limit)

    @staticmethod
    def _chosen(matches: list[Match]) -> Match | None:
        """The one model meant: an exact permaslug, or a single best match (a model over its ``:free``-style
        variants, which match the same words)."""
        if not matches:
            return None
        if matches[0].score == 1.0 or len(matches) == 1:
            return matches[0]
        best = [m for m in matches if m.score == matches[0].score]
        plain = [m for m in best if ":" not in m.permaslug]
        if matches[0].score >= 0.9 and len(plain) == 1 and len(best) <= 2:
            return plain[0]
        return None

    def model(self, query: str) -> Card | Matches:
        matches = self.search(query)
        chosen = self._chosen(matches)
        if chosen is None:
            return Matches(query, tuple(matches))
        history, catalogue = self.data.history()
        card = model_card(chosen.permaslug, history, catalogue)
        url = self.site.absolute(self.site.spark_url(chosen.permaslug)) if self.site else None
        return Card(card, url, sparkline_alt(sparkline(chosen.permaslug, history, catalogue)))

    def watch(self, command: Watch | Unwatch, where: Where) -> Answer:
        adding = isinstance(command, Watch)
        matches = self.search(command.query)
        chosen = self._chosen(matches)
        if chosen is None:
            return Matches(command.query, tuple(matches))
        self.channels.watch(where.team, where.channel, chosen, adding)
        verb = "Watching" if adding else "No longer watching"
        return Notice((f"{verb} {self.shown(chosen.name)} (`{chosen.permaslug}`).", *self._settings(where)))

    def _settings(self, where: Where) -> list[str]:
        _, catalogue = self.data.history()
        found = self.channels.current(where.team, where.channel)
        slugs = found.target.get("watch", ()) if found else ()
        names = {slug: self.shown(display_name(model_info(slug, catalogue))) for slug in slugs}
        return self.channels.describe(where.team, where.channel, names)
