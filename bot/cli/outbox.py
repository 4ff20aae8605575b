"""``rankbot outbox``: inspect and steer the delivery outbox."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bot.cli.plumbing import ConfigOption, fail, out, run, settings_from, subscription_text
from digests.delivery import DeliveryState
from storage.delivery import DeliveryStore
from storage.engine import open_database

app = typer.Typer(help="Inspect and steer the delivery outbox.", no_args_is_help=True, rich_markup_mode=None)


def open_store(config: Path | None) -> DeliveryStore:
    return DeliveryStore(open_database(settings_from(config).storage.database_url))


@app.command("list")
def outbox_list(
    state: Annotated[
        DeliveryState | None, typer.Option("--state", help="Only rows in this state.", case_sensitive=False)
    ] = None,
    limit: Annotated[int, typer.Option(help="How many rows, newest first.", min=1)] = 50,
    config: ConfigOption = None,
) -> None:
    """Show the destinations (configured and subscribed from chat), the outbox rows (newest first) and the backlog
    by state."""
    store = open_store(config)
    try:
        places = Table("destination", "kind", "from", "receives", "state", box=None)
        for destination in store.destinations():
            standing = "enabled" if destination.enabled else f"disabled: {destination.disabled_reason}"
            if destination.enabled and destination.failures:
                standing = f"failing ({destination.failures} in a row): {(destination.last_error or '')[:60]}"
            watching = len(destination.target.get("watch") or ())
            receives = subscription_text(destination.subscription, watching)
            places.add_row(destination.name, destination.kind, destination.origin, receives, standing)
        out.print(places)
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


@app.command("retry")
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


@app.command("requeue-dead")
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


@app.command("send")
def outbox_send(config: ConfigOption = None) -> None:
    """Deliver every row due now, then exit (settles rows a crash left in `sending` first)."""
    from bot.parts import send_due

    settings = settings_from(config)
    report = run(lambda: send_due(settings, os.environ))
    out.print(
        f"sent {report.sent}, failed {report.failed} (will retry), dead {report.dead}, "
        f"settled after a crash {report.reconciled}",
        highlight=False,
    )
