"""An OpenRouter-compatible HTTP server on 127.0.0.1, for ``rankbot demo`` and the tests.

It serves day snapshots in the exact real formats — the keyed ``rankings-daily`` Data API, the keyless daily exports
(manifest, latest and dated CSV/JSON snapshots with sha256) and the model catalogue — and can be scripted to fail:
status codes with ``Retry-After``, HTML pages, truncated bodies, connection resets, slow answers and payload edits.
It records every request so tests can assert on what the server *received*.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from digests.model import OTHER, DaySnapshot, ModelInfo

API_PATH = "/api/v1/datasets/rankings-daily"
EXPORTS_PATH = "/api/v1/datasets/exports/rankings-daily/"
MODELS_PATH = "/api/v1/models"
DATA_START = date(2025, 1, 1)
MAX_WINDOW_DAYS = 366
EXPORT_WINDOW_DAYS = 30


@dataclass
class Fault:
    """One scripted misbehaviour for requests whose path contains ``path``; used ``times`` times, then gone.

    ``kind``: ``status`` (answer ``status`` with ``body`` and ``headers``), ``html`` (an HTML page with 200),
    ``truncate`` (cut the real body in half), ``reset`` (close the connection with RST), ``delay`` (sleep
    ``seconds`` first, then answer normally), ``edit`` (pass the JSON payload through ``edit`` first).
    """

    path: str
    kind: str
    status: int = 500
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    edit: Callable[[Any], Any] | None = None
    times: int = 1


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


def _rows_of(snapshot: DaySnapshot) -> list[tuple[str, int]]:
    rows = [(row.permaslug, row.tokens) for row in snapshot.rows]
    if snapshot.other_tokens is not None:
        rows.append((OTHER, snapshot.other_tokens))
    return rows


def api_rows(snapshots: Iterable[DaySnapshot]) -> list[dict[str, str]]:
    """Data API rows: by day, tokens descending, ``other`` last; ``total_tokens`` as a decimal string."""
    return [
        {"date": s.day.isoformat(), "model_permaslug": slug, "total_tokens": str(tokens)}
        for s in snapshots
        for slug, tokens in _rows_of(s)
    ]


def export_csv(snapshots: Iterable[DaySnapshot]) -> str:
    """The daily export's CSV, with CRLF line endings and an empty ``rank`` on ``other``, as the real one."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["date", "model_permaslug", "rank", "total_tokens", "share_of_daily_tokens"])
    for s in snapshots:
        total = s.total_tokens or 1
        for rank, (slug, tokens) in enumerate(_rows_of(s), start=1):
            writer.writerow([s.day.isoformat(), slug, "" if slug == OTHER else rank, tokens, repr(tokens / total)])
    return buffer.getvalue()


