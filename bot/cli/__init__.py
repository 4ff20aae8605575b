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
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import SQLAlchemyError

from bot import pipeline
from bot.cli import discord_cli, email_cli, outbox, rankings, subscribers
from bot.cli.plumbing import (
    ConfigOption,
    config_path,
    err,
    fail,
    one_line_exit,
    out,
    parse_date,
    run,
    settings_from,
    subscription_text,
    today_utc,
)
from bot.config import Settings
from bot.config_outputs import Output, WebhookOutput
from bot.launcher import release_early_signals
from bot.leadership import InstanceLockedError
from bot.outputs import rendered, write_charts, write_digest_files
from bot.poller import PollReport
from bot.sources.batch import SourceBatch
from digests.digest import NoDataError
from storage.engine import (
    DatabaseError,
    checked_engine,
    current_revision,
    database_problem,
    display_url,
    head_revision,
    open_database,
)

app = typer.Typer(
    help="rankbot follows OpenRouter's daily model-usage rankings and publishes honest digests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: Rich's layout labels every flag <bool>
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(db_app, name="db")
app.add_typer(outbox.app, name="outbox")
app.add_typer(discord_cli.app, name="discord")
app.add_typer(subscribers.app, name="subscribers")
app.add_typer(email_cli.app, name="email")
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
    since: Annotated[
        str, typer.Option(metavar="YYYY-MM-DD", help="First day to fetch (the keyed API reaches back to 2025-01-01).")
    ],
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
    day: Annotated[
        str | None, typer.Option("--day", metavar="YYYY-MM-DD", help="Last source day (default: the latest stored).")
    ] = None,
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
        try:
            written = write_digest_files(built.digest, directory, settings.output.formats)
            if settings.output.charts:
                written += write_charts(built.digest, built.history, built.catalogue, directory)
        except OSError as error:
            fail(
                f"cannot write the digest to {directory}/ ({error.strerror or error}): set output.directory (or "
                "RANKBOT_OUTPUT_DIRECTORY) to a folder rankbot can write, or pass --dry-run"
            )
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

    try:
        run_demo(settings_from(config), out_dir, data_dir, out, err)
    except OSError as error:
        fail(f"the demo cannot write its files ({error.strerror or error}: {error.filename}): pass --out and --data")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Apply pending schema migrations (also done automatically at start)."""
    engine = open_database(settings_from(config).storage.database_url)
    out.print(f"database schema at revision {current_revision(engine)}", highlight=False)
    engine.dispose()


def describe_output(output: Output, settings: Settings) -> str:
    """``team-hook (webhook → https://…, signed with $X): daily alerts when notable, quiet days skipped; weekly at
    0 9 * * mon UTC; operator notices``"""
    target = {
        "console": lambda: f"the console, as {getattr(output, 'format', 'text')}",
        "file": lambda: f"files in {getattr(output, 'directory', settings.output.directory)}/",
        "webhook": lambda: str(getattr(output, "url", "")),
        "slack": lambda: f"channel {getattr(output, 'channel', '')}",
        "discord": lambda: f"channel {getattr(output, 'channel_id', '')}, as the bot",
        "discord_webhook": lambda: f"the webhook in ${getattr(output, 'url_env', '')}",
    }.get(output.kind, lambda: output.kind)()
    if isinstance(output, WebhookOutput) and output.secret_env:
        target += f", signed with ${output.secret_env}"
    return f"{output.name} ({output.kind} → {target}): {subscription_text(output.subscription(settings.service))}"


def web_line(settings: Settings) -> str:
    web = settings.web
    if not web.enabled:
        return "off ([web] enabled = false): rankbot run serves only /healthz and /metrics"
    where = web.public_url or "links follow the host each request comes to (web.public_url is empty)"
    return f"on http://{settings.service.host}:{settings.service.port}/ — {where}"


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Check the configuration as `rankbot run` would (keys, secrets, the database), say what it would use, and
    exit 1 naming the problem if anything would stop it."""
    path = config_path(config)
    settings = settings_from(config)
    problems = settings.start_problems(os.environ)
    if problems:
        fail("; ".join(problems))
    url = settings.storage.database_url
    engine = checked_engine(url)
    try:
        revision, head = current_revision(engine), head_revision()
    finally:
        engine.dispose()
    kind = settings.source_kind(os.environ)
    source = (
        f"keyed Data API (key from ${settings.openrouter.api_key_env})"
        if kind == "api"
        else f"keyless daily exports (set ${settings.openrouter.api_key_env} for the keyed Data API)"
    )
    if revision == head:
        schema = f"schema {head}, up to date"
    else:
        schema = f"schema {revision or 'empty'}; rankbot migrates it to {head} at start"
    sqlite_file = engine.url.database if engine.dialect.name == "sqlite" else None
    where = f" = {Path(sqlite_file).resolve()}" if sqlite_file else ""
    formats = ", ".join(settings.output.formats)
    label = "outputs" if settings.outputs else "outputs (none configured: the embedded defaults)"
    lines = [
        "config ok",
        f"  config: {path or 'embedded defaults (no config.toml here)'}",
        f"  OpenRouter: {settings.openrouter.base_url}, {source}",
        f"  web pages: {web_line(settings)}",
        f"  database: {display_url(url)}{where} (opened; {schema})",
        f"  `rankbot digest` writes: console={settings.output.console}, files in {settings.output.directory}/ "
        f"({formats})",
        f"  {label}:",
        *(f"    - {describe_output(output, settings)}" for output in settings.destinations()),
    ]
    for line in lines:
        out.print(line, highlight=False, soft_wrap=True, markup=False)


@app.command("run")
def run_command(config: ConfigOption = None) -> None:
    """Run the service: scheduled polls, daily and weekly digests through the outbox, /healthz and /metrics.

    Stops cleanly on SIGTERM or Ctrl-C. On SQLite one instance per database; on PostgreSQL run as many as you like
    (they share the outbox; one leads the scheduler)."""
    from bot.service import ServiceError, run_service

    settings = settings_from(config)
    problems = settings.start_problems(os.environ)
    if problems:
        fail("; ".join(problems))
    logging.getLogger().setLevel(logging.INFO)
    for chatty in ("apscheduler", "alembic", "httpx"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        run(lambda: run_service(settings, os.environ))
    except ServiceError as error:
        fail(str(error))


def _version(wanted: bool) -> None:
    if wanted:
        out.print(f"rankbot {package_version('rankbot')}", highlight=False)
        raise typer.Exit()


@app.callback()
def _start(
    context: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", help="Print rankbot's version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    """Every command but ``run`` handles SIGTERM and Ctrl-C the default way (``run`` stops cleanly instead)."""
    if context.invoked_subcommand != "run":
        release_early_signals()


def main() -> None:
    """``rankbot``: errors an operator can act on are one line on stderr and exit code 1, wherever they arise."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except (DatabaseError, InstanceLockedError) as error:
        one_line_exit(str(error))
    except SQLAlchemyError as error:  # a database that failed after it was opened
        one_line_exit(f"database error: {database_problem(error, None)}")
