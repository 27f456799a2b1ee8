"""Gunicorn, as deployed: says at start when rate limits are counted per process, and
its access log carries no signed link's token."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

GUNICORN = Path(sys.executable).parent / "gunicorn"
WARNING = "LEADVAULT_REDIS_URL is not set: each of the 2 web processes counts rate limits"


def _start_output(
    tmp_path: Path, keyring_path: Path, paths: tuple[str, ...] = (), **extra: str
) -> str:
    """Gunicorn's log from its start until both workers booted and ``paths`` were
    requested (then it is stopped)."""
    instance = tmp_path / "instance"
    instance.mkdir(exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADVAULT_")}
    env.update(
        LEADVAULT_INSTANCE=str(instance),
        LEADVAULT_DATABASE_URL=f"sqlite:///{tmp_path / 'lv.db'}",
        LEADVAULT_KEYRING=str(keyring_path),
        WEB_CONCURRENCY="2",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        **extra,
    )
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(GUNICORN), "-c", "python:leadvault.gunicorn_conf", "leadvault.wsgi:app"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while log.read_text().count("Booting worker") < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            for path in paths:
                # A refused token (HTTPError) is logged too.
                with contextlib.suppress(urllib.error.HTTPError):
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30).close()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
    return log.read_text()


@pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn not in this venv")
def test_several_workers_without_redis_are_named_at_start(tmp_path, keyring_path):
    output = _start_output(tmp_path, keyring_path)
    assert output.count("Booting worker") >= 2, output
    assert WARNING in output
    shared = _start_output(tmp_path, keyring_path, LEADVAULT_REDIS_URL="redis://127.0.0.1:1/0")
    assert shared.count("Booting worker") >= 2, shared
    assert "LEADVAULT_REDIS_URL is not set" not in shared


SECRET = "SeCrEt-token_0123456789.abc"
TOKEN_PATHS = (
    f"/p/{SECRET}",
    f"/p/{SECRET}/correct",
    f"/e/{SECRET}",
    f"/a/{SECRET}",
    f"/admin/set-password/{SECRET}",
    f"/f/frm_1/more/{SECRET}",
    f"/u/{SECRET}?lang=de",
)


@pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn not in this venv")
def test_the_access_log_masks_signed_link_tokens(tmp_path, keyring_path):
    output = _start_output(tmp_path, keyring_path, (*TOKEN_PATHS, "/healthz"))
    assert '"GET /healthz" ' in output, output
    for path in TOKEN_PATHS:
        logged = path.split("?")[0].replace(SECRET, "<token>")
        assert f'"GET {logged}" ' in output, (logged, output)
    assert SECRET not in output
