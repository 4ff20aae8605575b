"""What the public pages read, and the caches that let them answer from memory.

Pages change only when a day is stored or a digest is published, so everything is keyed by the site version
(``Archive.version``), which is read from the database at most once a second: a page is rendered once per version and
then served from memory, and its ETag is known before anything is rendered (a conditional GET costs no rendering).
Every method here reads the database or renders: call it in a thread.
"""

from __future__ import annotations

import gc
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from digests.digest import Digest, NoDataError, build_digest
from digests.model import DaySnapshot, DigestSettings, ModelInfo
from storage.archive import Archive
from storage.repository import Repository

VERSION_SECONDS = 1.0
"""How long a read site version is trusted: pages follow a new day or digest within a second."""
CACHE_ENTRIES = 512


@dataclass(frozen=True, slots=True)
class Rendered:
    """A page's bytes, ready to send."""

    body: bytes
    media_type: str
    status: int = 200


class SiteData:
    def __init__(
        self,
        repo: Repository,
        archive: Archive,
        settings: DigestSettings,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repo = repo
        self.archive = archive
        self.settings = settings
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._version: tuple[str, float] | None = None
        self._history: tuple[str, tuple[DaySnapshot, ...], dict[str, ModelInfo]] | None = None
        self._digests: dict[tuple[str, str, date | None], Digest] = {}
        self._pages: OrderedDict[tuple[str, str], Rendered] = OrderedDict()

    # -- the version -------------------------------------------------------------------------------------
    def fresh_version(self) -> str | None:
        """The site version if it was read less than ``VERSION_SECONDS`` ago (no database call), else ``None``."""
        known = self._version
        if known is not None and self.monotonic() - known[1] < VERSION_SECONDS:
            return known[0]
        return None

    def last_version(self) -> tuple[str, bool] | None:
        """The site version last read, and whether it is still fresh (no database call; ``None``: never read)."""
        known = self._version
        if known is None:
            return None
        return known[0], self.monotonic() - known[1] < VERSION_SECONDS

    def version(self) -> str:
        """The site version, read again when the one known is more than ``VERSION_SECONDS`` old."""
        fresh = self.fresh_version()
        if fresh is not None:
            return fresh
        version = self.archive.version()
        self._version = (version, self.monotonic())
        return version

    @staticmethod
    def etag(version: str, key: str) -> str:
        return '"' + hashlib.sha256(f"{version}\n{key}".encode()).hexdigest()[:24] + '"'

    # -- what pages are built from -----------------------------------------------------------------------
    def _loaded(self) -> tuple[str, tuple[DaySnapshot, ...], dict[str, ModelInfo]]:
        version = self.version()
        with self._lock:
            if self._history is None or self._history[0] != version:
                self._history = (version, self.repo.history(), self.repo.models())
                self._digests.clear()
                gc.freeze()  # years of days stay for hours: the collector need not walk them on every pass
            return self._history

    def history(self) -> tuple[tuple[DaySnapshot, ...], dict[str, ModelInfo]]:
        """Every stored day (aliases applied) and the catalogue, loaded once per version."""
        _, days, models = self._loaded()
        return days, models

    def digest(self, kind: str, end: date | None = None) -> Digest:
        """The day or week digest ending at ``end`` (default: the latest stored day), built once per version."""
        version, days, models = self._loaded()
        key = (version, kind, end)
        with self._lock:
            found = self._digests.get(key)
        if found is None:
            found = build_digest(kind, days, models, self.settings, end=end)
            with self._lock:
                self._digests[key] = found
        return found

    def latest(self, kind: str) -> Digest | None:
        try:
            return self.digest(kind)
        except NoDataError:
            return None

    # -- rendered pages ----------------------------------------------------------------------------------
    def page(self, key: str, version: str, render: Callable[[], Rendered]) -> Rendered:
        """The page ``key`` of ``version``, rendered on first use and then kept (the oldest pages are dropped)."""
        with self._lock:
            found = self._pages.get((key, version))
            if found is not None:
                self._pages.move_to_end((key, version))
                return found
        rendered = render()
        with self._lock:
            self._pages[(key, version)] = rendered
            while len(self._pages) > CACHE_ENTRIES:
                self._pages.popitem(last=False)
        return rendered

    def cached(self, key: str, version: str) -> Rendered | None:
        """A page already rendered for ``version``, without rendering (for the event loop's fast path)."""
        with self._lock:
            return self._pages.get((key, version))
