"""Configuration: ``config.toml`` (every key documented in ``config.example.toml``), overridden by environment
variables ``RANKBOT_<SECTION>_<KEY>``, with embedded defaults when neither is given.

Invalid config fails at start with one line naming the key, where it came from and what is wrong. Secrets are never
config values: the config names the environment variable that holds them (``api_key_env``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from digests.model import DigestSettings

ENV_PREFIX = "RANKBOT_"


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenRouterConfig(_Section):
    base_url: str = "https://openrouter.ai"
    source: Literal["auto", "api", "exports"] = "auto"
    api_key_env: str = Field("OPENROUTER_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_seconds: float = Field(30.0, gt=0)
    connect_timeout_seconds: float = Field(10.0, gt=0)
    retry_attempts: int = Field(5, ge=1, le=20)
    retry_base_seconds: float = Field(1.0, ge=0)
    retry_cap_seconds: float = Field(60.0, ge=0)
    requests_per_minute: int = Field(30, ge=1)
    requests_per_day: int = Field(500, ge=1)
    min_rows: int = Field(50, ge=1, le=50)
    refetch_days: int = Field(3, ge=1, le=30)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class StorageConfig(_Section):
    database_url: str = "sqlite:///data/rankbot.db"

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql", "postgres:")):
            raise ValueError("must be a sqlite:/// path or a postgresql:// URL")
        return value


class DigestConfig(_Section):
    top_n: int = Field(10, ge=1, le=50)
    jump_threshold: int = Field(3, ge=1, le=49)
    tie_band: float = Field(0.02, ge=0, lt=1)
    list_size: int = Field(50, ge=1, le=50)
    caveats_url: str = "https://openrouter.ai/rankings"

    def settings(self) -> DigestSettings:
        return DigestSettings(self.top_n, self.jump_threshold, self.tie_band, self.list_size, self.caveats_url)


class OutputConfig(_Section):
    directory: Path = Path("out")
    console: bool = True
    formats: tuple[Literal["text", "markdown", "json"], ...] = ("text", "markdown", "json")


class Settings(_Section):
    openrouter: OpenRouterConfig = OpenRouterConfig()
    storage: StorageConfig = StorageConfig()
    digest: DigestConfig = DigestConfig()
    output: OutputConfig = OutputConfig()

    def api_key(self, environ: Mapping[str, str]) -> str | None:
        """The Data API key from the environment variable the config names; ``None`` when unset or empty."""
        return environ.get(self.openrouter.api_key_env) or None

    def source_kind(self, environ: Mapping[str, str]) -> Literal["api", "exports"]:
        """``api`` when a key is configured (or ``source = "api"``), else the keyless ``exports``."""
        wanted = self.openrouter.source
        if wanted == "api" and self.api_key(environ) is None:
            raise ConfigError(
                f"openrouter.source is 'api' but the environment variable {self.openrouter.api_key_env} is not set: "
                "set it to your OpenRouter key, or use source = 'auto'"
            )
        if wanted == "auto":
            return "api" if self.api_key(environ) else "exports"
        return wanted


def _env_value(raw: str, field_is_tuple: bool) -> Any:
    if field_is_tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """``RANKBOT_<SECTION>_<KEY>`` values by section and key, and where each came from."""
    overrides: dict[str, dict[str, Any]] = {}
    origins: dict[str, str] = {}
    sections = Settings.model_fields
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name.removeprefix(ENV_PREFIX).lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            continue  # not a config variable (e.g. RANKBOT_TEST_POSTGRES_URL)
        key = rest.removeprefix(section + "_")
        model = sections[section].annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):  # pragma: no cover - Settings' shape
            continue
        field = model.model_fields.get(key)
        if field is None:
            raise ConfigError(f"config error: {name} names no setting: {section} has no key {key!r}")
        is_tuple = str(field.annotation).startswith("tuple")
        overrides.setdefault(section, {})[key] = _env_value(raw, is_tuple)
        origins[f"{section}.{key}"] = name
    return overrides, origins


def _one_line(error: ValidationError, origins: Mapping[str, str], path: Path | None) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"][:2])
    where = origins.get(key) or (str(path) if path else "defaults")
    problem = first["msg"]
    if first["type"] == "extra_forbidden":
        problem = "unknown key (see config.example.toml for every key)"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"config error: {key} (from {where}): {problem}{more}"


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``path`` (when given) and the environment; raises ``ConfigError`` with one clear line."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config error: {path} does not exist (copy config.example.toml to start)") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config error: {path} is not valid TOML: {error}") from None
    overrides, origins = _env_overrides(environ)
    for section, values in overrides.items():
        existing = data.get(section)
        data[section] = {**(existing if isinstance(existing, dict) else {}), **values}
    try:
        return Settings.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_one_line(error, origins, path)) from None
