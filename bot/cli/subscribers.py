"""``rankbot subscribers``: the newsletter's subscribers, for the operator."""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.table import Table

from bot.cli.plumbing import ConfigOption, fail, out, settings_from
from digests.subscribers import CADENCES, SubscriberState
from storage.engine import open_database
from storage.letters import Letters
from storage.subscribers import Added, Subscribers

app = typer.Typer(help="The email newsletter's subscribers.", no_args_is_help=True, rich_markup_mode=None)
FIELDS = ("address", "state", "cadence", "created_at", "confirmed_at", "confirmed_ip")
CadenceOption = Annotated[str, typer.Option("--cadence", help="weekly (the weekly digest) or daily (the alerts).")]
ConfirmedOption = Annotated[
    bool,
    typer.Option(
        "--confirmed",
        help="They already confirmed elsewhere (no confirmation email); only for addresses that asked for it.",
    ),
]
MxOption = Annotated[bool, typer.Option("--check-mx", help="Also check that the domain accepts mail (a DNS lookup).")]


def open_subscribers(config: Path | None) -> Subscribers:
    return Subscribers(open_database(settings_from(config).storage.database_url))


def _checked(address: str, check_mx: bool) -> str | None:
    """The address to store, or ``None`` with the reason printed (email-validator is imported only here)."""
    from bot.email.addresses import AddressError, checked_address

    try:
        return checked_address(address, check_mx)
    except AddressError as error:
        print(f"{address[:80]!r} is not an address that can receive mail: {error}", file=sys.stderr)
        return None


def _cadence(cadence: str) -> str:
    if cadence not in CADENCES:
        fail(f"--cadence {cadence!r}: use weekly or daily")
    return cadence


@app.command("add")
def add(
    address: Annotated[str, typer.Argument(help="The email address.")],
    cadence: CadenceOption = "weekly",
    confirmed: ConfirmedOption = False,
    check_mx: MxOption = False,
    config: ConfigOption = None,
) -> None:
    """Add one subscriber: pending, with a confirmation email queued (`rankbot run` or `rankbot email send` sends
    it), until they confirm; --confirmed when they already did elsewhere."""
    valid = _checked(address, check_mx)
    if valid is None:
        raise typer.Exit(1)
    subscribers = open_subscribers(config)
    try:
        added = subscribers.add(valid, _cadence(cadence), confirmed)
        asked = _ask_to_confirm(subscribers, [added])
    finally:
        subscribers.engine.dispose()
    if not added.new and not added.returned:
        out.print(f"{valid} is already here ({added.subscriber.state.value}): unchanged", highlight=False)
        return
    said = f"{valid}: {added.subscriber.state.value}, {added.subscriber.cadence}"
    out.print(said + ("; confirmation email queued" if asked else ""), highlight=False)


def _ask_to_confirm(subscribers: Subscribers, added: list[Added]) -> int:
    """Queue a confirmation email to each new or returning pending subscriber; how many."""
    letters = Letters(subscribers.engine)
    pending = [a.subscriber for a in added if a.subscriber.state is SubscriberState.PENDING]
    wanted = [a.subscriber.key for a in added if (a.new or a.returned) and a.subscriber in pending]
    return sum(letters.queue_confirmation(key) for key in wanted)


@app.command("list")
def list_subscribers(
    state: Annotated[SubscriberState | None, typer.Option("--state", help="Only this state.")] = None,
    limit: Annotated[int, typer.Option(help="How many, oldest first.", min=1)] = 100,
    config: ConfigOption = None,
) -> None:
    """Show subscribers and the count in each state."""
    subscribers = open_subscribers(config)
    try:
        table = Table("address", "state", "cadence", "since (UTC)", box=None)
        shown = 0
        for page in subscribers.pages(state, size=min(limit, 1000)):
            for subscriber in page[: limit - shown]:
                since = subscriber.confirmed_at or subscriber.created_at
                table.add_row(subscriber.address, subscriber.state.value, subscriber.cadence, f"{since:%Y-%m-%d %H:%M}")
                shown += 1
            if shown >= limit:
                break
        out.print(table)
        counts = subscribers.counts()
        out.print(", ".join(f"{name} {count}" for name, count in counts.items()), highlight=False)
    finally:
        subscribers.engine.dispose()


