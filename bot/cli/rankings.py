"""``rankbot rankings`` (the ``/rankings`` answers in the console) and ``rankbot alias`` (renamed models)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bot import pipeline
from bot.bootstrap import open_repository
from bot.cli.plumbing import ConfigOption, DayOption, WeekOption, fail, out, parse_date, settings_from
from digests.aliases import AliasError
from digests.digest import NoDataError
from digests.render.view_text import render_card, render_matches, render_movers, render_top
from digests.views import model_card, movers_view, search_models, top_view
from storage.repository import Repository

rankings_app = typer.Typer(
    help="The /rankings answers in the console: top, movers, a model's card, search.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
alias_app = typer.Typer(
    help="Link a renamed model's old permaslug to its new one.", no_args_is_help=True, rich_markup_mode=None
)


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
