"""Configuration: the example file documents every key with its default; bad values fail naming the key."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings
from bot.config_loading import load_settings
from bot.config_outputs import ConsoleOutput, FileOutput, WebhookOutput

ROOT = Path(__file__).parent.parent


def test_example_config_loads_and_documents_every_key() -> None:
    """config.example.toml loads, equals the embedded defaults, and names every key of every section."""
    example = ROOT / "config.example.toml"
    assert load_settings(example, {}) == Settings()
    written = tomllib.loads(example.read_text())
    for section, field in Settings.model_fields.items():
        if section == "outputs":
            continue
        model = field.annotation
        assert isinstance(model, type)
        keys = {info.alias or name for name, info in model.model_fields.items()}  # type: ignore[attr-defined]
        assert set(written[section]) == keys, section
    commented = example.read_text()
    for kind in (ConsoleOutput, FileOutput, WebhookOutput):
        for key in kind.model_fields:
            assert f"# {key} =" in commented or f"#   {key} =" in commented, (kind.__name__, key)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[openrouter]\nbase_url = "http://127.0.0.1:1"\ntimeout_seconds = 5\n')
    settings = load_settings(path, {"RANKBOT_OPENROUTER_TIMEOUT_SECONDS": "2.5", "RANKBOT_OUTPUT_FORMATS": "json"})
    assert settings.openrouter.base_url == "http://127.0.0.1:1"
    assert settings.openrouter.timeout_seconds == 2.5
    assert settings.output.formats == ("json",)
    aliased = load_settings(path, {"RANKBOT_EMAIL_FROM": "digest@rankings.example.com"})
    assert aliased.email.from_address == "digest@rankings.example.com"  # the key is `from`


@pytest.mark.parametrize(
    ("toml", "environ", "message"),
    [
        (
            "[digest]\ntop_n = 0\n",
            {},
            "config error: digest.top_n (from {path}): Input should be greater than or equal to 1",
        ),
        ("[digest]\ntopn = 3\n", {}, "config error: digest.topn (from {path}): unknown key"),
        ("[openrouter]\nbase_url = 'ftp://x'\n", {}, "config error: openrouter.base_url (from {path}): must start"),
        (
            "[[outputs]]\nname = 'hook'\nkind = 'webhook'\n",
            {},
            "config error: outputs[0].url (from {path}): Field required",
        ),
        (
            "[[outputs]]\nname = 'a'\nkind = 'console'\n"
            "[[outputs]]\nname = 'b'\nkind = 'file'\nweekly_cron = 'sometimes'",
            {},
            "config error: outputs[1].weekly_cron (from {path}): 'sometimes' is not a crontab expression",
        ),
        (
            "[[outputs]]\nname = 'a'\nkind = 'carrier-pigeon'\n",
            {},
            "config error: outputs[0] (from {path}): Input tag 'carrier-pigeon' found using 'kind' does not match",
        ),
        (
            "[[outputs]]\nname = 'a'\nkind = 'console'\n[[outputs]]\nname = 'a'\nkind = 'console'\n",
            {},
            "config error: outputs (from {path}): two [[outputs]] are named 'a'",
        ),
        ("[service]\ntimezone = 'Mars/Olympus'\n", {}, "config error: service.timezone (from {path}): 'Mars/Olympus'"),
        (
            "",
            {"RANKBOT_OPENROUTER_SOURCE": "magic"},
            "config error: openrouter.source (from RANKBOT_OPENROUTER_SOURCE)",
        ),
        ("", {"RANKBOT_DIGEST_TOPN": "3"}, "config error: RANKBOT_DIGEST_TOPN names no setting"),
        ("[digest\n", {}, "config error: {path} is not valid TOML"),
        (
            "[web]\npublic_url = 'rankings.example.com'\n",
            {},
            "config error: web.public_url (from {path}): 'rankings.example.com' must be an absolute http(s) URL",
        ),
        (
            "[web]\ntrusted_proxies = ['10.0.0.0/8', 'proxy.local']\n",
            {},
            "config error: web.trusted_proxies (from {path}): 'proxy.local' is not an IP address or network",
        ),
        (
            "[service]\nclaim_lease_seconds = 3\n[[outputs]]\nname = 'a'\nkind = 'webhook'\nurl = 'https://x'\n",
            {},
            "config error: service.claim_lease_seconds (from {path}): 3 s is shorter than outputs[0].timeout_seconds "
            "(10 s) plus a 5 s margin, so a claim could run out while its send is still going: raise "
            "service.claim_lease_seconds to at least 15 or lower outputs[0].timeout_seconds",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, toml: str, environ: dict[str, str], message: str) -> None:
    """Each mistake gives one line naming the key and where it came from."""
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ)
    assert str(caught.value).startswith(message.format(path=path))
    assert "\n" not in str(caught.value)


def test_missing_config_file_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"copy config\.example\.toml"):
        load_settings(tmp_path / "nope.toml", {})


def test_source_choice_follows_the_key() -> None:
    """auto: keyed when the named variable is set, keyless otherwise; api without a key is a config error."""
    settings = Settings()
    assert settings.source_kind({"OPENROUTER_API_KEY": "k"}) == "api"
    assert settings.source_kind({}) == "exports"
    keyed = load_settings(None, {"RANKBOT_OPENROUTER_SOURCE": "api"})
    with pytest.raises(ConfigError, match="OPENROUTER_API_KEY is not set"):
        keyed.source_kind({})


def test_readme_opens_with_the_two_commands() -> None:
    """The README's first commands are the ones CI and newcomers run, and .ci/run runs make test."""
    readme = (ROOT / "README.md").read_text()
    head = "\n".join(readme.splitlines()[:40])
    assert "make demo" in head and "make test" in head
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^demo:", (ROOT / "Makefile").read_text(), re.MULTILINE)


