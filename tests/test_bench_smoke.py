"""bench/capture.py runs end to end (short); the figures themselves are not judged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WRK = Path("/usr/bin/wrk")


@pytest.mark.skipif(not WRK.exists(), reason="wrk is not installed (apt-get install -y wrk)")
@pytest.mark.skipif(
    not (Path(sys.executable).parent / "gunicorn").exists(), reason="gunicorn not in this venv"
)
def test_capture_bench_runs() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "capture.py"),
            "--duration",
            "1",
            "--concurrency",
            "4",
            "--warmup",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ratio" in done.stdout
    # Both servers' workers were measured (the last column: CPU ms per request).
    rows = [line.split() for line in done.stdout.splitlines()]
    cpu = {row[0]: float(row[-1]) for row in rows if row and row[0] in ("leadvault", "bare")}
    assert set(cpu) == {"leadvault", "bare"} and all(ms > 0 for ms in cpu.values()), done.stdout


@pytest.mark.skipif(
    not (Path(sys.executable).parent / "gunicorn").exists(), reason="gunicorn not in this venv"
)
def test_events_bench_runs() -> None:
    small = ["--duration", "1", "--http-leads", "20", "--leads", "200", "--events-per-lead", "2"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "events.py"), *small],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Exit 1 would mean refused requests (a limit, a 4xx) were measured.
    assert done.returncode == 0, done.stdout + done.stderr
    assert "browser (1/request)" in done.stdout and "recompute 200 leads" in done.stdout
