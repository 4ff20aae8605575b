"""The operator's routes: ``/healthz`` (JSON, 503 when the database is unreachable) and ``/metrics``
(Prometheus text)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)


def ops_routes(health: Callable[[], Mapping[str, Any]], metrics: Metrics) -> list[Route]:
    """``health`` is called in a worker thread (it reads the database) for each ``/healthz``."""

    async def healthz(_: Request) -> Response:
        try:
            body = await asyncio.to_thread(health)
        except SQLAlchemyError as error:
            log.warning("health check: database unreachable: %s", type(error).__name__)
            return JSONResponse({"status": "down", "reason": "database unreachable"}, status_code=503)
        return JSONResponse(body)

    async def metrics_page(_: Request) -> Response:
        try:
            body = await asyncio.to_thread(metrics.exposition)
        except SQLAlchemyError:
            return Response("database unreachable\n", status_code=503, media_type="text/plain")
        return Response(body, media_type=CONTENT_TYPE)

    return [Route("/healthz", healthz), Route("/metrics", metrics_page)]
