"""Exports and webhooks: CSV and XLSX rows/s with decryption, peak memory, deliveries/s.

    python bench/export.py [--leads 200000] [--small 20000] [--webhooks 3000] [--database-url URL]

1. A fresh instance (``leadvault db upgrade``) gets ``--leads`` leads with real
   wrapped data keys, a sealed address, first and last name and company, and
   a granted newsletter (half also ``sales_contact``), inserted in bulk. Nine
   in ten also get a scoring state (``lead_scores``) as the worker writes one
   at a lead's first form submission: first form, UTM source and campaign
   where the submission had them, a decayed score, a fit grade, a stage (most
   ``new``, some ``mql`` … ``won``, since a later date); the tenth stands for
   contacts imported without any event (no row, empty score columns).
2. Each export runs in a process of its own (so its memory is its own): the
   ``--small`` first leads and then all of them, as CSV (default columns:
   every field decrypted, consent, stage, score) and as XLSX (constant-memory
   mode), through ``export.service.write`` like ``leadvault export`` (CSV with
   its default worker processes, ``export.parallel``: 2 on two cores). Printed:
   rows/s, the growth of the exporting process's peak RSS during the export,
   and the growth of the PSS of it and its workers together (sampled every
   50 ms; PSS splits the pages a forked worker shares with its parent, so the
   sum is what the tree holds), and the largest worker's peak RSS (shared
   pages included). The verdict takes the larger growth; flat memory: the
   growth at ``--leads`` is about the growth at ``--small``.
   Baseline: the stdlib csv module writing as many rows of plain text (no
   database, no decryption) in this process; the ratio is export / baseline.
3. Webhooks: one endpoint on a loopback receiver (a separate process
   answering 204), ``--webhooks`` events queued through the outbox, then one
   worker (``Worker.deliver_other``, its batch size) delivers them: signed,
   each attempt recorded. Baseline: the same signed body posted as often with
   the deliverer's HTTP client alone (no database). The receiver counts what
   arrived; a missing or doubled delivery fails the run.

Targets (2 cores, SQLite): CSV ≥ 50 000 rows/s; RSS growth ≤ 30 MB at
``--leads`` rows and about the same at ``--small``; ≥ 300 webhook deliveries/s.
They are reported (PASS/MISS), never asserted. Take figures on a quiet machine.

Step 1 is ``bench/export_seed.py``, step 3 ``bench/export_webhooks.py``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from export_seed import START, seed
from export_webhooks import report_webhooks
from harness import BenchError, bench_env, run_cli, verdict

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]

import sqlalchemy as sa  # noqa: E402

TARGET_CSV_ROWS_S = 50_000
TARGET_RSS_MB = 30.0


def _peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _status_kb(key: str) -> int:
    with Path("/proc/self/status").open(encoding="ascii") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1])
    return _peak_rss_kb()


def _current_rss_kb() -> int:
    return _status_kb("VmRSS:")


def _reset_peak_rss() -> bool:
    """Start this process's peak resident memory (VmHWM) afresh at its present size, so
    the peak read after the export is the export's own: the lifetime peak
    (``ru_maxrss``) also holds start-up's, higher than the export's when the
    application's set-up used more memory for a moment than it kept."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _pss_kb(pid: int | str = "self") -> int:
    """Proportional set size: resident memory with each page shared between processes
    (a forked worker and its parent) counted in shares, so a tree's sum is what it
    really holds."""
    try:
        with Path(f"/proc/{pid}/smaps_rollup").open(encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _tree_pss_kb(pid: int) -> int:
    """The PSS of a process and its children (the export's workers)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return 0
    return _pss_kb(pid) + sum(_pss_kb(child) for child in children)


def child(env_json: str, format_: str, rows: int, target: str) -> None:
    """One export in this process (CSV with the CLI's default worker processes); prints
    rows, seconds, CPU seconds (this process's, its workers') and memory (JSON): the
    peak RSS growth of this process (its peak resident memory during the export, the
    peak reset when the export starts, minus its resident memory just before), the
    largest worker's peak RSS, and this process's PSS just before (the parent samples
    the tree's PSS)."""
    from export import parallel, service
    from leadvault.app import create_app, runtime
    from leadvault.db import read_only
    from leadvault.models import Lead

    app = create_app(environ=json.loads(env_json))
    # The first ``rows`` leads by a date filter, as the console and the CLI select
    # (seed() creates lead n at START + n seconds); a LIMIT would make SQLite
    # materialise the selection once per table the export reads.
    selection, _words = service.selection(created_to=START + dt.timedelta(seconds=rows))
    with app.app_context(), read_only(runtime(app).session_factory) as session:
        plan = service.prepare(session, format=format_)
        session.execute(sa.select(sa.func.count()).select_from(Lead)).scalar()
        workers = parallel.default_workers() if format_ == "csv" else 0
        fresh_peak = _reset_peak_rss()
        before = _current_rss_kb()
        before_pss = _pss_kb()
        print("started", flush=True)
        started = time.perf_counter()
        cpu_started = time.process_time()
        written = service.write(session, selection, plan, target, workers=workers)
        took = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        after = _status_kb("VmHWM:") if fresh_peak else _peak_rss_kb()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_peak = children.ru_maxrss if workers else 0
    print(
        json.dumps(
            {
                "rows": written,
                "seconds": took,
                "growth_kb": after - before,
                "pss_before_kb": before_pss,
                "workers": workers,
                "worker_peak_rss_kb": worker_peak,
                "cpu_seconds": cpu,
                "worker_cpu_seconds": children.ru_utime + children.ru_stime,
            }
        )
    )


def timed_export(env: dict[str, str], format_: str, rows: int, folder: Path) -> dict[str, float]:
    target = folder / f"bench-{rows}.{format_}"
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", format_, str(rows), str(target), json.dumps(env)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    # The export's memory with its workers: the tree's PSS, sampled every 50 ms from
    # here (a thread in the export's process would keep it from forking workers).
    peak_pss = 0
    if process.stdout.readline().strip() == "started":
        while process.poll() is None:
            peak_pss = max(peak_pss, _tree_pss_kb(process.pid))
            time.sleep(0.05)
    out, err = process.communicate()
    if process.returncode != 0:
        raise BenchError(f"{format_} export of {rows} failed: {err[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["tree_pss_growth_kb"] = max(0, peak_pss - result["pss_before_kb"])
    target.unlink(missing_ok=True)
    if result["rows"] != rows:
        raise BenchError(f"{format_} export wrote {result['rows']} rows, expected {rows}")
    return result


def timed_bare_csv(rows: int, folder: Path) -> float:
    """The baseline: the csv module writing as many rows of plain text, nothing else."""
    row = ["3f2b…", "lead1@bench.example", "Jürgen1", "Müller", "Bäckerei 1", "new", "", "0"]
    row += ["", "", "", "2026-03-02 09:00:00", "granted", "2026-03-02 09:00:00", "1"]
    started = time.perf_counter()
    with (folder / "bare.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for _ in range(rows):
            writer.writerow(row)
    return time.perf_counter() - started


def report_exports(env: dict[str, str], args: argparse.Namespace, tmp: Path) -> None:
    figures: dict[tuple[str, int], dict[str, float]] = {}
    for format_ in ("csv", "xlsx"):
        for rows in (args.small, args.leads):
            result = timed_export(env, format_, rows, tmp)
            figures[format_, rows] = result
            bare = timed_bare_csv(rows, tmp)
            print(
                f"{format_:4} {rows:>7} rows, {result['workers']} workers: "
                f"{rows / result['seconds']:>8.0f} rows/s ({result['seconds']:.2f} s; CPU "
                f"{result['cpu_seconds']:.2f} s"
                + (f" + workers {result['worker_cpu_seconds']:.2f} s" if result["workers"] else "")
                + "), "
                f"peak RSS growth {result['growth_kb'] / 1024:.1f} MB, process tree PSS growth "
                f"{result['tree_pss_growth_kb'] / 1024:.1f} MB"
                + (
                    f" (largest worker's peak RSS {result['worker_peak_rss_kb'] / 1024:.1f} MB,"
                    " pages shared with the parent included)"
                    if result["workers"]
                    else ""
                )
                + f"; bare csv module {rows / bare:.0f} rows/s "
                f"(export / bare = {bare / result['seconds']:.2f})"
            )
    csv_rate = args.leads / figures["csv", args.leads]["seconds"]

    def growth(rows: int) -> float:
        # The larger of the exporting process's RSS growth and its tree's PSS growth.
        return (
            max(
                max(figures[f, rows]["growth_kb"], figures[f, rows]["tree_pss_growth_kb"])
                for f in ("csv", "xlsx")
            )
            / 1024
        )

    big, small = growth(args.leads), growth(args.small)
    csv_verdict = verdict(csv_rate >= TARGET_CSV_ROWS_S)
    print(f"target CSV >= {TARGET_CSV_ROWS_S} rows/s: {csv_verdict} ({csv_rate:.0f})")
    flat = big <= TARGET_RSS_MB and big <= small + 5
    print(
        f"target RSS growth <= {TARGET_RSS_MB:.0f} MB at {args.leads} and flat: {verdict(flat)} "
        f"({small:.1f} MB at {args.small}, {big:.1f} MB at {args.leads})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--webhooks", type=int, default=3000)
    parser.add_argument("--database-url", help="postgresql://… (an empty database); default SQLite")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary instance.")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        format_, rows, target, env_json = args.child
        child(env_json, format_, int(rows), target)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="lv-bench-export-"))
    try:
        settings = {"webhook_allow_networks": "127.0.0.0/8"}
        if args.database_url:
            settings["database_url"] = args.database_url
        env = bench_env(tmp / "instance", **settings)
        run_cli(["db", "upgrade"], env)
        from leadvault.app import create_app

        app = create_app(environ=env)
        started = time.perf_counter()
        seed(app, args.leads)
        backend = "PostgreSQL" if args.database_url else "SQLite"
        seeded = time.perf_counter() - started
        print(f"exports on {backend}: {args.leads} leads seeded in {seeded:.1f} s")
        report_exports(env, args, tmp)
        report_webhooks(app, args.webhooks)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"instance kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
