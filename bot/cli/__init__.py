"""``rankbot``: the operator's command line.

Every command takes ``--config PATH`` (default: ``./config.toml`` when it exists, else the embedded defaults) and
``RANKBOT_<SECTION>_<KEY>`` environment overrides. Errors are one clear line on stderr and a non-zero exit code.
Command groups live beside this module: ``outbox`` and ``rankings``/``alias``.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bot import pipeline
from bot.cli import outbox, rankings
from bot.cli.plumbing import ConfigOption, err, fail, out, parse_date, run, settings_from, today_utc
from bot.config import ConfigError
from bot.launcher import release_early_signals
from bot.outputs import rendered, write_charts, write_digest_files
from bot.poller import PollReport
from bot.sources.batch import SourceBatch
from digests.digest import NoDataError
from storage.engine import current_revision, display_url, engine_for, upgrade_database

app = typer.Typer(
    help="rankbot follows OpenRouter's daily model-usage rankings and publishes honest digests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(outbox.app, name="outbox")
app.add_typer(rankings.rankings_app, name="rankings")
app.add_typer(rankings.alias_app, name="alias")


class Kind(StrEnum):
    day = "day"
    week = "week"


class Format(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


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


@app.callback()
def _signals(context: typer.Context) -> None:
    """Every command but ``run`` handles SIGTERM and Ctrl-C the default way (``run`` stops cleanly instead)."""
    if context.invoked_subcommand != "run":
        release_early_signals()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()
