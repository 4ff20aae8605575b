"""``rankbot`` as a real process for the tests: a config file, starting, stopping, waiting for it, its health."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bot.demo.receiver import FakeWebhook
from tests.conftest import SECRET_ENV, WEBHOOK_SECRET


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(
    path: Path,
    *,
    openrouter: str,
    database_url: str,
    port: int,
    outputs: list[dict[str, object]],
    **service: object,
) -> Path:
    def value(v: object) -> str:
        return json.dumps(v) if not isinstance(v, bool) else str(v).lower()

    lines = [
        "[openrouter]",
        f"base_url = {value(openrouter)}",
        'source = "exports"',
        "retry_attempts = 2",
        "retry_base_seconds = 0.01",
        "[storage]",
        f"database_url = {value(database_url)}",
        "[service]",
        f"port = {port}",
        "poll_jitter_seconds = 0",
        *(f"{key} = {value(v)}" for key, v in service.items()),
    ]
    for output in outputs:
        lines += ["[[outputs]]", *(f"{key} = {value(v)}" for key, v in output.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def hook_output(webhook: FakeWebhook, name: str, check: bool = True, **extra: object) -> dict[str, object]:
    output: dict[str, object] = {"name": name, "kind": "webhook", "url": webhook.hook_url(name)}
    output["secret_env"] = SECRET_ENV
    if check:
        output["status_url"] = webhook.status_url(name)
    return output | extra


def start(config: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RANKBOT_", "SLACK_"))}
    environ[SECRET_ENV] = WEBHOOK_SECRET
    environ["COLUMNS"] = "200"
    environ.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *args, "--config", str(config)],
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(config: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run a ``rankbot`` command to its end: exit code, stdout, stderr."""
    process = start(config, *args, cwd=cwd, env=env)
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = condition()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def health(port: int) -> dict[str, object]:
    return dict(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json())


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    return process.returncode, err
