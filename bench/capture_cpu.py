"""CPU time of one POST /f/<id> in process (a WSGI call, no HTTP), next to the bare app.

    python bench/capture_cpu.py [--submissions 2000] [--rounds 3] [--database-url …] [--profile F]

What bench/capture.py sends, without gunicorn, wrk and the network: a throw-away
instance with one newsletter form (as capture.py makes it), then per round
``--submissions`` JSON submissions (a new address and a render token of its own
each) called on ``leadvault.wsgi:app`` as gunicorn calls it, and as many on
bench/bare_app.py. Timed by the process's CPU time (``time.process_time``), so
other processes on a shared machine barely move the figures: use it to iterate,
and bench/capture.py (wall clock, gunicorn) for the figures that count. On
PostgreSQL the CPU time of the server process behind the app's connection is
printed too (it runs on the same CPUs). ``--profile`` writes a cProfile of the
last round (on the CPU-time clock). Exits 1 unless every submission got a 200 and an inbox row.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
# The domain packages first, with this folder off the path: it holds files named like
# some of them (capture.py, nurture.py …); it goes back on below for harness and load.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]
for _package in ("admin", "capture", "consent", "export", "nurture", "scoring", "widgets"):
    importlib.import_module(_package)
sys.path.append(str(BENCH_DIR))

from harness import LockUse  # noqa: E402
from load import bench_database, bench_instance, count_rows, render_tokens  # noqa: E402
from sqlalchemy import event as sa_event  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402


def environs(path: str, tokens: list[str], tag: str) -> list[dict[str, Any]]:
    """One WSGI environ per submission, built before the clock starts."""
    built = []
    for i, token in enumerate(tokens):
        body = json.dumps(
            {
                "email": f"cpu-{tag}-{i}-{time.time_ns()}@example.com",
                "consent": ["newsletter"],
                "render_token": token,
            }
        )
        builder = EnvironBuilder(
            path=path,
            method="POST",
            data=body,
            content_type="application/json",
            headers={"User-Agent": "wrk", "Host": "127.0.0.1:8000"},
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
        )
        built.append(builder.get_environ())
    return built


def call_all(app: Any, environs: list[dict[str, Any]]) -> tuple[float, dict[str, int]]:
    """CPU ms per request, and the count of each status."""
    statuses: dict[str, int] = {}

    def start_response(status: str, _headers: Any, _exc_info: Any = None) -> None:
        statuses[status] = statuses.get(status, 0) + 1

    started = time.process_time()
    for environ in environs:
        body = app(environ, start_response)
        for _chunk in body:
            pass
        if hasattr(body, "close"):
            body.close()
    return 1000 * (time.process_time() - started) / len(environs), statuses


def backend_pids(app: Any) -> set[int]:
    """From now on, the PostgreSQL server processes of every connection the app opens
    (pooled, or held by a thread for its one-statement writes)."""
    pids: set[int] = set()
    engine = app.extensions["leadvault"].engine
    if engine.dialect.name == "postgresql":
        sa_event.listen(
            engine, "connect", lambda connection, _record: pids.add(connection.info.backend_pid)
        )
    return pids


def server_cpu_seconds(pids: set[int]) -> float:
    """CPU time so far of the server processes ``pids`` (the server runs on this
    machine); 0 on SQLite."""
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:  # closed meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def beside(
    server_ms: float, locks: LockUse | None, before: tuple[float, float], requests: int
) -> str:
    """What a round cost beside the process's CPU: on PostgreSQL the server's CPU, on
    SQLite the time holding the write lock (per request, ms)."""
    if locks is None:
        return f", database server {server_ms:.3f}"
    cpu = 1000 * (locks.cpu - before[0]) / requests
    wall = 1000 * (locks.wall - before[1]) / requests
    return f" (holding the write lock: {cpu:.3f} CPU, {wall:.3f} wall)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=2000, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--database-url", help="postgresql://… server (a fresh database)")
    parser.add_argument("--profile", help="write a cProfile of the last round here")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="leadvault-capture-cpu-"))
    failed = False
    with bench_database(args.database_url, tmp / "instance") as database_url:
        env, form_id = bench_instance(tmp / "instance", database_url)
        per_round = args.submissions
        tokens = render_tokens(env, form_id, args.warmup + per_round * args.rounds)
        os.environ.update(env)  # leadvault.wsgi builds its app from the environment
        app = importlib.import_module("leadvault.wsgi").app
        pids = backend_pids(app)
        # SQLite: what a request does holding the one write lock the worker waits for too.
        locks = None if args.database_url else LockUse()
        bare = importlib.import_module("bare_app").app
        path = f"/f/{form_id}"
        call_all(app, environs(path, tokens[: args.warmup], "warmup"))
        call_all(bare, environs("/f/bench", tokens[: args.warmup], "warmup"))
        print(f"POST {path}, JSON, in process; CPU ms per request (process_time)")
        for n in range(args.rounds):
            chunk = tokens[args.warmup + n * per_round : args.warmup + (n + 1) * per_round]
            ours, theirs = environs(path, chunk, str(n)), environs("/f/bench", chunk, str(n))
            # Timed by CPU time, as the rounds are: waiting for the database is not cost.
            profile = (
                cProfile.Profile(time.process_time)
                if args.profile and n == args.rounds - 1
                else None
            )
            server_before = server_cpu_seconds(pids)
            lock_before = (locks.cpu, locks.wall) if locks else (0.0, 0.0)
            if profile is not None:
                profile.enable()
            lv_ms, lv_statuses = call_all(app, ours)
            if profile is not None:
                profile.disable()
                profile.dump_stats(args.profile)
            server_ms = 1000 * (server_cpu_seconds(pids) - server_before) / per_round
            bare_ms, bare_statuses = call_all(bare, theirs)
            server = beside(server_ms, locks, lock_before, per_round)
            print(
                f"round {n + 1}: leadvault {lv_ms:.3f}{server}, bare {bare_ms:.3f}, "
                f"bare / leadvault {100 * bare_ms / lv_ms:.1f} %"
            )
            for name, statuses in (("leadvault", lv_statuses), ("bare", bare_statuses)):
                if set(statuses) != {"200 OK"}:
                    print(f"  {name} answered {statuses}", file=sys.stderr)
                    failed = True
        app.extensions["leadvault"].engine.dispose()
        queued = count_rows(database_url, "inbox")
        expected = args.warmup + per_round * args.rounds
        if queued != expected:
            print(f"  {queued} inbox rows for {expected} submissions", file=sys.stderr)
            failed = True
    if failed:
        print("BENCH FAILED", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
