"""The ``rankbot`` command as a real subprocess: help, poll, digest, check-config, errors and the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.demo.server import FakeOpenRouter
from tests.conftest import API_KEY, KEY_ENV

ROOT = Path(__file__).parent.parent
COMMANDS = [
    [],
    ["poll"],
    ["backfill"],
    ["digest"],
    ["demo"],
    ["db"],
    ["db", "upgrade"],
    ["check-config"],
    ["run"],
    ["outbox"],
    ["outbox", "list"],
    ["outbox", "retry"],
    ["outbox", "requeue-dead"],
    ["outbox", "send"],
    ["rankings"],
    ["rankings", "top"],
    ["rankings", "movers"],
    ["rankings", "model"],
    ["rankings", "search"],
    ["alias"],
    ["alias", "add"],
    ["alias", "list"],
    ["alias", "remove"],
]


def rankbot(
    *args: str, cwd: Path, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RANKBOT_") and k != "OPENROUTER_API_KEY"}
    environ.update(env or {})
    environ["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        input=input,
    )


def env_for(fake: FakeOpenRouter, tmp_path: Path) -> dict[str, str]:
    return {
        "RANKBOT_OPENROUTER_BASE_URL": fake.url,
        "RANKBOT_OPENROUTER_API_KEY_ENV": KEY_ENV,
        KEY_ENV: API_KEY,
        "RANKBOT_OPENROUTER_RETRY_ATTEMPTS": "2",
        "RANKBOT_OPENROUTER_RETRY_BASE_SECONDS": "0.01",
        "RANKBOT_STORAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "RANKBOT_OUTPUT_DIRECTORY": str(tmp_path / "out"),
    }


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "rankbot")
def test_every_command_has_help(command: list[str], tmp_path: Path) -> None:
    result = rankbot(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert "<bool>" not in result.stdout  # a flag takes no value: no type label
    if command not in ([], ["db"], ["outbox"], ["rankings"], ["alias"]):
        assert "--config" in result.stdout


def test_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = rankbot("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == f"rankbot {version('rankbot')}\n"


def test_poll_then_digest(fake: FakeOpenRouter, tmp_path: Path) -> None:
    """poll stores complete days and says so; digest prints JSON and writes one file per format."""
    env = env_for(fake, tmp_path)
    polled = rankbot("poll", cwd=tmp_path, env=env)
    assert polled.returncode == 0, polled.stderr
    assert "Polled from OpenRouter's keyed Data API." in polled.stdout
    assert "stored (new complete days): 31 days" in polled.stdout
    shown = rankbot("digest", "week", "--format", "json", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["kind"] == "week" and len(document["rows"]) == 50
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    week = document["period"]["source_days"]
    stem = f"week-{week[0]}_{week[-1]}"
    charts = [f"{stem}-{chart}.{ext}" for chart in ("bump", "share", "sparkline-1") for ext in ("alt.txt", "png")]
    assert names == sorted([f"{stem}.{ext}" for ext in ("json", "md", "txt")] + charts)
    dry = rankbot("digest", "day", "--dry-run", "--day", week[-2], cwd=tmp_path, env=env)
    assert dry.returncode == 0 and f"Source day {week[-2]} (UTC, complete)" in dry.stdout
    assert len(list((tmp_path / "out").iterdir())) == 9  # --dry-run wrote nothing more


def test_digest_without_data_is_one_clear_line(tmp_path: Path) -> None:
    result = rankbot("digest", "day", cwd=tmp_path, env={"RANKBOT_STORAGE_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    assert result.returncode == 1
    assert (
        result.stderr.strip() == "error: no complete day is stored yet: run `rankbot poll` or `rankbot backfill` first"
    )


def test_unreachable_source_is_one_clear_line(tmp_path: Path) -> None:
    env = {
        "RANKBOT_OPENROUTER_BASE_URL": "http://127.0.0.1:9",
        "RANKBOT_OPENROUTER_RETRY_ATTEMPTS": "1",
        "RANKBOT_STORAGE_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
    }
    result = rankbot("poll", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: OpenRouter did not answer")
    assert "Traceback" not in result.stderr


def test_check_config(tmp_path: Path) -> None:
    """check-config reports what would be used, or names the bad key and exits 1."""
    good = rankbot("check-config", cwd=tmp_path)
    assert good.returncode == 0 and "keyless daily exports" in good.stdout
    bad = rankbot("check-config", cwd=tmp_path, env={"RANKBOT_DIGEST_TIE_BAND": "2"})
    assert bad.returncode == 1
    assert "digest.tie_band (from RANKBOT_DIGEST_TIE_BAND)" in bad.stderr
    (tmp_path / "config.toml").write_text("[openrouter]\nsource = 'api'\n")
    keyless = rankbot("check-config", cwd=tmp_path)
    assert keyless.returncode == 1 and "OPENROUTER_API_KEY is not set" in keyless.stderr


def test_backfill_rejects_a_bad_date(tmp_path: Path) -> None:
    result = rankbot("backfill", "--since", "2026-02-30", cwd=tmp_path)
    assert result.returncode == 1 and "--since '2026-02-30' is not a date" in result.stderr


def test_db_upgrade(tmp_path: Path) -> None:
    result = rankbot("db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0 and "revision 0010" in result.stdout
    assert (tmp_path / "data" / "rankbot.db").exists()


def test_demo_runs_offline_and_fills_out(tmp_path: Path) -> None:
    """The demo prints a week digest with labels and fills ./out/ with day and week digests."""
    result = rankbot("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "weekly digest" in result.stdout and "(UTC, complete)" in result.stdout
    assert "Licensed under CC BY 4.0." in result.stdout
    assert "restated: " in result.stderr and "restated: nothing" not in result.stderr
    assert "sent 1 to a signed local webhook, which received day:" in result.stderr
    assert "/demo-webhook ×1" in result.stderr
    names = {p.name for p in (tmp_path / "out").iterdir()}
    week = next(name.removesuffix(".json") for name in names if name.startswith("week-") and name.endswith(".json"))
    for chart in ("bump", "share", "sparkline-1"):
        assert f"{week}-{chart}.png" in names and f"{week}-{chart}.alt.txt" in names
        assert (tmp_path / "out" / f"{week}-{chart}.png").read_bytes().startswith(b"\x89PNG")
    alt = (tmp_path / "out" / f"{week}-bump.alt.txt").read_text()
    assert alt.startswith("Bump chart: daily token rank of OpenRouter's top 10 models")
    assert sorted(p.suffix for p in (tmp_path / "out").iterdir() if not p.name.endswith((".png", ".alt.txt"))) == [
        ".json",
        ".json",
        ".md",
        ".md",
        ".txt",
        ".txt",
    ]


def test_commands_that_draw_nothing_do_not_import_matplotlib(tmp_path: Path) -> None:
    code = "import sys, bot.cli, bot.service, bot.outputs, digests.render.charts; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_rankings_and_alias_commands(tmp_path: Path) -> None:
    from storage.engine import engine_for, upgrade_database
    from storage.repository import Repository
    from tests import handbuilt

    database = f"sqlite:///{tmp_path / 'views.db'}"
    engine = engine_for(database)
    upgrade_database(engine)
    repo = Repository(engine)
    repo.add_days(handbuilt.history(), "api")
    repo.replace_models(handbuilt.CATALOGUE.values())
    engine.dispose()
    env = {"RANKBOT_STORAGE_DATABASE_URL": database}
    top = rankbot("rankings", "top", "-n", "3", cwd=tmp_path, env=env)
    assert top.returncode == 0, top.stderr
    assert "2  Rocket" in top.stdout and "Source day 2026-10-14 (UTC, complete)" in top.stdout
    week = rankbot("rankings", "top", "--week", cwd=tmp_path, env=env).stdout
    assert "tokens/day" in week and "Source days 2026-10-08 → 2026-10-14" in week
    card = rankbot("rankings", "model", "rokcet", cwd=tmp_path, env=env)
    assert "Rocket (newco/rocket) by NewCo" in card.stdout and "$140,000 – $560,000" in card.stdout
    assert "Rocket" in rankbot("rankings", "search", "newco", cwd=tmp_path, env=env).stdout
    assert "Movers on OpenRouter" in rankbot("rankings", "movers", cwd=tmp_path, env=env).stdout
    missing = rankbot("rankings", "model", "zzzzqqq", cwd=tmp_path, env=env)
    assert missing.returncode == 1 and "no stored model matches 'zzzzqqq'" in missing.stderr
    before = rankbot("rankings", "model", "renamed", cwd=tmp_path, env=env).stdout
    assert "in the top 50 on 7 of 13 stored days" in before
    assert rankbot("alias", "add", "old/name-v1", "old/name-v2", cwd=tmp_path, env=env).returncode == 0
    after = rankbot("rankings", "model", "renamed", cwd=tmp_path, env=env).stdout
    assert "in the top 50 on 13 of 13 stored days" in after
    loop = rankbot("alias", "add", "old/name-v2", "old/name-v1", cwd=tmp_path, env=env)
    assert loop.returncode == 1 and "aliases loop" in loop.stderr
    assert "old/name-v1 → old/name-v2" in rankbot("alias", "list", cwd=tmp_path, env=env).stdout
    assert rankbot("alias", "remove", "old/name-v1", cwd=tmp_path, env=env).returncode == 0
    gone = rankbot("alias", "remove", "old/name-v1", cwd=tmp_path, env=env)
    assert gone.returncode == 1 and "no alias for old/name-v1" in gone.stderr


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exit code 1 and exactly one line on stderr, which is returned."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


UNREACHABLE_POSTGRES = "postgresql://rankbot:hunter2-secret@127.0.0.1:1/rankbot"


@pytest.mark.parametrize("command", [["run"], ["poll"], ["outbox", "list"], ["check-config"], ["db", "upgrade"]])
def test_an_unreachable_postgres_is_one_line_naming_it_without_the_password(command: list[str], tmp_path: Path) -> None:
    line = one_line_error(rankbot(*command, cwd=tmp_path, env={"RANKBOT_STORAGE_DATABASE_URL": UNREACHABLE_POSTGRES}))
    assert "cannot use the PostgreSQL database postgresql+psycopg://rankbot:***@127.0.0.1:1/rankbot" in line
    assert "Connection refused" in line and "check storage.database_url" in line
    assert "hunter2" not in line


def test_a_sqlite_path_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(
        rankbot("poll", cwd=tmp_path, env={"RANKBOT_STORAGE_DATABASE_URL": "sqlite:////proc/nope/x.db"})
    )
    assert line.startswith("error: cannot create the folder /proc/nope for the SQLite database /proc/nope/x.db")


def without_file_override() -> list[str]:
    """Run as root without the power to write others' files (CI runs as root, which ignores file modes)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


