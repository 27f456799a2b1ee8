"""Throughput of POST /f/<id> (JSON submissions) under gunicorn, against a bare Flask app.

    python bench/capture.py [--duration 10] [--concurrency 32] [--worker-class sync]

Sets up a throw-away instance (SQLite), creates a newsletter form, serves Leadvault
with gunicorn (2 workers) on loopback and drives it with wrk (2 threads), every
request a new address with a reused render token. Then serves bench/bare_app.py
with the same gunicorn settings and runs the same wrk script. Prints
submissions/s, p50 and p99 and the workers' CPU time per request for both, the
ratio and PASS/MISS per target.
Exits non-zero when a run has more than 1 % failed requests (non-2xx or socket
errors) or when the stored leads do not match the accepted submissions — the
targets themselves are reported, never asserted.

Uses the gunicorn and leadvault executables next to sys.executable.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from harness import BenchError, Server
from load import (
    BENCH_DIR,
    TOKENS_PER_SECOND,
    WrkResult,
    add_load_arguments,
    bare_env,
    bench_database,
    bench_instance,
    count_rows,
    http,
    missing_tools,
    render_tokens,
    run_bare,
    run_wrk,
    warmed,
    write_script,
)

# This file is named like the `capture` package; keep its folder off the import
# path so the worker code imported below finds the real package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]

TARGET_RATIO = 25.0  # Leadvault req/s as % of bare Flask req/s
TARGET_P99_MS = 100.0
MAX_FAILED_FRACTION = 0.01

# --- the two runs ---------------------------------------------------------------


def serve(
    args: argparse.Namespace,
    tmp: Path,
    name: str,
    app: str,
    env: dict[str, str],
    *,
    extra: list[str] | None = None,
) -> Server:
    """Both apps start here, so they run under the same gunicorn settings."""
    return Server(
        name,
        app,
        env,
        workers=args.workers,
        worker_class=args.worker_class,
        threads=args.threads,
        log_dir=tmp,
        extra=extra,
    )


def bench_leadvault(
    args: argparse.Namespace, tmp: Path, database_url: str
) -> tuple[WrkResult, dict[str, int]]:
    env, form_id = bench_instance(tmp / "instance", database_url)
    tokens = render_tokens(env, form_id, args.warmup + TOKENS_PER_SECOND * args.duration)
    script = write_script(tmp, tokens[args.warmup :], args.wrk_threads)
    path = f"/f/{form_id}"
    server = serve(args, tmp, "leadvault", "leadvault.wsgi:app", env)
    with warmed(server, path, tokens, args.warmup):
        status, body = http("GET", f"{server.base}/f/{form_id}/config")
        if status != 200:
            raise BenchError(f"GET /f/{form_id}/config answered {status}: {body[:300]!r}")
        json.loads(body)["render_token"]  # the form renders
        before = count_rows(database_url, "inbox")
        result = run_wrk(server, path, script, args)
    # The endpoint stores each accepted submission as one sealed inbox row; the
    # worker turns them into leads, ledger entries and opt-in mails. Drain the
    # inbox here with the real worker code and time it, so the report shows
    # both rates and proves every accepted submission became a lead.
    stored = {"accepted_during_run": count_rows(database_url, "inbox") - before}
    stored["drain_seconds"] = drain_inbox(env)
    stored.update({t: count_rows(database_url, t) for t in ("leads", "submissions", "inbox")})
    return result, stored


def drain_inbox(env: dict[str, str]) -> float:
    """Process the whole inbox with the worker's own code; returns seconds taken."""
    from leadvault.app import create_app
    from leadvault.worker import Worker

    app = create_app(environ=env)
    worker = Worker(app, batch_size=500)
    started = time.perf_counter()
    while worker.process_inbox():
        pass
    return time.perf_counter() - started


def bench_bare(args: argparse.Namespace, tmp: Path) -> WrkResult:
    server = serve(args, tmp, "bare", "bare_app:app", bare_env(), extra=["--chdir", str(BENCH_DIR)])
    return run_bare(server, tmp / "submit.lua", args)


