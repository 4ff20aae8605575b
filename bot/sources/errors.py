"""Errors the OpenRouter adapters raise. Messages name the problem and the fix, and never contain secrets."""

from __future__ import annotations


class SourceError(Exception):
    """OpenRouter could not be read, or answered with something rankbot must not store."""


class SourceUnavailableError(SourceError):
    """Retries ran out on timeouts, resets, 5xx or 429."""


class SourceRefusedError(SourceError):
    """OpenRouter refused the request (4xx other than 429): retrying will not help."""


class SchemaError(SourceError):
    """The answer is not in a format rankbot understands (HTML, truncated JSON, a new ``meta.version``)."""