def test_an_unwritable_sqlite_file_is_one_line(tmp_path: Path) -> None:
    database = tmp_path / "ro.db"
    url = f"sqlite:///{database}"
    assert rankbot("db", "upgrade", cwd=tmp_path, env={"RANKBOT_STORAGE_DATABASE_URL": url}).returncode == 0
    database.chmod(0o444)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RANKBOT_")}
    environ["RANKBOT_STORAGE_DATABASE_URL"] = url
    result = subprocess.run(
        [*without_file_override(), sys.executable, "-m", "bot", "poll"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = one_line_error(result)
    assert f"the SQLite database {database} is not writable (attempt to write a readonly database)" in line


def test_an_output_folder_that_cannot_be_created_is_one_line(fake: FakeOpenRouter, tmp_path: Path) -> None:
    environ = env_for(fake, tmp_path)
    assert rankbot("poll", cwd=tmp_path, env=environ).returncode == 0
    environ["RANKBOT_OUTPUT_DIRECTORY"] = "/proc/nope/out"
    line = one_line_error(rankbot("digest", "day", cwd=tmp_path, env=environ))
    assert "cannot write the digest to /proc/nope/out/" in line and "set output.directory" in line


def test_a_config_that_is_a_folder_or_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "folder.toml").mkdir()
    line = one_line_error(rankbot("poll", "--config", "folder.toml", cwd=tmp_path))
    assert "folder.toml is a folder, not a file" in line and "create config.toml" in line
    (tmp_path / "latin1.toml").write_bytes("[digest]\n# Mod\xe8les\ntop_n = 5\n".encode("latin-1"))
    line = one_line_error(rankbot("check-config", "--config", "latin1.toml", cwd=tmp_path))
    assert "latin1.toml is not UTF-8 text (byte 0xe8 on line 2): save it as UTF-8" in line


def test_check_config_opens_the_database_lists_the_outputs_and_fails_as_run_would(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        "[[outputs]]\nname = 'team-hook'\nkind = 'webhook'\nurl = 'https://example.com/hook'\n"
        "secret_env = 'RANKBOT_TEST_HOOK_SECRET'\nnotices = true\n"
        "[[outputs]]\nname = 'archive'\nkind = 'file'\nweekly = false\nnotable_only = false\n"
    )
    unset = one_line_error(rankbot("check-config", cwd=tmp_path))
    assert "outputs 'team-hook' needs the environment variable RANKBOT_TEST_HOOK_SECRET (its secret_env)" in unset
    run = one_line_error(rankbot("run", cwd=tmp_path))
    assert unset == run
    result = rankbot("check-config", cwd=tmp_path, env={"RANKBOT_TEST_HOOK_SECRET": "x"})
    assert result.returncode == 0, result.stderr
    assert f"database: sqlite:///data/rankbot.db = {tmp_path / 'data' / 'rankbot.db'} (opened; schema" in result.stdout
    assert (
        "- team-hook (webhook → https://example.com/hook, signed with $RANKBOT_TEST_HOOK_SECRET): daily alerts when "
        "notable, quiet days skipped; weekly digest at '0 9 * * mon' UTC; operator notices" in result.stdout
    )
    assert "- archive (file → files in out/): daily alerts every day" in result.stdout


def test_outbox_list_shows_channels_subscribed_from_chat_beside_configured_destinations(tmp_path: Path) -> None:
    from bot.chat.channels import ChatChannels
    from digests.commands import ChannelSettings, Subscribe, Unsubscribe
    from storage.delivery import DeliveryStore
    from storage.engine import open_database
    from storage.repository import Repository

    engine = open_database(f"sqlite:///{tmp_path / 'rankbot.db'}")
    channels = ChatChannels("slack", DeliveryStore(engine), Repository(engine))
    channels.subscribe("T0TEAM", "C0DAILY", Subscribe("daily"))
    channels.change("T0TEAM", "C0DAILY", ChannelSettings(quiet="line"))
    channels.subscribe("T0TEAM", "C0GONE", Subscribe("weekly"))
    channels.unsubscribe("T0TEAM", "C0GONE", Unsubscribe())
    engine.dispose()
    env = {"RANKBOT_STORAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'rankbot.db'}"}
    result = rankbot("outbox", "list", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    rows = [" ".join(line.split()) for line in result.stdout.splitlines()]
    lines = {row.split()[0]: row for row in rows if row.startswith("slack:")}
    assert "slack slack daily alerts when notable, one line on quiet days enabled" in lines["slack:T0TEAM:C0DAILY"]
    assert "disabled: unsubscribed from chat" in lines["slack:T0TEAM:C0GONE"]
