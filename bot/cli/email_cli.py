"""``rankbot email``: the newsletter's operator commands."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bot.cli.plumbing import ConfigOption, fail, out, settings_from
from storage.engine import open_database
from storage.subscribers import Subscribers

app = typer.Typer(help="The email newsletter.", no_args_is_help=True, rich_markup_mode=None)


@app.command("bounce")
def bounce(
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what the message means; change nothing.")] = False,
) -> None:
    """Read one bounce or complaint on standard input (an MTA pipe: `rankbot email bounce < message.eml`) and mark
    its subscriber: a hard bounce or a complaint suppresses at once, soft bounces after [email] soft_bounce_limit.
    Always exits 0 once it has read the message, so the MTA never bounces the bounce; what it did is printed."""
    from bot.email.bounces import applied, read_bounce

    settings = settings_from(config)
    found = read_bounce(sys.stdin.buffer.read(), settings.email.bounce_local)
    if found is None:
        out.print("not a bounce or a complaint: nothing done", highlight=False)
        return
    subscribers = Subscribers(open_database(settings.storage.database_url))
    try:
        for line in applied(found, subscribers, settings.email.soft_bounce_limit, dry_run):
            out.print(line, highlight=False)
    finally:
        subscribers.engine.dispose()


@app.command("test")
def send_test(
    address: Annotated[str, typer.Argument(help="Where to send it.")],
    config: ConfigOption = None,
) -> None:
    """Send the latest published digest to one address through [email]'s SMTP server, as a subscriber would get it
    (their links when the address subscribes; links that lead nowhere otherwise). Nothing is recorded."""
    import asyncio
    import hashlib
    import os
    from datetime import UTC, datetime

    from bot.email.letters import digest_letter, recipient_for
    from bot.email.smtp import DeferredError, MailSender, RecipientRefusedError, SendingStoppedError
    from bot.email.tokens import Tokens
    from digests.render.html import Site
    from storage.archive import Archive

    settings = settings_from(config)
    email = settings.email
    secret = email.secret(os.environ)
    if secret is None:
        fail(f"the email links are signed: set {email.token_secret_env} (email.token_secret_env) first")
    if not settings.web.public_url:
        fail("the email links to the archive: set web.public_url (or RANKBOT_WEB_PUBLIC_URL) to the site's address")
    engine = open_database(settings.storage.database_url)
    try:
        archive = Archive(engine)
        latest = archive.page(1, 1).messages
        if not latest:
            fail("nothing is published yet: `rankbot run` (or `rankbot demo`) publishes the first digest")
        digest = latest[0]
        chart = archive.chart(digest.id, "bump")
        subscriber = Subscribers(engine).find(address)
        key = subscriber.key if subscriber else "test-" + hashlib.sha256(address.encode()).hexdigest()[:24]
        site = Site(settings.web.title, settings.web.description, settings.web.public_url.rstrip("/"))
        recipient = recipient_for(address, key, subscriber.cadence if subscriber else "weekly", email,
                                  Tokens(secret), site)  # fmt: skip
        letter = digest_letter(digest, recipient, email, site, datetime.now(UTC),
                               (chart.png, chart.alt) if chart else None)  # fmt: skip
    finally:
        engine.dispose()

    async def send() -> str:
        sender = MailSender(email, os.environ)
        try:
            return await sender.send(letter.message, letter.envelope_from, letter.to)
        finally:
            await sender.close()

    try:
        reply = asyncio.run(send())
    except (DeferredError, RecipientRefusedError, SendingStoppedError) as error:
        fail(f"not sent to {address}: {error}")
    out.print(f"sent {letter.message['Subject']!r} to {address} (the server said: {reply[:80]})", highlight=False)


@app.command("send")
def send_letters(config: ConfigOption = None) -> None:
    """Send what is due now, then exit: digests waiting in the outbox become one email per confirmed subscriber of
    their cadence, and every email due (digests, confirmations, welcomes) goes to [email]'s SMTP server. Emails a
    crash left half-sent go again, with the same Message-ID. `rankbot run` does the same continuously."""
    import os

    from bot.cli.plumbing import run
    from bot.parts import open_parts

    settings = settings_from(config)
    if not settings.email.enabled:
        fail("the newsletter is off: set email.enabled = true (or RANKBOT_EMAIL_ENABLED=true) first")
    problems = settings.start_problems(os.environ)
    if problems:
        fail(problems[0])

    async def send() -> str:
        async with open_parts(settings, os.environ) as parts:
            single = parts.leadership.postgres is False
            await parts.worker.reconcile(single_instance=single)
            await parts.worker.drain()
            assert parts.letters is not None  # [email] enabled
            tally = await parts.letters.drain(single)
            later = parts.letters.letters.progress()
        said = f"sent {tally.sent}, deferred {tally.deferred} (tried again later), refused {tally.refused}, "
        said += f"skipped {tally.skipped} (left before their turn); due later: {later['deferred']}"
        if tally.pauses:
            said += f"; paused: {tally.reasons[-1]}"
        return said

    out.print(run(send), highlight=False)


@app.command("status")
def status(config: ConfigOption = None) -> None:
    """Subscribers by state, and each recent send's emails by state."""
    from storage.letters import Letters

    settings = settings_from(config)
    engine = open_database(settings.storage.database_url)
    try:
        counts = Subscribers(engine).counts()
        out.print("subscribers: " + ", ".join(f"{state} {n}" for state, n in counts.items()), highlight=False)
        sends = Letters(engine).messages()[:10]
        if not sends:
            out.print("no emails sent yet", highlight=False)
        for message_id, states in sends:
            shown = ", ".join(f"{state} {n}" for state, n in states.items() if n)
            out.print(f"{message_id}: {shown}", highlight=False)
    finally:
        engine.dispose()
