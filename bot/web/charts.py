"""Chart images: ``/charts/<digest id>/<name>.png`` and ``/charts/models/<permaslug>``.

A digest's charts are rendered once and stored: when it is published (the planner stores them), or, for the
digest on the front page that was not published, on the first request for them, if its revision is still the
current one. They never change (the id carries the revision), so they are cached for a year. A model's sparkline
follows the stored days and is kept in memory per site version. matplotlib is imported on first use and draws one
chart at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from datetime import date

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.web.site import SiteData
from digests.digest import NoDataError
from digests.render.charts import Chart

CHART_NAMES = ("bump", "share", "sparkline-1")
DIGEST_ID = re.compile(r"^(day|week):(\d{4}-\d{2}-\d{2})(?:_(\d{4}-\d{2}-\d{2}))?:r(\d+)$")
FOREVER = "public, max-age=31536000, immutable"
_drawing = threading.Lock()


def _png(chart: Chart, request: Request, cache_control: str) -> Response:
    etag = '"' + hashlib.sha256(chart.png).hexdigest()[:24] + '"'
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(chart.png, media_type="image/png", headers=headers)


class Charts:
    def __init__(self, data: SiteData) -> None:
        self.data = data
        self._sparks: dict[tuple[str, str], Chart] = {}

    def _digest_chart(self, digest_id: str, name: str) -> Chart:
        stored = self.data.archive.chart(digest_id, name)
        if stored is not None:
            return stored
        match = DIGEST_ID.match(digest_id)
        if match is None or name not in CHART_NAMES:
            raise HTTPException(404, f"There is no chart {name!r} of {digest_id!r}.")
        kind, first, last = match.group(1), match.group(2), match.group(3)
        try:
            digest = self.data.digest(kind, date.fromisoformat(last or first))
        except NoDataError:
            raise HTTPException(404, f"There is no digest {digest_id!r}.") from None
        if digest.id != digest_id:  # an older revision, never published: its figures are gone
            raise HTTPException(404, f"No chart is stored for {digest_id!r}; the current revision is {digest.id}.")
        from digests.render.charts import digest_charts

        history, models = self.data.history()
        with _drawing:
            charts = digest_charts(digest, history, models)
        self.data.archive.save_charts(digest_id, charts)
        if name not in charts:
            raise HTTPException(404, f"{digest_id!r} has no chart {name!r}.")
        return charts[name]

    def _spark(self, permaslug: str) -> Chart:
        version = self.data.version()
        found = self._sparks.get((permaslug, version))
        if found is not None:
            return found
        history, catalogue = self.data.history()
        if not any(row.permaslug == permaslug for snapshot in history for row in snapshot.rows):
            raise HTTPException(404, f"rankbot has no stored day with {permaslug!r} in the top 50.")
        from digests.render.charts import sparkline_chart
        from digests.series import sparkline

        with _drawing:
            chart = sparkline_chart(sparkline(permaslug, history, catalogue))
        if len(self._sparks) > 256:
            self._sparks.clear()
        self._sparks[(permaslug, version)] = chart
        return chart

    async def digest_chart(self, request: Request) -> Response:
        chart = await asyncio.to_thread(
            self._digest_chart, request.path_params["digest_id"], request.path_params["name"]
        )
        return _png(chart, request, FOREVER)

    async def model_spark(self, request: Request) -> Response:
        chart = await asyncio.to_thread(self._spark, request.path_params["permaslug"])
        return _png(chart, request, "public, max-age=300")

    def routes(self) -> list[Route]:
        return [
            Route("/charts/models/{permaslug:path}", self.model_spark),
            Route("/charts/{digest_id}/{name}.png", self.digest_chart),
        ]
