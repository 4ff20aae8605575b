"""Newsletter subscribers: the store (SQLite and PostgreSQL) — states, addresses the same in any domain case, a
return after leaving needs confirming again, pages in id order — and ``rankbot subscribers`` add, list, import,
export and remove."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from bot.email.addresses import AddressError, checked_address
from digests.subscribers import SubscriberState, address_key
from storage.repository import Repository
from storage.subscribers import Subscribers
from tests.test_cli import rankbot


@pytest.fixture
def subscribers(repo: Repository) -> Subscribers:
    return Subscribers(repo.engine)


def test_an_address_is_the_same_in_any_case_of_its_domain_only() -> None:
    assert address_key("Ada@Example.ORG") == address_key("Ada@example.org") == "Ada@example.org"
    assert address_key("ada@example.org") != address_key("Ada@example.org")  # a local part may be case-sensitive


def test_adding_twice_keeps_one_subscriber_and_a_return_after_leaving_is_pending_again(
    subscribers: Subscribers,
) -> None:
    first = subscribers.add("Ada@Example.org", "weekly")
    assert first.new and first.subscriber.state is SubscriberState.PENDING and not first.subscriber.receives
    again = subscribers.add("Ada@EXAMPLE.ORG", "daily")
    assert not again.new and again.subscriber.key == first.subscriber.key and again.subscriber.cadence == "weekly"
    confirmed = subscribers.confirm(first.subscriber.key, "203.0.113.7")
    assert confirmed is not None and confirmed.receives and confirmed.confirmed_ip == "203.0.113.7"
    assert subscribers.confirm("not-a-key", None) is None
    assert subscribers.set_state(first.subscriber.key, SubscriberState.UNSUBSCRIBED)
    back = subscribers.add("ada@example.ORG".replace("ada", "Ada"), "daily")
    assert not back.new and back.subscriber.state is SubscriberState.PENDING and back.subscriber.cadence == "daily"
    assert subscribers.counts() == {"pending": 1, "confirmed": 0, "unsubscribed": 0, "bounced": 0, "complained": 0}


def test_keys_are_random_and_opaque(subscribers: Subscribers) -> None:
    keys = {subscribers.add(f"user{n}@example.com").subscriber.key for n in range(20)}
    assert len(keys) == 20 and all(len(key) >= 32 and not key.isdigit() for key in keys)


def test_pages_stream_every_subscriber_in_id_order_by_state(subscribers: Subscribers) -> None:
    for n in range(25):
        subscribers.add(f"user{n:02}@example.com", confirmed=n % 2 == 0)
    pages = list(subscribers.pages(SubscriberState.CONFIRMED, size=5))
    assert [len(page) for page in pages] == [5, 5, 3]
    assert [s.address for page in pages for s in page] == [f"user{n:02}@example.com" for n in range(0, 25, 2)]
    assert sum(len(page) for page in subscribers.pages(size=7)) == 25


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("no-at-sign", "must have an @-sign"),
        ("a@@example.com", "invalid characters"),
        ("a@example", "is not valid"),
        ("a@example.com\r\nBcc: b@example.com", "line break"),
    ],
)
def test_bad_addresses_are_refused_with_the_reason(address: str, problem: str) -> None:
    with pytest.raises(AddressError, match=problem):
        checked_address(address)


def test_good_addresses_keep_their_local_part() -> None:
    assert checked_address(" Ada.Lovelace+news@Example.ORG ") == "Ada.Lovelace+news@example.org"
    assert checked_address("jürgen@bücher.example") == "jürgen@bücher.example"


def test_rankbot_subscribers_add_import_list_export_remove(tmp_path: Path) -> None:
    env = {"RANKBOT_STORAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'subscribers.db'}"}

    def run(*args: str) -> tuple[int, str, str]:
        done = rankbot("subscribers", *args, cwd=tmp_path, env=env)
        return done.returncode, done.stdout, done.stderr

    assert run("add", "ada@example.org")[:2] == (0, "ada@example.org: pending, weekly; confirmation email queued\n")
    code, _, err = run("add", "not-an-address")
    assert code == 1 and "must have an @-sign" in err
    assert "already here (pending): unchanged" in run("add", "ada@EXAMPLE.org")[1]  # no second confirmation
    listing = tmp_path / "list.csv"
    listing.write_text(
        "email,cadence\nbob@example.com,daily\nnot-an-address,\ncarol@example.net,monthly\ndan@example.net,\n"
    )
    code, out, err = run("import", str(listing), "--confirmed")
    assert code == 0 and "2 added (confirmed), 0 already here, 2 refused" in out
    assert "line 3" in err and "line 4: cadence 'monthly'" in err
    code, out, _ = run("list")
    assert code == 0 and "pending 1, confirmed 2, unsubscribed 0" in out
    code, out, _ = run("export")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["address"], r["state"], r["cadence"]) for r in rows] == [
        ("ada@example.org", "pending", "weekly"),
        ("bob@example.com", "confirmed", "daily"),
        ("dan@example.net", "confirmed", "weekly"),
    ]
    assert rows[1]["confirmed_at"].endswith("+00:00")
    exported = tmp_path / "out.csv"
    assert run("export", str(exported))[0] == 0 and exported.read_text().count("\n") == 4
    assert run("remove", "bob@example.com")[0] == 0
    code, _, err = run("remove", "bob@example.com")
    assert code == 1 and "is not a subscriber" in err
    invited = tmp_path / "invited.csv"
    invited.write_text("address\nerin@example.org\nada@example.org\n")
    code, out, _ = run("import", str(invited))
    assert code == 0 and "1 added (pending), 1 already here, 0 refused; 1 confirmation emails queued" in out
    from storage.engine import open_database
    from storage.letters import Letters

    engine = open_database(env["RANKBOT_STORAGE_DATABASE_URL"])
    assert Letters(engine).progress()["pending"] == 2  # ada's and erin's confirmations, nobody else's
    engine.dispose()
    code, _, err = run("import", str(tmp_path / "missing.csv"))
    assert code == 1 and "cannot read" in err


def test_letters_fan_out_once_are_claimed_once_and_a_dead_workers_claims_come_back(subscribers: Subscribers) -> None:
    from datetime import timedelta

    from storage.letters import LetterKind, Letters

    letters = Letters(subscribers.engine)
    people = [subscribers.add(f"reader{n}@example.org", "weekly", confirmed=True).subscriber for n in range(7)]
    subscribers.add("daily@example.org", "daily", confirmed=True)
    subscribers.add("pending@example.org", "weekly")
    assert letters.fan_out("week:x", "weekly") == 7 and letters.fan_out("week:x", "weekly") == 0
    assert letters.queue("confirm:1", people[0].key, LetterKind.CONFIRM)
    first, second = letters.claim("w1", 5), letters.claim("w2", 5)
    assert len(first) == 5 and len(second) == 3 and not {c.id for c in first} & {c.id for c in second}
    assert {c.address for c in first + second if c.kind is LetterKind.DIGEST} == {p.address for p in people}
    assert letters.sent("w1", first[0].id) and not letters.sent("w2", first[1].id)  # only the holder records
    letters.deferred("w1", first[1].id, "451 later", letters.now() + timedelta(hours=1))
    assert letters.release("w1", [first[2].id]) == 1
    assert letters.release_stale(timedelta(hours=1)) == 0
    assert letters.release_stale(timedelta(0)) == 5  # w1's last two and all of w2's, as if both had died
    progress = letters.progress()
    assert (progress["sent"], progress["deferred"], progress["pending"], progress["sending"]) == (1, 1, 6, 0)
    assert letters.due() == 6 and letters.recent(people[0].key, LetterKind.CONFIRM, letters.now() - timedelta(1)) == 1
