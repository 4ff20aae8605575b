"""``rankbot``: the operator's command line.

Every command takes ``--config PATH`` (default: ``./config.toml`` when it exists, else the embedded defaults) and
``RANKBOT_<SECTION>_<KEY>`` environment overrides. Errors are one clear line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bot import pipeline
from bot.bootstrap import open_repository
from bot.config import ConfigError, Settings, load_settings
from bot.leadership import InstanceLockedError
from bot.outputs import rendered, write_charts, write_digest_files
from bot.poller import PollReport
from bot.sources.batch import SourceBatch
from bot.sources.errors import SourceError
from digests.aliases import AliasError
from digests.delivery import DeliveryState
from digests.digest import NoDataError
from digests.view_text import render_card, render_matches, render_movers, render_top
from digests.views import model_card, movers_view, search_models, top_view
from storage.delivery import DeliveryStore
from storage.engine import current_revision, display_url, engine_for, upgrade_database
from storage.repository import Repository

app = typer.Typer(
    help="rankbot follows OpenRouter's daily model-usage rankings and publishes honest digests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
outbox_app = typer.Typer(help="Inspect and steer the delivery outbox.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")
rankings_app = typer.Typer(
    help="The /rankings answers in the console: top, movers, a model's card, search.", no_args_is_help=True
)
app.add_typer(rankings_app, name="rankings")
alias_app = typer.Typer(help="Link a renamed model's old permaslug to its new one.", no_args_is_help=True)
app.add_typer(alias_app, name="alias")
out = Console()
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Path to config.toml (default: ./config.toml if present, else defaults)."),
]


class Kind(StrEnum):
    day = "day"
    week = "week"


class Format(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def settings_from(path: Path | None) -> Settings:
    if path is None and Path("config.toml").exists():
        path = Path("config.toml")
    try:
        return load_settings(path)
    except ConfigError as error:
        fail(str(error))


def today_utc() -> date:
    return datetime.now(UTC).date()


def run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine, turning the errors an operator can act on into one line and exit code 1."""
    try:
        return asyncio.run(work())
    except (SourceError, ConfigError, NoDataError, InstanceLockedError) as error:
        fail(str(error))


def print_report(report: PollReport, verb: str) -> None:
    def days(found: list[date]) -> str:
        if not found:
            return "none"
        ordered = sorted(found)
        if len(ordered) <= 4:
            return ", ".join(d.isoformat() for d in ordered)
        return f"{len(ordered)} days, {ordered[0].isoformat()} → {ordered[-1].isoformat()}"

    source = {"api": "keyed Data API", "exports": "keyless daily exports"}.get(report.source, report.source)
    out.print(f"{verb} from OpenRouter's {source}.", highlight=False)
    out.print(f"  stored (new complete days): {days(report.stored)}", highlight=False)
    out.print(f"  unchanged: {days(report.unchanged)}", highlight=False)
    for day, changes in sorted(report.revised.items()):
        out.print(f"  restated {day.isoformat()}: {len(changes)} row(s) changed; old figures kept", highlight=False)
    for rejected in report.rejected:
        out.print(f"  [red]rejected[/] {rejected.day.isoformat()}: {rejected.reason}", highlight=False)
    for incomplete in report.incomplete:
        out.print(f"  not complete yet {incomplete.day.isoformat()}: {incomplete.reason}", highlight=False)
    for note in report.notes:
        out.print(f"  [yellow]note:[/] {note}", highlight=False)


@app.command()
def poll(config: ConfigOption = None) -> None:
    """Poll OpenRouter once: store newly complete days and re-check the last few for restatements."""
    settings = settings_from(config)
    report = run(lambda: pipeline.poll(settings, os.environ, today_utc()))
    print_report(report, "Polled")
    if report.rejected:
        raise typer.Exit(2)


@app.command()
def backfill(
    since: Annotated[str, typer.Option(help="First day to fetch, YYYY-MM-DD (the keyed API reaches 2025-01-01).")],
    config: ConfigOption = None,
) -> None:
    """Fetch and store every complete day since a date, in as few requests as the source allows."""
    settings = settings_from(config)
    first = parse_date(since, "--since")
    today = today_utc()
    if first >= today:
        fail(f"--since {first.isoformat()} is not in the past (today is {today.isoformat()} UTC)")
    total = (today - first).days
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task("backfill (days covered)", total=total)

        def advance(batch: SourceBatch) -> None:
            covered = (today - max(first, batch.window[0])).days
            progress.update(task, completed=min(total, covered))

        report = run(lambda: pipeline.backfill(settings, os.environ, first, today, advance))
        progress.update(task, completed=total)
    print_report(report, "Backfilled")


def parse_date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date: use YYYY-MM-DD")


