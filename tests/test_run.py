"""`leadvault run` on a fresh folder: key ring, database, served, stopped by SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import free_port

SECRET = "SeCrEt-token_0123456789.abc"


def leadvault_executable() -> str:
    beside = Path(sys.executable).parent / "leadvault"
    if beside.exists():
        return str(beside)
    found = shutil.which("leadvault")
    assert found, "the leadvault console script is not installed"
    return found


def clean_env() -> dict[str, str]:
    # No LEADVAULT_* at all: the instance folder defaults to ./instance.
    return {k: v for k, v in os.environ.items() if not k.startswith("LEADVAULT_")}


def wait_for_health(url: str, process: subprocess.Popen, timeout: float = 60.0) -> dict:
    """Until the server answers: on a fresh folder it makes a key ring and migrates a new
    database first (a worker's start-up alone took 13 s on a loaded two-core machine)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"leadvault run exited early with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                assert response.status == 200
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last_error = exc
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s: {last_error}")


def test_run_on_a_fresh_folder(tmp_path):
    port = free_port()
    stdout_path, stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [leadvault_executable(), "run", "--port", str(port)],
            cwd=tmp_path,
            env=clean_env(),
            stdout=stdout,
            stderr=stderr,
        )
        try:
            health = wait_for_health(f"http://127.0.0.1:{port}/healthz", process)
            assert health["status"] == "ok"
            # A signed link's token stays out of the access log (leadvault.access_log).
            with contextlib.suppress(urllib.error.HTTPError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/p/{SECRET}", timeout=10)
            instance = tmp_path / "instance"
            keyring = instance / "keyring.json"
            assert keyring.is_file()
            assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
            assert (instance / "leadvault.db").is_file()
            process.send_signal(signal.SIGTERM)
            # SIGTERM stops the server and the worker cleanly.
            assert process.wait(timeout=15) == 0, stderr_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    output = stdout_path.read_text()
    assert f"http://127.0.0.1:{port}/" in output
    assert "Created key ring" in output
    assert "Traceback" not in stderr_path.read_text()
    log = stdout_path.read_text() + stderr_path.read_text()
    assert '"GET /healthz" 200' in log
    assert '"GET /p/<token>" 400' in log
    assert SECRET not in log


def leadvault_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``leadvault`` command run in ``folder`` (its instance: ``folder/instance``)."""
    return subprocess.run(
        [leadvault_executable(), *args],
        cwd=folder,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_db_upgrade_then_check_on_a_fresh_folder(tmp_path):
    def leadvault(*args: str) -> subprocess.CompletedProcess[str]:
        return leadvault_in(tmp_path, *args)

    upgrade = leadvault("db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert "Database at revision" in upgrade.stdout
    keyring = tmp_path / "instance" / "keyring.json"
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
    created = keyring.read_bytes()

    check = leadvault("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "answers" in check.stdout
    assert "schema up to date" in check.stdout
    assert str((tmp_path / "instance").resolve()) in check.stdout
    # A second upgrade keeps the key ring as it is.
    again = leadvault("db", "upgrade")
    assert again.returncode == 0, again.stderr
    assert keyring.read_bytes() == created
