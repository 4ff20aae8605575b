"""The web app factory: the public pages (when ``[web] enabled``), chart images, static files and the operator's
routes, behind the security headers, with a page for 404 and 500 that says what happened in one line."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from bot.config import WebConfig
from bot.metrics import Metrics
from bot.web.charts import Charts
from bot.web.ops import ops_routes
from bot.web.pages import HTML, Pages
from bot.web.security import SecurityHeaders
from bot.web.site import SiteData
from digests.render.html import render_error

if TYPE_CHECKING:
    from bot.email.web import EmailPages

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


@dataclass
class WebParts:
    """What the web app serves: health and metrics always; the pages when ``data`` is given."""

    health: Callable[[], Mapping[str, Any]]
    metrics: Metrics
    web: WebConfig
    data: SiteData | None = None
    chat: Sequence[BaseRoute] = ()
    """The chat apps' endpoints (``POST /slack/events``…), served whether or not the pages are."""
    email: EmailPages | None = None
    """The newsletter's confirm and unsubscribe pages (with the pages)."""


ICON = (STATIC / "icon.svg").read_bytes()


async def favicon(_: Request) -> Response:
    return Response(ICON, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})


def web_app(parts: WebParts) -> Starlette:
    routes: list[BaseRoute] = [*ops_routes(parts.health, parts.metrics), *parts.chat]
    pages = None
    if parts.web.enabled and parts.data is not None:
        pages = Pages(parts.data, parts.web, newsletter=parts.email is not None)
        routes += [*pages.routes(), *Charts(parts.data).routes()]
        if parts.email is not None:
            routes += parts.email.routes(pages.site)
        routes.append(Mount("/static", StaticFiles(directory=STATIC), name="static"))
        routes.append(Route("/favicon.ico", favicon))  # asked for by browsers on pages without a <link rel=icon>

    def error_page(request: Request, status: int, message: str) -> Response:
        if pages is None or request.url.path in ("/healthz", "/metrics") or request.url.path.startswith("/slack/"):
            return Response(message + "\n", status_code=status, media_type="text/plain")
        return Response(render_error(status, message, pages.site(request)), status_code=status, media_type=HTML)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        message = (
            error.detail
            if error.status_code != 404 or error.detail != "Not Found"
            else (f"There is no page at {request.url.path}.")
        )
        return error_page(request, error.status_code, str(message))

    async def server_error(request: Request, error: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_page(request, 500, "rankbot could not build this page; the error is in its log.")

    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