def _catalogue_entry(info: ModelInfo) -> dict[str, Any]:
    return {
        "id": info.permaslug.rsplit("-", 1)[0] if info.permaslug[-8:].isdigit() else info.permaslug,
        "canonical_slug": info.permaslug,
        "name": f"{info.author}: {info.name}" if info.author else info.name,
        "created": 1_760_000_000,
        "context_length": info.context_length,
        "pricing": {
            "prompt": f"{info.prompt_price or 0:.10f}",
            "completion": f"{info.completion_price or 0:.10f}",
        },
        "hugging_face_id": f"{info.author.lower()}/{info.name.replace(' ', '-')}" if info.open_weights else "",
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class LoopbackServer(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1 that stays quiet when a client hangs up mid-answer (a killed test
    process, a client timeout): that is the client's business, not an error of the fake."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeOpenRouter:
    """The fake server. Use as a context manager; ``url`` is its base URL (``http://127.0.0.1:PORT``)."""

    def __init__(
        self,
        days: Sequence[DaySnapshot],
        catalogue: Sequence[ModelInfo] = (),
        *,
        today: date,
        api_key: str | None = "test-key",
        first_snapshot: date | None = None,
        partial_today: DaySnapshot | None = None,
    ) -> None:
        self.days = {s.day: s for s in days}
        self.catalogue = list(catalogue)
        self.today = today
        self.api_key = api_key
        self.first_snapshot = first_snapshot or today
        self.partial_today = partial_today
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.validators = True
        """Send an ``ETag`` with every answer and honour ``If-None-Match`` (304), as a CDN in front would."""
        self._lock = threading.Lock()
        self._server = LoopbackServer(_handler_for(self), "fake-openrouter")

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> FakeOpenRouter:
        self._server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.stop()

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def restate(self, day: date, changes: dict[str, int], as_of: datetime) -> None:
        """Change some rows of a published day, as OpenRouter does for 2–3 days after it closes."""
        old = self.days[day]
        rows = dict(_rows_of(old))
        rows.update(changes)
        self.days[day] = DaySnapshot.of(day, rows.items(), as_of)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if path in r.path]

    # -- answers ------------------------------------------------------------------------------------------
    def last_complete(self) -> date:
        return min(self.today - timedelta(days=1), max(self.days, default=self.today - timedelta(days=1)))

    def as_of(self) -> datetime:
        return max((s.as_of for s in self.days.values()), default=datetime.now(UTC))

    def _window(self, start: date, end: date) -> list[DaySnapshot]:
        found = [self.days[d] for d in sorted(self.days) if start <= d <= end]
        if self.partial_today is not None and start <= self.partial_today.day <= end:
            found.append(self.partial_today)
        return found

    def api_answer(self, query: dict[str, str], auth: str | None) -> tuple[int, Any]:
        if self.api_key is None or auth != f"Bearer {self.api_key}":
            return 401, {"error": {"code": 401, "message": "Missing or invalid API key"}}
        try:
            end = date.fromisoformat(query["end_date"]) if "end_date" in query else self.last_complete()
            start = date.fromisoformat(query["start_date"]) if "start_date" in query else end - timedelta(days=30)
        except ValueError:
            return 400, {"error": {"code": 400, "message": "start_date and end_date must be YYYY-MM-DD"}}
        if (end - start).days + 1 > MAX_WINDOW_DAYS:
            return 400, {"error": {"code": 400, "message": "Date range cannot exceed 366 days"}}
        if start > end:
            return 400, {"error": {"code": 400, "message": "start_date must not be after end_date"}}
        start, end = max(start, DATA_START), min(end, self.last_complete())
        meta = {
            "as_of": _iso(self.as_of()),
            "version": "v1",
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
        }
        if self.partial_today is not None:
            end = self.partial_today.day
        return 200, {"data": api_rows(self._window(start, end)), "meta": meta}

    def snapshot_days(self, snapshot: date) -> list[DaySnapshot]:
        return self._window(snapshot - timedelta(days=EXPORT_WINDOW_DAYS), snapshot - timedelta(days=1))

    def export_answer(self, name: str) -> tuple[int, Any]:
        if name == "latest.manifest.json":
            return 200, self.manifest()
        stem, _, ext = name.partition(".")
        if stem == "latest":
            snapshot = self.today
        else:
            try:
                snapshot = date.fromisoformat(stem)
            except ValueError:
                return 404, {"error": {"code": 404, "message": "Not found"}}
            if not self.first_snapshot <= snapshot <= self.today:
                return 404, {"error": {"code": 404, "message": "Not found"}}
        days = self.snapshot_days(snapshot)
        if ext == "csv":
            return 200, export_csv(days)
        if ext == "json":
            return 200, {"data": api_rows(days)}
        return 404, {"error": {"code": 404, "message": "Not found"}}

    def manifest(self) -> dict[str, Any]:
        days = self.snapshot_days(self.today)
        body_csv = export_csv(days).encode()
        body_json = json.dumps({"data": api_rows(days)}).encode()
        base = f"{self.url}{EXPORTS_PATH}"
        stem = self.today.isoformat()

        def described(ext: str, body: bytes, stem: str = stem) -> dict[str, Any]:
            return {
                "url": f"{base}{stem}.{ext}",
                "bytes": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
            }

        return {
            "dataset": "rankings-daily",
            "schema_version": "1",
            "snapshot_date": stem,
            "retrieved_at": _iso(self.as_of()),
            "row_count": sum(len(_rows_of(s)) for s in days),
            "update_cadence": "daily",
            "license": "CC-BY-4.0",
            "attribution": "Source: OpenRouter (openrouter.ai/rankings)",
            "files": {"csv": described("csv", body_csv), "json": described("json", body_json)},
            "latest": {
                "csv": described("csv", body_csv, "latest"),
                "json": described("json", body_json, "latest"),
            },
        }

    def models_answer(self) -> tuple[int, Any]:
        return 200, {"data": [_catalogue_entry(info) for info in self.catalogue]}

    def answer(self, path: str, query: dict[str, str], auth: str | None) -> tuple[int, Any]:
        if path == API_PATH:
            return self.api_answer(query, auth)
        if path.startswith(EXPORTS_PATH):
            return self.export_answer(path.removeprefix(EXPORTS_PATH))
        if path == MODELS_PATH:
            return self.models_answer()
        return 404, {"error": {"code": 404, "message": "Not found"}}

    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path in path:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None


def _handler_for(fake: FakeOpenRouter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``fake.requests`` instead of the log."""

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            fake.requests.append(RecordedRequest(parts.path, query, dict(self.headers.items())))
            fault = fake.take_fault(parts.path)
            if fault is not None and fault.kind == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            if fault is not None and fault.kind == "delay":
                time.sleep(fault.seconds)
            status, payload = fake.answer(parts.path, query, self.headers.get("Authorization"))
            headers: dict[str, str] = {}
            if fault is not None and fault.kind == "edit" and fault.edit is not None:
                payload = fault.edit(payload)
            if fault is not None and fault.kind == "status":
                status, payload, headers = fault.status, fault.body, fault.headers
            if fault is not None and fault.kind == "html":
                status, payload = 200, "<!DOCTYPE html><html><body><h1>Service temporarily unavailable</h1>"
                headers = {"Content-Type": "text/html; charset=utf-8"}
            body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            if fault is not None and fault.kind == "truncate":
                body = body[: len(body) // 2]
            content_type = "text/csv" if parts.path.endswith(".csv") else "application/json"
            if fake.validators and status == 200:
                headers["ETag"] = f'"{hashlib.sha256(body).hexdigest()[:24]}"'
                if self.headers.get("If-None-Match") == headers["ETag"]:
                    status, body = 304, b""
            self.send_response(status)
            self.send_header("Content-Type", headers.pop("Content-Type", content_type))
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler
