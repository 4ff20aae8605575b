"""What every ``rankbot`` command shares: the consoles, the common options, loading settings, and turning the
errors an operator can act on into one line and exit code 1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from bot.config import ConfigError, Settings
from bot.config_loading import load_settings
from bot.leadership import InstanceLockedError
from bot.sources.errors import SourceError
from digests.delivery import Subscription
from digests.digest import NoDataError
from storage.engine import DatabaseError

out = Console()
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="PATH",
        help="Path to config.toml (default: ./config.toml if present, else the embedded defaults).",
    ),
]

WeekOption = Annotated[bool, typer.Option("--week", help="The week ending at the day, not the day alone.")]
DayOption = Annotated[
    str | None, typer.Option("--day", metavar="YYYY-MM-DD", help="Last source day (default: the latest stored).")
]


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def one_line_exit(message: str) -> NoReturn:
    """``fail`` outside a command (the error escaped it): print the line and exit 1."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise SystemExit(1)


def config_path(path: Path | None) -> Path | None:
    """``--config``, else ``./config.toml`` when it exists, else ``None`` (the embedded defaults)."""
    if path is None and Path("config.toml").exists():
        return Path("config.toml")
    return path


def settings_from(path: Path | None) -> Settings:
    try:
        return load_settings(config_path(path))
    except ConfigError as error:
        fail(str(error))


def today_utc() -> date:
    return datetime.now(UTC).date()


def run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine, turning the errors an operator can act on into one line and exit code 1."""
    try:
        return asyncio.run(work())
    except (SourceError, ConfigError, NoDataError, InstanceLockedError, DatabaseError) as error:
        fail(str(error))


def parse_date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date: use YYYY-MM-DD")


def subscription_text(subscription: Subscription, watching: int = 0) -> str:
    """``daily alerts when notable, quiet days skipped; weekly digest at '0 9 * * mon' UTC; operator notices``"""
    parts = []
    if subscription.daily:
        when = "when notable" if subscription.notable_only else "every day"
        quiet = "one line on quiet days" if subscription.quiet_day == "line" else "quiet days skipped"
        parts.append(f"daily alerts {when}" + (f", {quiet}" if subscription.notable_only else ""))
    if subscription.weekly:
        parts.append(f"weekly digest at '{subscription.weekly_cron}' {subscription.timezone}")
    if subscription.notices:
        parts.append("operator notices")
    if watching:
        parts.append(f"watching {watching} model{'s' if watching > 1 else ''}")
    return "; ".join(parts) or "nothing (no daily, weekly or notices)"