# --- report -------------------------------------------------------------------


def report(
    args: argparse.Namespace, lv: WrkResult, bare: WrkResult, stored: dict[str, int]
) -> list[str]:
    """Print the report; return the problems that make the run invalid."""
    ratio = 100.0 * lv.rps / bare.rps if bare.rps else 0.0
    print(
        f"\nPOST /f/<id> JSON, gunicorn -w {args.workers} -k {args.worker_class}"
        + (f" --threads {args.threads}" if args.worker_class == "gthread" else "")
        + f", wrk -t{args.wrk_threads} -c{args.concurrency} -d{args.duration}s, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"{'':12}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'requests':>10}"
        f"{'non-2xx':>9}{'sock err':>9}{'CPU ms/req':>11}"
    )
    for name, r in (("leadvault", lv), ("bare flask", bare)):
        print(
            f"{name:12}{r.rps:>10.1f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}{r.requests:>10}"
            f"{r.non_2xx:>9}{r.socket_errors:>9}{r.server_cpu_ms:>11.3f}"
        )
    print(f"ratio       leadvault/bare = {ratio:.1f} %")
    drained = stored["submissions"]
    rate = drained / stored["drain_seconds"] if stored["drain_seconds"] else 0.0
    print(f"accepted    {stored['accepted_during_run']} submissions into the inbox during the run")
    print(
        f"worker      stored {drained} submissions as {stored['leads']} leads with ledger "
        f"entries and opt-in mails in {stored['drain_seconds']:.1f} s ({rate:.0f}/s, 1 process); "
        f"{stored['inbox']} left in the inbox"
    )
    print("targets")
    print(
        f"  throughput >= {TARGET_RATIO:.0f} % of bare: {ratio:6.1f} %   "
        f"{'PASS' if ratio >= TARGET_RATIO else 'MISS'}"
    )
    print(
        f"  p99 < {TARGET_P99_MS:.0f} ms:              {lv.p99_ms:6.1f} ms  "
        f"{'PASS' if lv.p99_ms < TARGET_P99_MS else 'MISS'}"
    )

    problems = []
    for name, r in (("leadvault", lv), ("bare flask", bare)):
        if r.failed_fraction > MAX_FAILED_FRACTION:
            problems.append(
                f"{name}: {r.non_2xx} non-2xx and {r.socket_errors} socket errors "
                f"in {r.requests} requests (> {MAX_FAILED_FRACTION:.0%})"
            )
    ok_responses = lv.requests - lv.non_2xx - lv.socket_errors
    # 200 is also the reply to a submission judged a bot; stored rows prove real work.
    # In-flight requests at wrk's end may add a few rows, so only too few is an error.
    if stored["accepted_during_run"] < ok_responses * (1 - MAX_FAILED_FRACTION):
        problems.append(
            f"leadvault: {ok_responses} accepted submissions but only "
            f"{stored['accepted_during_run']} stored in the inbox"
        )
    if stored["inbox"] or stored["leads"] != stored["submissions"]:
        problems.append(
            f"leadvault: the worker left {stored['inbox']} submissions unprocessed "
            f"or stored {stored['leads']} leads for {stored['submissions']} submissions"
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--worker-class", choices=["sync", "gthread"], default="sync")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("-v", "--verbose", action="store_true", help="print wrk's output")
    args = parser.parse_args(argv)
    args.concurrency = max(args.concurrency, args.wrk_threads)

    if missing_tools():
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="leadvault-bench-"))
    try:
        with bench_database(args.database_url, tmp / "instance") as database_url:
            lv, stored = bench_leadvault(args, tmp, database_url)
        bare = bench_bare(args, tmp)
        if args.verbose:
            print("--- wrk leadvault ---\n" + lv.raw + "--- wrk bare ---\n" + bare.raw)
        problems = report(args, lv, bare, stored)
    except BenchError as exc:
        print(f"\nBENCH FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if problems:
        print("\nBENCH INVALID:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
