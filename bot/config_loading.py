"""Loading the settings: the TOML file, then ``RANKBOT_<SECTION>_<KEY>`` environment overrides, validated into
``Settings``; every problem is one ``ConfigError`` line naming the key and where its value came from."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import make_url

from bot.config import ENV_PREFIX, OUTPUT_KINDS, ConfigError, Settings


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
        section = next((s for s in sections if s != "outputs" and rest.startswith(s + "_")), None)
        if section is None:
            continue  # not a config variable (e.g. RANKBOT_TEST_POSTGRES_URL)
        key = rest.removeprefix(section + "_")
        model = sections[section].annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):  # pragma: no cover - Settings' shape
            continue
        field = model.model_fields.get(key) or next(
            (f for f in model.model_fields.values() if f.alias == key), None
        )  # ``RANKBOT_EMAIL_FROM`` is the key ``from`` (the field ``from_address``)
        if field is None:
            raise ConfigError(f"config error: {name} names no setting: {section} has no key {key!r}")
        is_tuple = str(field.annotation).startswith("tuple")
        overrides.setdefault(section, {})[key] = _env_value(raw, is_tuple)
        origins[f"{section}.{key}"] = name
    return overrides, origins


def _key(loc: tuple[int | str, ...]) -> str:
    """``service.port``, or ``outputs[2].url`` for an ``[[outputs]]`` entry (the kind tag left out)."""
    if len(loc) >= 2 and loc[0] == "outputs" and isinstance(loc[1], int):
        rest = [str(part) for part in loc[2:] if part not in OUTPUT_KINDS]
        return f"outputs[{loc[1]}]" + "".join(f".{part}" for part in rest)
    return ".".join(str(part) for part in loc[:2])


def _one_line(error: ValidationError, origins: Mapping[str, str], path: Path | None) -> str:
    first = error.errors()[0]
    key = _key(first["loc"])
    where = origins.get(key) or (str(path) if path else "defaults")
    problem = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        problem = "unknown key (see config.example.toml for every key)"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"config error: {key} (from {where}): {problem}{more}"


def _with_password(
    settings: Settings, environ: Mapping[str, str], origins: Mapping[str, str], path: Path | None
) -> Settings:
    """``storage.database_url`` with the password from ``storage.password_env`` put in, escaped."""
    variable = settings.storage.password_env
    if not variable:
        return settings
    where = origins.get("storage.password_env") or (str(path) if path else "defaults")
    password = environ.get(variable)
    if not password:
        raise ConfigError(
            f"config error: storage.password_env (from {where}) names {variable}, which is unset: set it to the "
            "database password"
        )
    url = make_url(settings.storage.database_url)
    if url.get_backend_name() == "sqlite":
        raise ConfigError(f"config error: storage.password_env (from {where}): a SQLite database has no password")
    with_password = url.set(password=password).render_as_string(hide_password=False)
    return settings.model_copy(update={"storage": settings.storage.model_copy(update={"database_url": with_password})})


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``path`` (when given) and the environment; raises ``ConfigError`` with one clear line."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config error: {path} does not exist (copy config.example.toml to start)") from None
        except IsADirectoryError:
            raise ConfigError(
                f"config error: {path} is a folder, not a file (Docker makes an empty folder when the config.toml it "
                "should mount is missing): remove it and create config.toml from config.example.toml"
            ) from None
        except PermissionError:
            raise ConfigError(f"config error: cannot read {path} (permission denied): make it readable") from None
        except UnicodeDecodeError as error:
            line = error.object[: error.start].count(b"\n") + 1
            raise ConfigError(
                f"config error: {path} is not UTF-8 text (byte 0x{error.object[error.start]:02x} on line {line}): "
                "save it as UTF-8"
            ) from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config error: {path} is not valid TOML: {error}") from None
    overrides, origins = _env_overrides(environ)
    for section, values in overrides.items():
        existing = data.get(section)
        data[section] = {**(existing if isinstance(existing, dict) else {}), **values}
    try:
        settings = Settings.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_one_line(error, origins, path)) from None
    settings = _with_password(settings, environ, origins, path)
    problem = settings.lease_problem()
    if problem is not None:
        key, text = problem
        where = origins.get(key) or (str(path) if path else "defaults")
        raise ConfigError(f"config error: {key} (from {where}): {text}")
    return settings
