"""The benchmarks run end to end (short); the figures themselves are not judged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WRK = Path("/usr/bin/wrk")
needs_gunicorn = pytest.mark.skipif(
    not (Path(sys.executable).parent / "gunicorn").exists(), reason="gunicorn not in this venv"
)


def run_bench(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.skipif(not WRK.exists(), reason="wrk is not installed (apt-get install -y wrk)")
@needs_gunicorn
def test_capture_bench_runs() -> None:
    done = run_bench(
        "capture.py", "--duration", "1", "--concurrency", "4", "--warmup", "5", timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ratio" in done.stdout
    # Both servers' workers were measured (the last column: CPU ms per request).
    rows = [line.split() for line in done.stdout.splitlines()]
    cpu = {row[0]: float(row[-1]) for row in rows if row and row[0] in ("leadvault", "bare")}
    assert set(cpu) == {"leadvault", "bare"} and all(ms > 0 for ms in cpu.values()), done.stdout


def test_capture_cpu_bench_runs() -> None:
    done = run_bench(
        "capture_cpu.py", "--submissions", "20", "--rounds", "1", "--warmup", "5", timeout=120
    )
    # Exit 1 would mean a submission not answered 200 or not queued.
    assert done.returncode == 0, done.stdout + done.stderr
    assert "round 1: leadvault" in done.stdout and "bare / leadvault" in done.stdout


@pytest.mark.skipif(not WRK.exists(), reason="wrk is not installed (apt-get install -y wrk)")
@needs_gunicorn
def test_pipeline_bench_runs() -> None:
    done = run_bench(
        "pipeline.py",
        "--duration",
        "1",
        "--concurrency",
        "4",
        "--warmup",
        "5",
        "--drain",
        "200",
        "--burn",
        timeout=240,
    )
    # Exit 1 would mean failed requests, or a submission lost, unmailed or mailed twice.
    assert done.returncode == 0, done.stdout + done.stderr
    assert "end-to-end" in done.stdout and "0 after draining" in done.stdout
    assert "drain " in done.stdout and "capture + burner" in done.stdout


@needs_gunicorn
def test_events_bench_runs() -> None:
    small = ["--duration", "1", "--http-leads", "20", "--leads", "200", "--events-per-lead", "2"]
    done = run_bench("events.py", *small, timeout=120)
    # Exit 1 would mean refused requests (a limit, a 4xx) were measured.
    assert done.returncode == 0, done.stdout + done.stderr
    assert "browser (1/request)" in done.stdout and "recompute 200 leads" in done.stdout


def test_nurture_bench_runs() -> None:
    done = run_bench("nurture.py", "--leads", "300", "--spread-minutes", "3", timeout=180)
    # Exit 1 would mean the tick queued another number of mails than were due.
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mails/s" in done.stdout and "USING COVERING INDEX" in done.stdout


def test_export_bench_runs() -> None:
    done = run_bench(
        "export.py", "--leads", "600", "--small", "60", "--webhooks", "40", timeout=240
    )
    # Exit 1 would mean an export wrote another row count, or the receiver missed or
    # doubled a delivery.
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rows/s" in done.stdout and "deliveries/s" in done.stdout
    assert done.stdout.count("peak RSS growth") == 4


def test_rules_bench_runs() -> None:
    done = run_bench(
        "rules.py", "--leads", "300", "--events-per-lead", "3", "--limit", "100", timeout=180
    )
    # Exit 1 would mean the dry run counted other leads than the activation moved.
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ratio to activation" in done.stdout and "dry run, first 100" in done.stdout


def test_imports_bench_runs() -> None:
    done = run_bench("imports.py", "--lines", "300", timeout=120)
    # Exit 1 would mean a stage's counts (created, merged, refused, consent) were not the
    # expected ones, or the consent ledger did not verify.
    assert done.returncode == 0, done.stdout + done.stderr
    assert "same file again (merged)" in done.stdout and "statements/line" in done.stdout


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
def test_worker_ab_bench_runs() -> None:
    done = run_bench(
        "worker_ab.py",
        "--base",
        "HEAD",
        "--rounds",
        "2",
        "--items",
        "20",
        "--batch-size",
        "10",
        timeout=180,
    )
    # Exit 1 would mean a round left a submission without its lead or mail, a ledger did
    # not verify, or a side imported another tree's code than its own.
    assert done.returncode == 0, done.stdout + done.stderr
    assert "round  2" in done.stdout
    assert all(f"{stage}  base" in done.stdout for stage in ("inbox", "mail ", "both "))
