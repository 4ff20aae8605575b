"""The public pages over a real SQLite file with digests published by the real planner, served by uvicorn on
127.0.0.1: figures equal the digest's, every page carries its source day, as_of and attribution, the archive says
"revised", the Atom feed is valid and stable, hostile names stay text, caching and conditional GETs, security
headers, proxies, and 404s that are never 500s."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from bot.config import WebConfig
from bot.demo.generator import SyntheticHistory, generate_history
from digests.digest import build_digest
from digests.model import DaySnapshot, DigestSettings
from digests.names import display_name
from digests.numbers import format_as_of, format_share, format_tokens
from tests.conftest import TODAY
from tests.website import Published, hostile_catalogue, publish, serving

ATOM = "{http://www.w3.org/2005/Atom}"


class Page(HTMLParser):
    """What a reader sees of a page: its text, the table rows (cell texts), images, links and elements."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.rows: list[list[str]] = []
        self.images: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_body = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(found)
        elif tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


@pytest.fixture(scope="module")
def generated() -> SyntheticHistory:
    return generate_history(end=TODAY - timedelta(days=1), days=60)


@pytest.fixture(scope="module")
def published(generated: SyntheticHistory, tmp_path_factory: pytest.TempPathFactory) -> Published:
    return publish(tmp_path_factory.mktemp("site") / "site.db", generated)


@pytest.fixture(scope="module")
def site(published: Published) -> Iterator[str]:
    with serving(published) as url:
        yield url


def get(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=30)


def assert_honest(page: Page, label: str, as_of: str, attribution: str) -> None:
    """The page names the source days and `as_of` and ends with the attribution line."""
    text = page.all_text
    assert label in text and as_of in text and attribution in text, (label, as_of)


@pytest.mark.parametrize("kind", ["day", "week"])
def test_the_front_page_shows_the_digests_figures_with_its_labels(site: str, published: Published, kind: str) -> None:
    digest = build_digest(kind, published.history, published.repo.models(), DigestSettings())
    response = get(f"{site}/" + ("?period=week" if kind == "week" else ""))
    assert response.status_code == 200
    page = Page(response.text)
    expected = [
        [str(row.rank), row.movement.marker, display_name(row.info), format_tokens(row.tokens), format_share(row.share)]
        for row in digest.rows
    ]
    shown = [[cells[0], cells[1], cells[2], cells[4], cells[6] if kind == "week" else cells[5]] for cells in page.rows]
    bound = [[cell.removeprefix("≥ ") for cell in row] for row in shown[: len(expected)]]
    assert bound == expected
    assert page.rows[-1][2] == "all other models" and page.rows[-1][4] == format_tokens(digest.other_tokens)
    assert_honest(page, digest.period_label, format_as_of(digest.as_of), digest.attribution)
    text = page.all_text
    if kind == "week":
        assert "Tokens over 7 days" in text and "Avg/day" in text and "Run-rate (day × 30" not in text
        assert [cells[5].removeprefix("≥ ") for cells in page.rows[:3]] == [
            format_tokens(row.tokens_per_day) for row in digest.rows[:3]
        ]
    else:
        assert f"Tokens on {digest.period.first.isoformat()}" in text
        assert "Run-rate (day × 30, an estimate)" in text
    assert "How to read this" in text and "Revealed preference, not quality" in text
    assert all(reason.reason in text for reason in digest.alerts)
    switch = {tag[1].get("href"): tag[1].get("aria-current") for tag in page.tags if tag[0] == "a"}
    assert switch["/?period=week"] == ("page" if kind == "week" else None)


def test_every_image_has_alt_text_and_loads_and_charts_are_drawn_once(site: str, published: Published) -> None:
    for path in ("/", "/?period=week"):
        page = Page(get(site + path).text)
        assert len(page.images) == 2
        for image in page.images:
            assert image["alt"] and len(str(image["alt"])) > 40
            chart = get(site + str(image["src"]))
            assert chart.status_code == 200 and chart.headers["content-type"] == "image/png"
            assert chart.content.startswith(b"\x89PNG")
            assert chart.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert get(site + str(image["src"]), **{"If-None-Match": chart.headers["etag"]}).status_code == 304
            digest_id, name = str(image["src"]).split("/")[2], str(image["src"]).split("/")[3].removesuffix(".png")
            stored = published.archive.chart(digest_id, name)  # drawn on the first request, then stored
            assert stored is not None and stored.png == chart.content and stored.alt == image["alt"]