def test_a_file_output_without_a_directory_writes_to_the_output_directory() -> None:
    """In the Docker image [output].directory is /out: a file output without its own directory follows it."""
    settings = load_settings(None, {"RANKBOT_OUTPUT_DIRECTORY": "/out"})
    assert [getattr(o, "directory", None) for o in settings.destinations()] == [None, Path("/out")]
    listed = Settings.model_validate(
        {
            "output": {"directory": "/out"},
            "outputs": [{"name": "a", "kind": "file"}, {"name": "b", "kind": "file", "directory": "/srv/b"}],
        }
    )
    assert [o.target()["directory"] for o in listed.destinations()] == ["/out", "/srv/b"]


def test_a_postgres_password_from_the_environment_may_hold_any_character() -> None:
    """`storage.password_env` puts the password into the URL escaped: `@ : / %` cannot move the host or database."""
    from sqlalchemy.engine import make_url

    password = "p@ss:w/rd%40#?"
    settings = load_settings(
        None,
        {
            "RANKBOT_STORAGE_DATABASE_URL": "postgresql://rankbot@db.internal:5432/rankbot",
            "RANKBOT_STORAGE_PASSWORD_ENV": "RANKBOT_TEST_DB_PASSWORD",
            "RANKBOT_TEST_DB_PASSWORD": password,
        },
    )
    url = make_url(settings.storage.database_url)
    assert (url.host, url.port, url.database, url.username, url.password) == (
        "db.internal",
        5432,
        "rankbot",
        "rankbot",
        password,
    )
    with pytest.raises(ConfigError, match="names RANKBOT_TEST_DB_PASSWORD, which is unset"):
        load_settings(
            None,
            {
                "RANKBOT_STORAGE_DATABASE_URL": "postgresql://rankbot@db/rankbot",
                "RANKBOT_STORAGE_PASSWORD_ENV": "RANKBOT_TEST_DB_PASSWORD",
            },
        )


def test_compose_restarts_and_never_writes_the_password_into_a_url() -> None:
    compose = (ROOT / "compose.yaml").read_text()
    assert compose.count("restart: unless-stopped") == 2
    assert "${POSTGRES_PASSWORD}@" not in compose and "RANKBOT_STORAGE_PASSWORD_ENV: POSTGRES_PASSWORD" in compose
    assert "docker compose port" in compose
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--constraint constraints.txt" in dockerfile and "WORKDIR /out" in dockerfile


def test_the_readme_error_example_is_the_real_error(tmp_path: Path) -> None:
    """The README shows what `rankbot check-config` prints for a bad key: keep it the real text."""
    import subprocess
    import sys

    (tmp_path / "config.toml").write_text("[digest]\ntop_n = 51\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RANKBOT_")}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check-config"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    readme = (ROOT / "README.md").read_text()
    assert result.returncode == 1
    assert f"$ rankbot check-config\n{result.stderr.strip()}\n" in readme
