"""Headers every response carries, and where a request really came from.

- A strict Content-Security-Policy (nothing but the site's own stylesheet and images; no script at all, inline or
  not; no framing), ``X-Content-Type-Options: nosniff``, a ``Referrer-Policy``.
- ``X-Forwarded-Proto``/``X-Forwarded-Host`` are believed only from ``[web] trusted_proxies``; from anyone else they
  are ignored, so nobody can make the site write links to a host of their choosing.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import ip_address, ip_network
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """ASGI middleware: the headers above on every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


class Origin:
    """The absolute base URL of the site for a request: ``[web] public_url``, or the host the request came to."""

    def __init__(self, public_url: str, trusted_proxies: Sequence[str]) -> None:
        self.public_url = public_url
        self.trusted = [ip_network(entry, strict=False) for entry in trusted_proxies]

    def _trusted(self, request: Request) -> bool:
        if request.client is None or not self.trusted:
            return False
        try:
            address = ip_address(request.client.host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def base_url(self, request: Request) -> str:
        if self.public_url:
            return self.public_url
        scheme = request.url.scheme
        host = request.headers.get("host") or request.url.netloc
        if self._trusted(request):
            scheme = request.headers.get("x-forwarded-proto", scheme).split(",")[0].strip() or scheme
            host = request.headers.get("x-forwarded-host", host).split(",")[0].strip() or host
        if scheme not in ("http", "https"):
            scheme = "http"
        return f"{scheme}://{host}"

    def client_ip(self, request: Request) -> str:
        """Who sent the request: the peer, or behind a trusted proxy the nearest address in ``X-Forwarded-For``
        that is not one of the proxies (what a client writes there itself is never believed)."""
        peer = request.client.host if request.client else ""
        if not self._trusted(request):
            return peer
        for entry in reversed(request.headers.get("x-forwarded-for", "").split(",")):
            try:
                hop = ip_address(entry.strip())
            except ValueError:
                return peer
            if not any(hop in network for network in self.trusted):
                return str(hop)
        return peer

    @property
    def root(self) -> str:
        """The path the site lives under: the path of ``public_url`` (a proxy in front of rankbot strips it)."""
        return urlsplit(self.public_url).path.rstrip("/")