def test_the_archive_lists_every_digest_and_a_restated_one_says_revised(site: str, published: Published) -> None:
    page = Page(get(f"{site}/archive").text)
    messages = published.archive.page(1, 100).messages
    listed = [link for link in page.links if link.startswith("/archive/")]
    assert listed == [f"/archive/{quote(m.id, safe=':')}" for m in messages]
    assert "correction" in page.all_text
    revised = get(f"{site}/archive/{published.corrected}")
    assert revised.status_code == 200
    text = Page(revised.text).all_text
    assert "Revised:" in text and published.correction in text
    assert f"/archive/{published.correction}" in Page(revised.text).links
    message = published.archive.digest(published.corrected)
    assert message is not None and message.last_day is not None
    assert f"Source day {message.last_day.isoformat()} (UTC, complete)" in text
    assert "Source: OpenRouter (openrouter.ai/rankings), as of" in text
    correction = Page(get(f"{site}/archive/{published.correction}").text).all_text
    assert f"Correction: this digest replaces {published.corrected}" in correction
    archived_images = Page(revised.text).images
    assert len(archived_images) == 2 and all(get(site + str(i["src"])).status_code == 200 for i in archived_images)


def test_the_archive_carries_nothing_personal_and_pages(site: str, published: Published) -> None:
    assert "everything" not in get(f"{site}/archive").text  # destination names stay private
    assert get(f"{site}/archive?page=2").status_code == 404
    assert get(f"{site}/archive?page=zero").status_code == 404


def test_a_model_card_and_search(site: str, published: Published) -> None:
    leader = published.history[-1].rows[0].permaslug
    response = get(f"{site}/models/{leader}")
    assert response.status_code == 200
    page = Page(response.text)
    text = page.all_text
    assert "Peak" in text and "Days in the top 50" in text and "Days at #1" in text and "a range" in text
    assert "data as of" in text and "Source: OpenRouter (openrouter.ai/rankings)" in text
    [spark] = page.images
    assert spark["alt"] and get(site + str(spark["src"])).headers["content-type"] == "image/png"
    found = Page(get(f"{site}/models?q=deepsek").text)  # a typo, forgiven
    assert any(link.startswith("/models/deepseek/") for link in found.links)


@pytest.mark.parametrize(
    "path",
    ["/archive/day:2020-01-01:r1", "/archive/nonsense", "/models/no/such-model", "/nope", "/charts/x/bump.png"],
)
def test_unknown_things_are_404_pages_in_one_line(site: str, path: str) -> None:
    response = get(site + path)
    assert response.status_code == 404
    page = Page(response.text)
    [error] = [t for t in page.text if t.strip() and ("No " in t or "There is no" in t or "rankbot has no" in t)]
    assert "\n" not in error.strip()


def test_every_response_carries_the_security_headers(site: str, published: Published) -> None:
    for path in ("/", "/archive", "/feed.atom", "/nope", "/static/site.css", f"/charts/{published.corrected}/bump.png"):
        headers = get(site + path).headers
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src" not in headers["content-security-policy"]  # no script at all
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"]


def test_pages_answer_conditional_gets_and_change_when_a_day_is_stored(
    generated: SyntheticHistory, tmp_path: Path
) -> None:
    published = publish(tmp_path / "cache.db", generated)
    with serving(published) as url:
        first = get(f"{url}/")
        assert get(f"{url}/", **{"If-None-Match": first.headers["etag"]}).status_code == 304
        assert get(f"{url}/").headers["etag"] == first.headers["etag"]
        last = published.history[-1]
        new = DaySnapshot.of(
            last.day + timedelta(days=1), [(r.permaslug, r.tokens) for r in last.rows], last.as_of + timedelta(1)
        )
        published.repo.add_day(new)
        import time

        time.sleep(1.1)  # the site version is read again after a second
        changed = get(f"{url}/", **{"If-None-Match": first.headers["etag"]})
        assert changed.status_code == 200 and changed.headers["etag"] != first.headers["etag"]
        assert new.day.isoformat() in changed.text