@app.command()
def digest(
    kind: Annotated[Kind, typer.Argument(help="day: the latest complete day; week: the 7 days ending there.")],
    day: Annotated[str | None, typer.Option("--day", help="Last source day, YYYY-MM-DD (default: latest).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print only; write no files.")] = False,
    fmt: Annotated[Format, typer.Option("--format", help="What to print to the console.")] = Format.text,
    config: ConfigOption = None,
) -> None:
    """Build a day or week digest from stored days: print it, and write it to the output folder."""
    settings = settings_from(config)
    end = parse_date(day, "--day") if day else None
    try:
        built = pipeline.digest_for(settings, kind.value, end)
    except NoDataError as error:
        fail(str(error))
    if settings.output.console or dry_run:
        sys.stdout.write(rendered(built.digest, fmt.value))
    if not dry_run:
        directory = settings.output.directory
        written = write_digest_files(built.digest, directory, settings.output.formats)
        if settings.output.charts:
            written += write_charts(built.digest, built.history, built.catalogue, directory)
        for path in written:
            err.print(f"wrote {path}", highlight=False)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the digests.")] = Path("out"),
    data_dir: Annotated[Path, typer.Option("--data", help="Where to keep the demo database.")] = Path("data"),
    config: ConfigOption = None,
) -> None:
    """Run the whole pipeline offline against a local OpenRouter-compatible server with generated data.

    The config's digest and output settings apply; the source and database are always the demo's own."""
    from bot.demo.run import run_demo

    run_demo(settings_from(config), out_dir, data_dir, out, err)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Apply pending schema migrations (also done automatically at start)."""
    settings = settings_from(config)
    engine = engine_for(settings.storage.database_url)
    upgrade_database(engine)
    out.print(f"database schema at revision {current_revision(engine)}", highlight=False)


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the configuration and say what rankbot would use; exit 1 with the key's name if invalid."""
    settings = settings_from(config)
    try:
        kind = settings.source_kind(os.environ)
    except ConfigError as error:
        fail(str(error))
    source = (
        f"keyed Data API (key from ${settings.openrouter.api_key_env})"
        if kind == "api"
        else f"keyless daily exports (set ${settings.openrouter.api_key_env} for the keyed Data API)"
    )
    out.print("config ok", highlight=False)
    out.print(f"  OpenRouter: {settings.openrouter.base_url}, {source}", highlight=False)
    out.print(f"  database: {display_url(settings.storage.database_url)}", highlight=False)
    formats = ", ".join(settings.output.formats)
    out.print(f"  digests: console={settings.output.console}, files in {settings.output.directory}/ ({formats})")


