"""The public pages: ``/`` (the latest day or week), ``/archive`` and ``/archive/<digest id>``, ``/models`` and
``/models/<permaslug>``, and ``/feed.atom``.

Each page is rendered once per site version (in a thread) and then served from memory; its ETag is known before it
is rendered, so ``If-None-Match`` answers 304 at once. Unknown digests and models are 404 pages, never 500s.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.config import WebConfig
from bot.web.security import Origin
from bot.web.site import Rendered, SiteData
from digests.digest import Digest, NoDataError
from digests.labels import attribution
from digests.model import DaySnapshot, ModelInfo
from digests.render.alt_text import bump_alt, share_alt, sparkline_alt
from digests.render.document import digest_document
from digests.render.html import (
    ChartRef,
    FeedEntry,
    Pagination,
    Revisions,
    Site,
    render_archive,
    render_archived,
    render_feed,
    render_home,
    render_model,
    render_search,
)
from digests.series import bump_series, share_series, sparkline
from digests.views import model_card, search_models

HTML = "text/html; charset=utf-8"
ATOM = "application/atom+xml; charset=utf-8"
PAGE_SIZE = 20
FEED_ENTRIES = 50
CHART_SIZE = (1200, 675)
SPARK_SIZE = (600, 160)
CHART_CAPTIONS = {
    "bump": "Rank by day of the top 10: this period and the one before.",
    "share": "Share of all tokens per day: the top 10, the rest of the top 50, and all other models.",
}


class Pages:
    def __init__(self, data: SiteData, web: WebConfig, newsletter: bool = False) -> None:
        self.data = data
        self.web = web
        self.newsletter = newsletter
        self.origin = Origin(web.public_url, web.trusted_proxies)

    def site(self, request: Request) -> Site:
        base = self.origin.base_url(request)
        return Site(self.web.title, self.web.description, base, self.origin.root, self.newsletter)

    async def respond(self, request: Request, render: Callable[[Site], Rendered]) -> Response:
        """The page for this request: 304 when the client has this version, from memory when rendered before, else
        rendered now (in a thread) and kept."""
        site = self.site(request)
        key = f"{request.url.path}?{request.url.query}@{site.base_url}"
        version = self.data.fresh_version()
        if version is None:
            version = await asyncio.to_thread(self.data.version)
        etag = SiteData.etag(version, key)
        headers = {"ETag": etag, "Cache-Control": "public, max-age=60"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        page = self.data.cached(key, version)
        if page is None:
            page = await asyncio.to_thread(self.data.page, key, version, lambda: render(site))
        return Response(page.body, status_code=page.status, media_type=page.media_type, headers=headers)

    # -- pages -------------------------------------------------------------------------------------------
    async def home(self, request: Request) -> Response:
        kind = "week" if request.query_params.get("period") == "week" else "day"

        def render(site: Site) -> Rendered:
            digest = self.data.latest(kind)
            if digest is None:
                raise HTTPException(404, "No complete day is stored yet: the first poll has not finished.")
            history, _ = self.data.history()
            charts = [
                ChartRef(
                    site.chart_url(digest.id, "bump"),
                    bump_alt(bump_series(digest, history)),
                    *CHART_SIZE,
                    CHART_CAPTIONS["bump"],
                ),
                ChartRef(
                    site.chart_url(digest.id, "share"),
                    share_alt(share_series(digest, history)),
                    *CHART_SIZE,
                    CHART_CAPTIONS["share"],
                ),
            ]
            switch = {"day": site.url("/"), "week": site.url("/", period="week")}
            html = render_home(digest_document(digest), site, charts, switch)
            return Rendered(html.encode(), HTML)

        return await self.respond(request, render)

    async def archive(self, request: Request) -> Response:
        number = _page_number(request.query_params.get("page"))

        def render(site: Site) -> Rendered:
            page = self.data.archive.page(number, PAGE_SIZE)
            if number > page.pages:
                raise HTTPException(404, f"The archive has {page.pages} page(s); there is no page {number}.")
            pagination = Pagination(
                number,
                page.pages,
                page.total,
                newer=site.url("/archive", page=number - 1 if number > 2 else None) if number > 1 else None,
                older=site.url("/archive", page=number + 1) if number < page.pages else None,
                items=page.messages,
            )
            return Rendered(render_archive(pagination, site).encode(), HTML)

        return await self.respond(request, render)

    async def archived(self, request: Request) -> Response:
        digest_id = request.path_params["digest_id"]

        def render(site: Site) -> Rendered:
            message = self.data.archive.digest(digest_id)
            if message is None:
                raise HTTPException(404, f"No published digest is called {digest_id!r}: see the archive.")
            document = json.loads(message.full["json"])
            revisions = self.data.archive.revisions(message.kind, message.first_day, message.last_day)
            latest = revisions[-1] if revisions and revisions[-1].id != message.id else None
            stored = self.data.archive.chart_alts(message.id)
            charts = [
                ChartRef(site.chart_url(message.id, name), stored[name], *CHART_SIZE, CHART_CAPTIONS[name])
                for name in ("bump", "share")
                if name in stored
            ]
            html = render_archived(document, message, site, charts, Revisions(latest, message.corrects))
            return Rendered(html.encode(), HTML)

        return await self.respond(request, render)

    async def models(self, request: Request) -> Response:
        query = (request.query_params.get("q") or "")[:100]

        def render(site: Site) -> Rendered:
            history, catalogue = self.data.history()
            matches = search_models(query, history, catalogue, limit=20)
            latest = self.data.latest("day")
            line = latest.attribution if latest else None
            return Rendered(render_search(query, matches, site, line).encode(), HTML)

        return await self.respond(request, render)

    async def model(self, request: Request) -> Response:
        permaslug = request.path_params["permaslug"]

        def render(site: Site) -> Rendered:
            history, catalogue = self.data.history()
            try:
                card = model_card(permaslug, history, catalogue)
            except NoDataError:
                raise HTTPException(404, f"rankbot has no stored day with {permaslug!r} in the top 50.") from None
            spark = ChartRef(
                site.spark_url(permaslug),
                _spark_alt(permaslug, history, catalogue),
                *SPARK_SIZE,
                "Rank (line) and tokens (bars) by day over the last 30 days.",
            )
            html = render_model(card, site, spark, attribution(card.as_of))
            return Rendered(html.encode(), HTML)

        return await self.respond(request, render)

    async def feed(self, request: Request) -> Response:
        def render(site: Site) -> Rendered:
            page = self.data.archive.page(1, FEED_ENTRIES)
            entries = [FeedEntry(m, json.loads(m.full["json"])) for m in page.messages]
            updated = max((m.created_at for m in page.messages if m.created_at), default=_feed_epoch(self.data))
            return Rendered(render_feed(entries, site, updated).encode(), ATOM)

        return await self.respond(request, render)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.home),
            Route("/archive", self.archive),
            Route("/archive/{digest_id}", self.archived),
            Route("/models", self.models),
            Route("/models/{permaslug:path}", self.model),
            Route("/feed.atom", self.feed),
        ]


def _page_number(raw: str | None) -> int:
    try:
        number = int(raw or 1)
    except ValueError:
        raise HTTPException(404, f"{raw!r} is not a page number.") from None
    if number < 1:
        raise HTTPException(404, f"{raw!r} is not a page number.")
    return number


def _spark_alt(permaslug: str, history: Sequence[DaySnapshot], catalogue: Mapping[str, ModelInfo]) -> str:
    return sparkline_alt(sparkline(permaslug, history, catalogue))


def _feed_epoch(data: SiteData) -> datetime:
    """An empty feed's ``updated``: the latest stored day's ``as_of``, so it does not change between runs."""
    latest: Digest | None = data.latest("day")
    return latest.as_of if latest else datetime(2025, 1, 1, tzinfo=UTC)