def test_the_feed_is_valid_atom_with_stable_ids(
    site: str, published: Published, generated: SyntheticHistory, tmp_path: Path
) -> None:
    response = get(f"{site}/feed.atom")
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(response.content)
    assert feed.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated", "author"):
        assert feed.find(f"{ATOM}{required}") is not None, required
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == len(published.archive.page(1, 100).messages)
    ids = [entry.findtext(f"{ATOM}id") for entry in entries]
    assert len(set(ids)) == len(ids)
    for entry in entries:
        for required in ("id", "title", "updated", "summary"):
            assert entry.findtext(f"{ATOM}{required}"), required
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", entry.findtext(f"{ATOM}updated") or "")
        [link] = entry.findall(f"{ATOM}link[@rel='alternate']")
        assert str(link.get("href")).startswith(site + "/archive/")
        summary = entry.findtext(f"{ATOM}summary") or ""
        assert "Source: OpenRouter (openrouter.ai/rankings)" in summary and "#1" in summary
        assert re.search(r"\bdays? 20\d\d-\d\d-\d\d", entry.findtext(f"{ATOM}title") or "")  # its source days
    again = publish(tmp_path / "again.db", generated)
    with serving(again) as other:
        other_ids = [
            e.findtext(f"{ATOM}id") for e in ET.fromstring(get(f"{other}/feed.atom").content).findall(f"{ATOM}entry")
        ]
    assert other_ids == ids  # the same digests have the same ids, run after run


def test_forwarded_headers_are_believed_only_from_trusted_proxies(published: Published) -> None:
    forwarded = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    with serving(published) as url:
        links = ET.fromstring(get(f"{url}/feed.atom", **forwarded).content).findall(f"{ATOM}link")
        assert all(str(link.get("href")).startswith(url) for link in links)
    with serving(published, WebConfig(trusted_proxies=("127.0.0.1",))) as url:
        links = ET.fromstring(get(f"{url}/feed.atom", **forwarded).content).findall(f"{ATOM}link")
        assert all(str(link.get("href")).startswith("https://evil.example/") for link in links)
    with serving(published, WebConfig(public_url="https://rankings.example.com")) as url:
        links = ET.fromstring(get(f"{url}/feed.atom", **forwarded).content).findall(f"{ATOM}link")
        assert all(str(link.get("href")).startswith("https://rankings.example.com/") for link in links)


HOSTILE = {
    0: "<script>alert(1)</script>",
    1: '" onmouseover="alert(2)',
    2: "</td></tr></table><h1>pwned</h1>",
    3: "\u202eevil\u202c name \u200b with bidi",
    4: "A" * 5000,
}


def test_hostile_names_are_text_on_every_page(generated: SyntheticHistory, tmp_path: Path) -> None:
    top = [row.permaslug for row in generated.days[-1].rows[:5]]
    order = {info.permaslug: index for index, info in enumerate(generated.catalogue)}
    catalogue = hostile_catalogue(generated.catalogue, {order[slug]: HOSTILE[n] for n, slug in enumerate(top)})
    published = publish(tmp_path / "hostile.db", generated, catalogue)
    with serving(published) as url:
        pages = ["/", "/?period=week", "/archive", f"/archive/{published.corrected}", "/models", "/models?q=script"]
        pages += [f"/models/{slug}" for slug in top]
        for path in pages:
            html = get(url + path).text
            assert "<script" not in html and "<h1>pwned" not in html, path
            assert 'onmouseover="alert' not in html, path
            assert "\u202e" not in html and "\u200b" not in html, path
            assert "A" * 81 not in html, path  # shortened to 80 characters
            page = Page(html)
            assert all(tag not in ("script", "iframe") for tag, _ in page.tags), path
        front = get(f"{url}/").text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in front
        assert "</td></tr></table><h1>pwned</h1>" in Page(front).all_text  # shown as text, not markup
        feed = get(f"{url}/feed.atom").content
        ET.fromstring(feed)  # still well-formed XML
        assert b"<script>" not in feed


def test_a_page_that_fails_is_a_500_page_in_one_line(generated: SyntheticHistory, tmp_path: Path) -> None:
    published = publish(tmp_path / "broken.db", generated)
    with published.repo.engine.begin() as connection:
        connection.exec_driver_sql(
            'UPDATE message SET "full" = \'{"json": "{not json"}\' WHERE id = ?', (published.corrected,)
        )
    with serving(published) as url:
        response = get(f"{url}/archive/{published.corrected}")
        assert response.status_code == 500
        assert "rankbot could not build this page; the error is in its log." in Page(response.text).all_text
        assert "Traceback" not in response.text and "JSONDecodeError" not in response.text
        assert get(f"{url}/").status_code == 200  # the rest of the site is fine


def test_with_web_disabled_only_the_operator_routes_answer(published: Published) -> None:
    with serving(published, WebConfig(enabled=False), leader=True) as url:
        assert get(f"{url}/healthz").json()["status"] == "ok"
        for path in ("/", "/archive", "/feed.atom", "/static/site.css"):
            response = get(url + path)
            assert response.status_code == 404 and response.headers["content-type"].startswith("text/plain"), path
