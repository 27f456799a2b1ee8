"""Event ingestion and recompute speed, against a bare Flask baseline in the same run.

    python bench/events.py [--duration 8] [--batch 500] [--leads 100000] [--events-per-lead 10]

1. Batch ingestion: POST /api/v1/events with ``--batch`` events per request (by
   lead id), from ``--clients`` keep-alive connections, to Leadvault served by
   gunicorn (``--workers`` sync workers, SQLite) and to bench/bare_events.py
   (same routes, only parses the JSON) under the same gunicorn settings.
2. Browser events: POST /api/v1/track, one event per request with a signed
   tracking token of a lead with tracking consent; same baseline.
3. Recompute: ``--leads`` leads with ``--events-per-lead`` events each are
   written straight into the database (real data keys, sealed properties),
   then ``leadvault scoring recompute`` runs and is timed; the time to merely
   read the events is printed for reference.

Prints the figures and ratios; targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from harness import BenchError, Server, bench_env, run_cli

BENCH_DIR = Path(__file__).resolve().parent
# bench/capture.py would shadow the capture package when this runs as a script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]
TARGET_BATCH_EPS = 5000.0
TARGET_RECOMPUTE_S = 60.0
CATEGORIES = ["pricing", "product", "blog", "careers", "docs"]
TYPES = ["page_view", "page_view", "qr_scan", "product_image_click", "asset_downloaded"]


def drive(
    port: int,
    path: str,
    *,
    bodies: list[bytes],
    headers: dict[str, str],
    clients: int,
    duration: float,
) -> tuple[int, int, float]:
    """Send bodies round-robin from ``clients`` connections; (requests ok, failed, seconds)."""
    ok = [0] * clients
    failed = [0] * clients
    stop = time.monotonic() + duration

    def worker(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = n
        while time.monotonic() < stop:
            conn.request("POST", path, body=bodies[i % len(bodies)], headers=headers)
            response = conn.getresponse()
            response.read()
            if 200 <= response.status < 300:
                ok[n] += 1
            else:
                failed[n] += 1
            i += clients
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(ok), sum(failed), time.monotonic() - started


def seed_http_leads(instance: Path, count: int) -> tuple[list[str], list[str]]:
    """Leads for the HTTP runs: ids, and tracking tokens of leads with tracking consent."""
    os.environ.update(bench_env(instance))
    from consent.models import Consent, ConsentStatus
    from leadvault import clock, leads
    from leadvault.app import create_app, runtime
    from leadvault.db import unit_of_work
    from scoring import tracking

    app = create_app()
    ids, tokens = [], []
    with app.app_context(), unit_of_work(runtime(app).session_factory) as session:
        for i in range(count):
            lead, _ = leads.get_or_create(session, f"bench-{i}@example.com", language="en")
            ids.append(str(lead.id))
            session.add(
                Consent(
                    lead_id=lead.id,
                    purpose="tracking",
                    status=ConsentStatus.GRANTED,
                    granted_at=clock.now(),
                )
            )
            tokens.append(tracking.tracking_token(session, lead.id))
    runtime(app).engine.dispose()
    return ids, tokens


def batch_bodies(ids: list[str], batch: int, n: int) -> list[bytes]:
    rng = random.Random(1)
    bodies = []
    for _ in range(n):
        items = []
        for _ in range(batch):
            kind = rng.choice(TYPES)
            item: dict[str, object] = {"type": kind, "lead_id": rng.choice(ids)}
            if kind == "page_view":
                item["properties"] = {"category": rng.choice(CATEGORIES)}
            items.append(item)
        bodies.append(json.dumps({"events": items}).encode())
    return bodies


def track_bodies(tokens: list[str], n: int) -> list[bytes]:
    rng = random.Random(2)
    return [
        json.dumps(
            {
                "token": rng.choice(tokens),
                "type": "page_view",
                "properties": {"category": rng.choice(CATEGORIES)},
            }
        ).encode()
        for _ in range(n)
    ]


def http_runs(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    instance = tmp / "http"
    # One client sends every browser event: lift the per-IP limit (120/minute).
    env = bench_env(instance, rate_limit_track="1000000/minute")
    run_cli(["db", "upgrade"], env)
    token = run_cli(["api-tokens", "create", "bench", "--scope", "events:write"], env).strip()
    ids, tokens = seed_http_leads(instance, args.http_leads)
    bodies = batch_bodies(ids, args.batch, 40)
    singles = track_bodies(tokens, 2000)
    api_headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    beacon_headers = {"Content-Type": "text/plain", "Origin": "https://www.example.com"}
    results: dict[str, float] = {}
    for name, app, app_env, chdir in (
        ("leadvault", "leadvault.wsgi:app", env, None),
        (
            "bare",
            "bare_events:app",
            {k: v for k, v in env.items() if not k.startswith("LEADVAULT_")},
            BENCH_DIR,
        ),
    ):
        server = Server(
            name,
            app,
            app_env,
            workers=args.workers,
            log_dir=tmp,
            extra=["--chdir", str(chdir)] if chdir else None,
        )
        try:
            server.wait_ready()
            warm = {"headers": api_headers, "clients": 1, "duration": 0.5}
            drive(server.port, "/api/v1/events", bodies=bodies[:2], **warm)
            ok, failed, secs = drive(
                server.port,
                "/api/v1/events",
                bodies=bodies,
                headers=api_headers,
                clients=args.clients,
                duration=args.duration,
            )
            results[f"{name}_batch_eps"] = ok * args.batch / secs
            results[f"{name}_batch_failed"] = failed
            ok, failed, secs = drive(
                server.port,
                "/api/v1/track",
                bodies=singles,
                headers=beacon_headers,
                clients=args.clients * 2,
                duration=args.duration,
            )
            results[f"{name}_track_eps"] = ok / secs
            results[f"{name}_track_failed"] = failed
        finally:
            server.close()
    return results


def seed_recompute(instance: Path, n_leads: int, per_lead: int) -> None:
    """Leads with real (wrapped) data keys and sealed event properties, inserted in bulk."""
    os.environ.update(bench_env(instance))
    import sqlalchemy as sa

    from leadvault.app import create_app, runtime
    from leadvault.models import Lead
    from scoring.models import Event

    app = create_app()
    rt = runtime(app)
    vault = rt.vault
    now = dt.datetime.now(dt.UTC)
    rng = random.Random(3)
    with rt.engine.begin() as conn:
        for start in range(0, n_leads, 5000):
            lead_rows, event_rows = [], []
            for _ in range(min(5000, n_leads - start)):
                lead_id = uuid.uuid4()
                key, wrapped = vault.new_data_key(lead_id)
                lead_rows.append(
                    {
                        "id": lead_id,
                        "email_index": os.urandom(32),
                        "email": os.urandom(40),
                        "wrapped_key": wrapped.wrapped,
                        "key_version": wrapped.version,
                        "language": "en",
                        "created_at": now,
                        "last_activity_at": now,
                    }
                )
                for _ in range(per_lead):
                    event_id = uuid.uuid4()
                    kind = rng.choice(TYPES)
                    props = {"category": rng.choice(CATEGORIES)} if kind == "page_view" else None
                    event_rows.append(
                        {
                            "id": event_id,
                            "lead_id": lead_id,
                            "type": kind,
                            "source": "api",
                            "occurred_at": now - dt.timedelta(days=rng.uniform(0, 60)),
                            "received_at": now,
                            "properties": key.encrypt_json(f"event/{event_id}", props)
                            if props
                            else None,
                            "awards": {},
                            "rules_version": 0,
                        }
                    )
            conn.execute(sa.insert(Lead.__table__), lead_rows)
            conn.execute(sa.insert(Event.__table__), event_rows)
    rt.engine.dispose()


def recompute_run(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    instance = tmp / "recompute"
    env = bench_env(instance)
    run_cli(["db", "upgrade"], env)
    started = time.monotonic()
    seed_recompute(instance, args.leads, args.events_per_lead)
    seeded = time.monotonic() - started
    import sqlite3

    started = time.monotonic()
    with sqlite3.connect(instance / "leadvault.db") as conn:
        rows = conn.execute(
            "SELECT id, lead_id, type, occurred_at, properties FROM scoring_events "
            "ORDER BY lead_id, occurred_at"
        ).fetchall()
    read = time.monotonic() - started
    started = time.monotonic()
    out = run_cli(["scoring", "recompute"], env)
    took = time.monotonic() - started
    if f"{args.leads} leads recomputed" not in out:
        raise SystemExit(f"recompute said:\n{out}")
    return {"seed_s": seeded, "read_s": read, "recompute_s": took, "events": len(rows)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--http-leads", type=int, default=2000)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--events-per-lead", type=int, default=10)
    parser.add_argument("--skip-recompute", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lv-bench-events-"))
    try:
        try:
            http = http_runs(args, tmp)
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(
            f"\n{os.cpu_count()} CPUs, gunicorn -w {args.workers} (sync), SQLite, "
            f"{args.clients} clients, {args.duration:.0f}s per run"
        )
        ratio = http["leadvault_batch_eps"] / http["bare_batch_eps"]
        print(
            f"batch ({args.batch}/request)  leadvault {http['leadvault_batch_eps']:9.0f} events/s"
            f"   bare {http['bare_batch_eps']:9.0f} events/s   ratio {ratio:6.1%}"
            f"   failed {http['leadvault_batch_failed']:.0f}/{http['bare_batch_failed']:.0f}"
        )
        ratio = http["leadvault_track_eps"] / http["bare_track_eps"]
        print(
            f"browser (1/request)  leadvault {http['leadvault_track_eps']:9.0f} events/s"
            f"   bare {http['bare_track_eps']:9.0f} events/s   ratio {ratio:6.1%}"
            f"   failed {http['leadvault_track_failed']:.0f}/{http['bare_track_failed']:.0f}"
        )
        verdict = "PASS" if http["leadvault_batch_eps"] >= TARGET_BATCH_EPS else "MISS"
        print(f"target batch >= {TARGET_BATCH_EPS:.0f} events/s: {verdict}")
        failed = [
            f"{name}: {http[f'{name}_failed']:.0f} failed requests"
            for name in ("leadvault_batch", "bare_batch", "leadvault_track", "bare_track")
            if http[f"{name}_failed"]
        ]
        if failed:  # figures over refused requests would measure the wrong thing
            print("\nBENCH INVALID:\n  " + "\n  ".join(failed), file=sys.stderr)
            return 1
        if not args.skip_recompute:
            rec = recompute_run(args, tmp)
            print(
                f"recompute {args.leads} leads x {args.events_per_lead} events "
                f"({rec['events']:.0f} events): {rec['recompute_s']:.1f} s "
                f"(reading the events alone: {rec['read_s']:.1f} s; seeding took "
                f"{rec['seed_s']:.1f} s)"
            )
            verdict = "PASS" if rec["recompute_s"] < TARGET_RECOMPUTE_S else "MISS"
            print(f"target recompute < {TARGET_RECOMPUTE_S:.0f} s: {verdict}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
