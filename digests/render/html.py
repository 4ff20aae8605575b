"""Web pages and the Atom feed, from Jinja2 templates (``templates/``) with autoescaping on.

Digest pages are rendered from the digest's JSON document (``render.document``), the same document that is frozen
into every published message, so an archived digest reads exactly as it was published and the front page uses the
same template. Every name and author comes from the source: the templates pass them through ``display_text``
(invisible and bidi characters removed, one line, 80 characters) and autoescaping makes them text, never markup.
Pure: values in, text out (the templates are read from the package once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from digests.delivery import Message
from digests.numbers import format_as_of, format_change, format_share, format_tokens, format_usd
from digests.safety import display_text
from digests.views import Match, ModelCard

HOW_TO_READ = (
    (
        "Revealed preference, not quality",
        "The rankings count tokens that people and apps sent through OpenRouter: what they chose to use, not how "
        "good a model is, and not its use anywhere else.",
    ),
    (
        "A day is published after it ends",
        "A UTC day appears once OpenRouter reports it complete, usually early the next morning (UTC). Today is "
        "never shown: it is not over.",
    ),
    (
        "Tokens, not requests",
        "Volume is tokens in and out. One long conversation can outweigh thousands of short ones, so a model can "
        "rank high with few users.",
    ),
    (
        "Tokenizers differ",
        "Each model family splits text into tokens its own way: the same text can be more tokens on one model than "
        "another, so volumes are not strictly comparable across families.",
    ),
    (
        "Top 50, and everything else",
        "OpenRouter lists the 50 largest models of each day and sums the rest as 'all other models'. A model "
        "missing from a day was below #50 that day; its total over a week is then a lower bound (marked ≥).",
    ),
    (
        "Figures can be restated",
        "OpenRouter may correct a day's figures for two or three days after it closes. rankbot keeps every "
        "revision; a digest whose figures changed says 'revised', and a correction follows when a rank changed.",
    ),
)


@dataclass(frozen=True, slots=True)
class Site:
    """What every page needs to know about the site."""

    title: str
    description: str
    base_url: str
    """Absolute, without a trailing slash (``https://rankings.example.com``): the feed's links."""
    root: str = ""
    """The path prefix of every link (``/rankbot`` behind a proxy that serves the site there; usually empty)."""
    newsletter: bool = False
    """Whether the site offers the email newsletter (a "Subscribe" link on every page)."""

    def url(self, path: str, **query: Any) -> str:
        """A site link: ``root + path`` (and a query string of the non-empty values)."""
        wanted = {key: value for key, value in query.items() if value not in (None, "")}
        return self.root + path + (f"?{urlencode(wanted)}" if wanted else "")

    def absolute(self, path: str) -> str:
        return self.base_url + self.url(path)

    def model_url(self, permaslug: str) -> str:
        return self.url("/models/" + quote(permaslug, safe="/:"))

    def archive_url(self, digest_id: str) -> str:
        return self.url("/archive/" + quote(digest_id, safe=":"))

    def chart_url(self, digest_id: str, name: str) -> str:
        return self.url(f"/charts/{quote(digest_id, safe=':')}/{quote(name)}.png")

    def spark_url(self, permaslug: str) -> str:
        """A model's sparkline (PNG)."""
        return self.url("/charts/models/" + quote(permaslug, safe="/:"))


@dataclass(frozen=True, slots=True)
class ChartRef:
    """An image on a page: where it is and what it shows."""

    url: str
    alt: str
    width: int
    height: int
    caption: str = ""


@dataclass(frozen=True, slots=True)
class Revisions:
    """Where an archived digest stands among the revisions of its period."""

    latest: Message | None = None
    """The newest revision, when it is not this one: this digest was revised."""
    corrects: str | None = None
    """The digest this one corrects."""


@dataclass(frozen=True, slots=True)
class FeedEntry:
    message: Message
    document: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Pagination:
    number: int
    pages: int
    total: int
    newer: str | None = None
    older: str | None = None
    items: tuple[Message, ...] = field(default_factory=tuple)


def _as_of(value: str | datetime) -> str:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return format_as_of(moment)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _shown(row: Mapping[str, Any]) -> str:
    """A row's name as people see it: cleaned, with variant tags."""
    tags = "".join(f" [{display_text(str(tag), 20)}]" for tag in row.get("tags", ()))
    return display_text(str(row.get("name") or row.get("permaslug") or "")) + tags


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("digests.render", "templates"),
        autoescape=select_autoescape(["html", "xml"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(
        tokens=format_tokens,
        share=format_share,
        change=format_change,
        usd=format_usd,
        as_of=_as_of,
        iso=_iso,
        text=display_text,
        shown=_shown,
    )
    environment.globals["how_to_read"] = HOW_TO_READ
    environment.globals["feed_summary"] = feed_summary
    return environment


def _render(template: str, **values: Any) -> str:
    return _environment().get_template(template).render(**values)


def _names(document: Mapping[str, Any]) -> dict[str, str]:
    """Permaslug → shown name, for the call-outs and alerts (which name models by permaslug)."""
    names = {row["permaslug"]: _shown(row) for row in document.get("dropped", ())}
    names.update({row["permaslug"]: _shown(row) for row in document.get("rows", ())})
    return names


def render_home(document: Mapping[str, Any], site: Site, charts: Sequence[ChartRef], switch: Mapping[str, str]) -> str:
    """The front page: the latest day (or week) with its charts, movers, how to read it, caveats, attribution.
    ``switch`` maps ``day``/``week`` to their URLs."""
    return _render(
        "home.html", site=site, doc=document, names=_names(document), charts=charts, switch=switch, page="home"
    )


def render_archive(pagination: Pagination, site: Site) -> str:
    """Every published digest, newest first, one page of them."""
    return _render("archive.html", site=site, pagination=pagination, page="archive")


def render_archived(
    document: Mapping[str, Any], message: Message, site: Site, charts: Sequence[ChartRef], revisions: Revisions
) -> str:
    """One digest as it was published, saying whether it was revised and linking the correction."""
    return _render(
        "archived.html",
        site=site,
        doc=document,
        names=_names(document),
        message=message,
        charts=charts,
        revisions=revisions,
        page="archive",
    )


def render_model(card: ModelCard, site: Site, spark: ChartRef | None, attribution: str) -> str:
    """A model's card: rank history, peak, days in the top 50 and at #1, pricing, context, open weights, spend."""
    return _render("model.html", site=site, card=card, spark=spark, attribution=attribution, page="models")


def render_search(query: str, matches: Sequence[Match], site: Site, attribution: str | None) -> str:
    return _render("search.html", site=site, query=query, matches=matches, attribution=attribution, page="models")


def render_error(status: int, message: str, site: Site) -> str:
    """A 404 or 500 page: what happened, in one line, and the way back."""
    return _render("error.html", site=site, status=status, message=message, page="")


def render_email_page(site: Site, title: str, lines: Sequence[str], action: str | None = None, button: str = "") -> str:
    """A newsletter page (confirmed, unsubscribed, a link that no longer works): what happened, and at most one
    button, which posts to ``action``."""
    return _render("email_page.html", site=site, title=title, lines=lines, action=action, button=button, page="")


def render_email_subscribe(site: Site, action: str, address: str = "", cadence: str = "weekly",
                           problem: str = "") -> str:  # fmt: skip
    """The subscribe form: an address, weekly or daily, and a field only robots fill in."""
    return _render("email_subscribe.html", site=site, action=action, address=address, cadence=cadence,
                   problem=problem, page="subscribe")  # fmt: skip


def render_email_preferences(
    site: Site, address: str, cadence: str, action: str, unsubscribe: str, saved: str = ""
) -> str:
    """A subscriber's preferences: the cadence to choose, and the way out."""
    return _render("email_preferences.html", site=site, address=address, cadence=cadence, action=action,
                   unsubscribe=unsubscribe, saved=saved, page="")  # fmt: skip


def render_feed(entries: Sequence[FeedEntry], site: Site, updated: datetime) -> str:
    """The Atom 1.0 feed of the archive: one entry per digest, its movers summarised in the entry itself."""
    return _render("feed.xml", site=site, entries=entries, updated=updated)


def feed_summary(document: Mapping[str, Any]) -> str:
    """What moved, in one paragraph, with the source days and the attribution: an entry readable without a click."""
    names = _names(document)
    said = [f"{c['title']}: {names.get(c['permaslug'], c['permaslug'])} ({c['detail']})" for c in document["callouts"]]
    said += [f"{names.get(a['permaslug'], a['permaslug'])}: {a['reason']}" for a in document["alerts"]]
    moves = "; ".join(said) if said else "No notable movements under the current thresholds."
    leader = _shown(document["rows"][0]) if document.get("rows") else "no ranked model"
    return f"{document['period']['label']}. #1 {leader}. {moves} {document['attribution']}"