@app.command("run")
def run_command(config: ConfigOption = None) -> None:
    """Run the service: scheduled polls, daily and weekly digests through the outbox, /healthz and /metrics.

    Stops cleanly on SIGTERM or Ctrl-C. On SQLite one instance per database; on PostgreSQL run as many as you like
    (they share the outbox; one leads the scheduler)."""
    from bot.service import ServiceError, missing_secrets, run_service

    settings = settings_from(config)
    try:
        settings.source_kind(os.environ)
    except ConfigError as error:
        fail(str(error))
    problems = missing_secrets(settings, os.environ)
    if problems:
        fail("; ".join(problems))
    logging.getLogger().setLevel(logging.INFO)
    for chatty in ("apscheduler", "alembic", "httpx"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        run(lambda: run_service(settings, os.environ))
    except ServiceError as error:
        fail(str(error))


def open_store(config: Path | None) -> DeliveryStore:
    settings = settings_from(config)
    engine = engine_for(settings.storage.database_url)
    upgrade_database(engine)
    return DeliveryStore(engine)


@outbox_app.command("list")
def outbox_list(
    state: Annotated[
        DeliveryState | None, typer.Option("--state", help="Only rows in this state.", case_sensitive=False)
    ] = None,
    limit: Annotated[int, typer.Option(help="How many rows, newest first.", min=1)] = 50,
    config: ConfigOption = None,
) -> None:
    """Show outbox rows (newest first) and the backlog by state."""
    store = open_store(config)
    try:
        backlog = store.backlog()
        out.print("backlog: " + ", ".join(f"{name} {count}" for name, count in backlog.items()), highlight=False)
        table = Table("id", "message", "destination", "state", "tries", "next try (UTC)", "last error", box=None)
        for entry in store.entries(state, limit):
            next_try = entry.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S") if entry.state in DUE else ""
            table.add_row(
                str(entry.id),
                entry.message_id,
                entry.destination,
                entry.state.value,
                str(entry.attempts),
                next_try,
                (entry.last_error or "")[:80],
            )
        out.print(table)
    finally:
        store.engine.dispose()


DUE = (DeliveryState.PENDING, DeliveryState.FAILED)


@outbox_app.command("retry")
def outbox_retry(
    entry_id: Annotated[int, typer.Argument(help="The row's id (see `rankbot outbox list`).")],
    config: ConfigOption = None,
) -> None:
    """Make one failed or dead row due now (its destination is re-enabled)."""
    store = open_store(config)
    try:
        if not store.retry(entry_id):
            fail(f"no failed or dead outbox row {entry_id}: see `rankbot outbox list`")
        out.print(f"row {entry_id} is due now", highlight=False)
    finally:
        store.engine.dispose()


@outbox_app.command("requeue-dead")
def outbox_requeue_dead(
    destination: Annotated[str | None, typer.Option(help="Only this destination's rows.")] = None,
    config: ConfigOption = None,
) -> None:
    """Bring every dead row back to pending (tries reset) and re-enable their destinations."""
    store = open_store(config)
    try:
        count = store.requeue_dead(destination)
        out.print(f"requeued {count} dead row(s)", highlight=False)
    finally:
        store.engine.dispose()


@outbox_app.command("send")
def outbox_send(config: ConfigOption = None) -> None:
    """Deliver every row due now, then exit (settles rows a crash left in `sending` first)."""
    from bot.service import send_due

    settings = settings_from(config)
    report = run(lambda: send_due(settings, os.environ))
    out.print(
        f"sent {report.sent}, failed {report.failed} (will retry), dead {report.dead}, "
        f"settled after a crash {report.reconciled}",
        highlight=False,
    )


WeekOption = Annotated[bool, typer.Option("--week", help="The week ending at the day, not the day alone.")]
DayOption = Annotated[str | None, typer.Option("--day", help="Last source day, YYYY-MM-DD (default: latest).")]


def built_for(config: Path | None, week: bool, day: str | None) -> pipeline.Built:
    settings = settings_from(config)
    try:
        return pipeline.digest_for(settings, "week" if week else "day", parse_date(day, "--day") if day else None)
    except NoDataError as error:
        fail(str(error))


@rankings_app.command("top")
def rankings_top(
    week: WeekOption = False,
    day: DayOption = None,
    n: Annotated[int, typer.Option("-n", help="How many models.", min=1, max=50)] = 10,
    config: ConfigOption = None,
) -> None:
    """The top N for a day or a week: rank, model, author, tokens per day, share, movement."""
    sys.stdout.write(render_top(top_view(built_for(config, week, day).digest, n)))


@rankings_app.command("movers")
def rankings_movers(week: WeekOption = False, day: DayOption = None, config: ConfigOption = None) -> None:
    """The notable movements, with the reason each fired."""
    sys.stdout.write(render_movers(movers_view(built_for(config, week, day).digest)))


@rankings_app.command("search")
def rankings_search(
    query: Annotated[str, typer.Argument(help="Part of a name, an author, a permaslug; typos are forgiven.")] = "",
    config: ConfigOption = None,
) -> None:
    """Find models by permaslug, name or author (an empty query lists the latest top models)."""
    built = built_for(config, False, None)
    sys.stdout.write(render_matches(search_models(query, built.history, built.catalogue)))


@rankings_app.command("model")
def rankings_model(
    query: Annotated[str, typer.Argument(help="A permaslug, or the closest match to a name.")],
    config: ConfigOption = None,
) -> None:
    """A model's card: rank history, peak, days in the top 50 and at #1, share, pricing, spend estimate."""
    built = built_for(config, False, None)
    matches = search_models(query, built.history, built.catalogue, limit=1)
    if not matches:
        fail(f"no stored model matches {query!r}: try `rankbot rankings search {query}`")
    sys.stdout.write(render_card(model_card(matches[0].permaslug, built.history, built.catalogue)))


@alias_app.command("add")
def alias_add(
    old: Annotated[str, typer.Argument(help="The permaslug the model had before.")],
    new: Annotated[str, typer.Argument(help="The permaslug it has now.")],
    config: ConfigOption = None,
) -> None:
    """Treat OLD as NEW everywhere (charts, ranks, movements); the stored rows keep their names."""
    repo = open_repository_for(config)
    try:
        repo.add_alias(old, new)
    except AliasError as error:
        fail(str(error))
    finally:
        repo.close()
    out.print(f"{old} → {new}", highlight=False)


@alias_app.command("list")
def alias_list(config: ConfigOption = None) -> None:
    """Every alias, old → new."""
    repo = open_repository_for(config)
    try:
        aliases = repo.aliases()
    finally:
        repo.close()
    for old, new in sorted(aliases.items()):
        out.print(f"{old} → {new}", highlight=False)
    if not aliases:
        out.print("no aliases", highlight=False)


@alias_app.command("remove")
def alias_remove(old: Annotated[str, typer.Argument(help="The old permaslug.")], config: ConfigOption = None) -> None:
    """Stop treating OLD as another model."""
    repo = open_repository_for(config)
    try:
        if not repo.remove_alias(old):
            fail(f"no alias for {old}: see `rankbot alias list`")
    finally:
        repo.close()
    out.print(f"removed the alias of {old}", highlight=False)


def open_repository_for(config: Path | None) -> Repository:
    return open_repository(settings_from(config))


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()
