"""The newsletter's links: a subscriber's opaque key, signed with itsdangerous for one purpose each (a confirm
token is not an unsubscribe token), timestamped so a confirmation expires. A token that was changed, signed for
another purpose or with another secret, or (for confirming) is too old reads as nothing: the page says no more."""

from __future__ import annotations

from itsdangerous import BadData, URLSafeTimedSerializer

PURPOSES = ("confirm", "unsubscribe", "preferences")


class Tokens:
    def __init__(self, secret: str) -> None:
        self._serializers = {
            purpose: URLSafeTimedSerializer(secret, salt=f"rankbot.email.{purpose}") for purpose in PURPOSES
        }

    def make(self, purpose: str, key: str) -> str:
        return str(self._serializers[purpose].dumps(key))

    def read(self, purpose: str, token: str, max_age: float | None = None) -> str | None:
        """The subscriber key in ``token``, or ``None`` (tampered, another purpose, or older than ``max_age`` s)."""
        try:
            key = self._serializers[purpose].loads(token, max_age=None if max_age is None else int(max_age))
        except (BadData, UnicodeError):
            return None
        return key if isinstance(key, str) else None

    def expired(self, purpose: str, token: str, max_age: float) -> bool:
        """Whether ``token`` is genuine but older than ``max_age`` (the page then says to subscribe again)."""
        return self.read(purpose, token) is not None and self.read(purpose, token, max_age) is None