@app.command("remove")
def remove(address: Annotated[str, typer.Argument(help="The email address.")], config: ConfigOption = None) -> None:
    """Forget an address entirely (an unsubscribe keeps it suppressed instead)."""
    subscribers = open_subscribers(config)
    try:
        gone = subscribers.remove(address)
    finally:
        subscribers.engine.dispose()
    if not gone:
        fail(f"{address!r} is not a subscriber: `rankbot subscribers list` shows who is")
    out.print(f"{address} removed", highlight=False)


@app.command("import")
def import_csv(
    file: Annotated[Path, typer.Argument(help="A CSV file with an `address` (or `email`) column; `cadence` optional.")],
    cadence: CadenceOption = "weekly",
    confirmed: ConfirmedOption = False,
    check_mx: MxOption = False,
    config: ConfigOption = None,
) -> None:
    """Add every address in a CSV file (pending unless --confirmed); bad rows are listed, the rest added."""
    try:
        with file.open(newline="", encoding="utf-8-sig") as text:
            rows = list(csv.DictReader(text))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        fail(f"cannot read {file}: {error}")
    column = next((name for name in ("address", "email", "Email", "Address") if rows and name in rows[0]), None)
    if column is None:
        fail(f"{file} has no `address` or `email` column (the first line names the columns)")
    subscribers = open_subscribers(config)
    added = existing = 0
    problems = []
    results: list[Added] = []
    try:
        for line, row in enumerate(rows, start=2):
            wanted = (row.get("cadence") or cadence).strip().lower()
            valid = _checked(row.get(column) or "", check_mx)
            if valid is None:
                problems.append(f"line {line}")
                continue
            if wanted not in CADENCES:
                print(f"line {line}: cadence {wanted[:20]!r} is not weekly or daily", file=sys.stderr)
                problems.append(f"line {line}")
                continue
            result = subscribers.add(valid, wanted, confirmed)
            added, existing = added + result.new, existing + (not result.new)
            results.append(result)
        asked = _ask_to_confirm(subscribers, results)
    finally:
        subscribers.engine.dispose()
    if problems:
        print(f"refused (reasons above): {', '.join(problems[:20])}{' …' if len(problems) > 20 else ''}",
              file=sys.stderr)  # fmt: skip
    state = "confirmed" if confirmed else "pending"
    said = f"{added} added ({state}), {existing} already here, {len(problems)} refused"
    if asked:
        said += f"; {asked} confirmation emails queued (`rankbot run` or `rankbot email send` sends them)"
    out.print(said, highlight=False)


@app.command("export")
def export(
    file: Annotated[Path | None, typer.Argument(help="Where to write the CSV (default: standard output).")] = None,
    config: ConfigOption = None,
) -> None:
    """Write every subscriber as CSV (address, state, cadence, created_at, confirmed_at, confirmed_ip)."""
    subscribers = open_subscribers(config)
    try:
        if file is None:
            _write_csv(subscribers, sys.stdout)
        else:
            with file.open("w", newline="", encoding="utf-8") as text:
                _write_csv(subscribers, text)
    except OSError as error:
        fail(f"cannot write {file}: {error.strerror or error}")
    finally:
        subscribers.engine.dispose()


def _utc(moment: datetime) -> str:
    """ISO 8601 in UTC (SQLite hands back naive UTC times)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _write_csv(subscribers: Subscribers, text: TextIO) -> None:
    writer = csv.writer(text)
    writer.writerow(FIELDS)
    for page in subscribers.pages():
        for s in page:
            confirmed = _utc(s.confirmed_at) if s.confirmed_at else ""
            writer.writerow([s.address, s.state.value, s.cadence, _utc(s.created_at), confirmed,
                             s.confirmed_ip or ""])  # fmt: skip
