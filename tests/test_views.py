"""The ``/rankings`` views on the hand-built history, compared with values worked out by hand; model search; and
names from the source shown safely whatever they contain."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from digests.aliases import AliasError, resolved, with_aliases
from digests.digest import Digest, NoDataError, build_digest
from digests.model import DaySnapshot, DigestSettings
from digests.render.text import render_text
from digests.render.view_text import render_card, render_matches, render_movers, render_top
from digests.safety import display_text, markdown_text
from digests.views import SpendRange, model_card, movers_view, search_models, top_view
from storage.repository import Repository
from tests import handbuilt

T = handbuilt.T


@pytest.fixture(scope="module")
def days() -> tuple[DaySnapshot, ...]:
    return with_aliases(handbuilt.history(), handbuilt.ALIASES)


@pytest.fixture(scope="module")
def day(days: tuple[DaySnapshot, ...]) -> Digest:
    return build_digest("day", days, handbuilt.CATALOGUE, DigestSettings())


def test_top_view_of_a_day(day: Digest) -> None:
    view = top_view(day, 3)
    assert [(r.rank, r.name, r.author, r.tokens_per_day, r.marker) for r in view.rows] == [
        (1, "Leader One", "Lead Labs", 900 * T, "="),
        (2, "Rocket", "NewCo", 700 * T, "="),
        (3, "Model 2", "Lab", 520 * T, "="),
    ]
    assert view.rows[0].share == pytest.approx(900 / 5890)
    assert view.honesty.period_label == "Source day 2026-10-14 (UTC, complete)"
    text = render_top(view)
    assert "1  Leader One  Lead Labs" in text and "Source: OpenRouter" in text and "data as of 2026-10-15 01:00" in text


def test_top_view_of_a_week_shows_tokens_per_day(days: tuple[DaySnapshot, ...]) -> None:
    week = build_digest("week", days, handbuilt.CATALOGUE, DigestSettings())
    rocket = next(r for r in top_view(week).rows if r.permaslug == "newco/rocket")
    assert (rocket.rank, rocket.marker, rocket.tokens_per_day, rocket.lower_bound) == (7, "NEW", 400 * T, True)
    assert "tokens/day" in render_top(top_view(week))


def test_movers_view_gives_each_reason(days: tuple[DaySnapshot, ...]) -> None:
    on_new_day = build_digest("day", days, handbuilt.CATALOGUE, DigestSettings(), end=handbuilt.NEW_ON)
    view = movers_view(on_new_day)
    assert ("Hot-shot debut", "Rocket") in [(m.headline, m.name) for m in view.movers]
    assert any(m.headline == "Alert" and m.name == "Rocket" and "NEW" in m.reason for m in view.movers)
    assert "Hot-shot debut: Rocket" in render_movers(view)


def test_model_card(days: tuple[DaySnapshot, ...]) -> None:
    card = model_card("newco/rocket", days, handbuilt.CATALOGUE)
    assert (card.peak_rank, card.peak_day, card.days_in_top_50, card.days_at_1, card.days_stored) == (
        2,
        handbuilt.NEW_ON,
        4,
        0,
        13,
    )
    assert (card.latest_day, card.latest_rank, card.latest_tokens) == (date(2026, 10, 14), 2, 700 * T)
    assert card.latest_share == pytest.approx(700 / 5890)
    assert card.spend == SpendRange(pytest.approx(700 * T * 2e-7), pytest.approx(700 * T * 8e-7))
    assert [rank for _, rank in card.ranks][-5:] == [None, 2, 2, 2, 2]
    assert len(card.ranks) == 30
    text = render_card(card)
    assert "Estimated list-price spend on 2026-10-14: $140,000 – $560,000 (a range" in text
    assert "$0.20 prompt / $0.80 completion per million tokens" in text
    assert "Peak: #2 on 2026-10-11 · in the top 50 on 4 of 13 stored days · #1 on 0" in text
    leader = model_card("lead/leader", days, handbuilt.CATALOGUE)
    assert leader.days_at_1 == 13 and leader.open_weights is True


def test_a_card_for_an_unknown_model_says_so(days: tuple[DaySnapshot, ...]) -> None:
    with pytest.raises(NoDataError, match="no/such has not been in the top 50"):
        model_card("no/such", days, handbuilt.CATALOGUE)


def test_a_card_without_prices_has_no_spend(days: tuple[DaySnapshot, ...]) -> None:
    card = model_card("old/name-v2", days, handbuilt.CATALOGUE)
    assert card.spend is None and card.days_in_top_50 == 13  # the alias joins the old name's days
    assert "Pricing: unknown" in render_card(card)


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("newco/rocket", "newco/rocket"),  # exact permaslug
        ("NEWCO/ROCKET", "newco/rocket"),  # case does not matter
        ("rock", "newco/rocket"),  # prefix of a name
        ("renamed", "old/name-v2"),  # part of a name
        ("lead labs", "lead/leader"),  # author
        ("rokcet", "newco/rocket"),  # a typo
        ("leeder", "lead/leader"),  # another typo
    ],
)
def test_search_finds_the_closest_model_first(days: tuple[DaySnapshot, ...], query: str, first: str) -> None:
    assert search_models(query, days, handbuilt.CATALOGUE)[0].permaslug == first


def test_search_ranks_equals_by_their_latest_rank(days: tuple[DaySnapshot, ...]) -> None:
    found = search_models("model", days, handbuilt.CATALOGUE, limit=3)
    assert [m.permaslug for m in found] == ["lab/m2", "lab/m3", "lab/m4"]


def test_an_empty_query_returns_the_top_models(days: tuple[DaySnapshot, ...]) -> None:
    found = search_models("", days, handbuilt.CATALOGUE, limit=3)
    assert [(m.permaslug, m.latest_rank) for m in found] == [("lead/leader", 1), ("newco/rocket", 2), ("lab/m2", 3)]
    assert search_models("zzzzqqq", days, handbuilt.CATALOGUE) == []
    assert render_matches([]).startswith("No model matches.")


NASTY = {
    "markdown": (
        "**Bold** [click](http://evil.example) `code` | pipe",
        "**Bold** [click](http://evil.example) `code` | pipe",
    ),
    "mentions": ("@everyone and <@123456> and <!channel>", "＠everyone and <＠123456> and <!channel>"),
    "html": ("<script>alert(1)</script>", "<script>alert(1)</script>"),
    "bidi": ("safe\u202eexe.txt", "safeexe.txt"),
    "zero-width": ("Dee\u200bp\u200dSeek\ufeff", "DeepSeek"),
    "newlines": ("line one\nline two\r\n\tthree", "line one line two three"),
}


@pytest.mark.parametrize("case", NASTY, ids=list(NASTY))
def test_names_are_neutralised_for_display(case: str) -> None:
    raw, shown = NASTY[case]
    assert display_text(raw) == shown


def test_markdown_cannot_format_link_or_break_a_table() -> None:
    assert markdown_text("**Bold** [x](y) | z_") == "\\*\\*Bold\\*\\* \\[x\\](y) \\| z\\_"


def test_five_kilobytes_of_name_are_cut_to_one_short_line() -> None:
    shown = display_text("A" * 5000)
    assert len(shown) == 80 and shown.endswith("…")


def test_a_hostile_catalogue_name_is_shown_safely_and_stored_unchanged(
    repo: Repository, days: tuple[DaySnapshot, ...]
) -> None:
    hostile = "@everyone **FREE** [tokens](http://evil.example)\u202e\u200b " + "x" * 5000
    infos = {**handbuilt.CATALOGUE, "lead/leader": replace(handbuilt.CATALOGUE["lead/leader"], name=hostile)}
    repo.replace_models(infos.values())
    assert repo.models()["lead/leader"].name == hostile  # stored as the source sent it
    digest = build_digest("day", days, repo.models(), DigestSettings())
    markdown = render_text(digest, markdown=True)
    text = render_text(digest)
    assert "@everyone" not in markdown + text and "\u202e" not in markdown + text and "\u200b" not in markdown
    assert "[tokens](http" not in markdown and "\\[tokens\\](http" in markdown
    assert max(len(line) for line in text.splitlines()) < 400
    card = render_card(model_card("lead/leader", days, repo.models()))
    assert "@everyone" not in card and "x" * 100 not in card


def test_aliases_resolve_chains_and_refuse_loops(repo: Repository) -> None:
    assert resolved({"a/1": "a/2", "a/2": "a/3"}) == {"a/1": "a/3", "a/2": "a/3"}
    with pytest.raises(AliasError, match="loop"):
        resolved({"a/1": "a/2", "a/2": "a/1"})
    repo.add_alias("old/name-v1", "old/name-v2")
    assert repo.aliases() == {"old/name-v1": "old/name-v2"}
    with pytest.raises(AliasError, match="loop"):
        repo.add_alias("old/name-v2", "old/name-v1")
    assert repo.remove_alias("old/name-v1") and not repo.remove_alias("old/name-v1")


def test_a_day_with_both_names_adds_them_up() -> None:
    snapshot = DaySnapshot.of(date(2026, 10, 1), [("a/old", 5), ("b/x", 7), ("a/new", 4)], handbuilt.history()[0].as_of)
    [merged] = with_aliases([snapshot], {"a/old": "a/new"})
    assert [(r.permaslug, r.tokens) for r in merged.rows] == [("a/new", 9), ("b/x", 7)]


def test_history_applies_the_stored_aliases(repo: Repository) -> None:
    repo.add_days(handbuilt.history(), "api")
    repo.add_alias("old/name-v1", "old/name-v2")
    slugs = {row.permaslug for snapshot in repo.history() for row in snapshot.rows}
    assert "old/name-v1" not in slugs and "old/name-v2" in slugs
    assert any(row.permaslug == "old/name-v1" for row in repo.days()[0].rows)  # stored rows are unchanged
