"""What the sources said last time, so a poll with nothing new downloads and writes nothing.

- HTTP validators (``ETag``, ``Last-Modified``) of the answers that are fetched on every poll (the exports
  manifest, the model catalogue): the next request sends ``If-None-Match``/``If-Modified-Since``, and a ``304`` means
  nothing changed.
- The sha256 of the last export CSV stored: an unchanged manifest hash means there is nothing to download.

Marks are kept in the database between runs (``Repository.source_marks``). A client ``remember``s a mark only after
it has used the answer, and the poll saves the changed marks only once what they describe is stored, so a failure
never hides an answer from the next poll.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx


class SourceMarks:
    def __init__(self, stored: Mapping[str, str] | None = None) -> None:
        self.stored = dict(stored or {})
        self.changed: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.changed.get(key, self.stored.get(key))

    def set(self, key: str, value: str) -> None:
        if self.get(key) != value:
            self.changed[key] = value

    def conditional(self, name: str) -> dict[str, str]:
        """``If-None-Match``/``If-Modified-Since`` for the answer called ``name`` (``manifest``, ``catalogue``),
        from the validators it carried last time."""
        headers = {}
        if etag := self.get(f"etag:{name}"):
            headers["If-None-Match"] = etag
        if modified := self.get(f"modified:{name}"):
            headers["If-Modified-Since"] = modified
        return headers

    def remember(self, name: str, response: httpx.Response) -> None:
        """Keep the validators of the answer called ``name``, once it was used."""
        for header, key in (("ETag", f"etag:{name}"), ("Last-Modified", f"modified:{name}")):
            if value := response.headers.get(header):
                self.set(key, value)
