"""The console with many leads: p50/p95 of the lead list and the dashboard.

    python bench/console.py [--leads 100000] [--requests 30] [--database-url URL]

1. A fresh instance (``leadvault db upgrade``) gets four forms and ``--leads``
   leads created over the last 120 days, inserted in bulk: each with a scoring
   state (first form, UTM source, stage, grade, score, a few suspect), stage
   history for the ones that went on (about 40 % MQL, 15 % SAL, 5 % SQL, 2 %
   won), handoffs (a third of them rejected with a reason) and bot counters.
2. An owner account signs in through the real sign-in form; the Flask test
   client then requests, ``--requests`` times each after one warm-up: the
   dashboard (30 and 90 days), the lead list (newest first, a filtered list
   sorted by score, the second page through the cursor), a lead's page.
   The dashboard's lead reports come from its daily aggregates (admin.rollup,
   built after the bulk seed as ``leadvault dashboard rebuild`` builds them) and are
   kept a few seconds while no lead is added, moved or erased; the dashboard is
   timed as users meet it (warm) and with that cache emptied before every request
   ("cold": the reports read from the aggregates each time). The target holds for both.
3. Baseline in the same run: ``GET /healthz`` (the same app, middleware and
   session handling, one trivial query).

Prints p50 and p95 per page and their ratio to the baseline; PASS/MISS for the
target (p95 < 300 ms for the list and the dashboard on SQLite), never asserted.
In-process and single-threaded: take figures on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import itertools
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness import bench_env, run_cli

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]

import sqlalchemy as sa  # noqa: E402

TARGET_P95_MS = 300.0
PASSWORD = "bench password, long enough"
SOURCES = ("google", "newsletter", "linkedin", "partner", None)
REASONS = ("no_budget", "no_need", "not_reachable", "wrong_person")


def seed(app, count: int) -> list[uuid.UUID]:
    """Leads and everything the reports read, in bulk (no personal data is ever read)."""
    from capture import definition_service, definitions
    from leadvault import clock
    from leadvault.app import runtime
    from leadvault.db import unit_of_work
    from leadvault.models import Counter, Lead
    from scoring.models import Handoff, LeadScore, StageChange

    rt = runtime(app)
    rng = random.Random(7)
    now = clock.now()
    with app.app_context(), unit_of_work(rt.session_factory) as session:
        forms = [
            definition_service.create_form(
                session,
                name=f"Form {n}",
                kind="newsletter",
                fields=[],
                purposes=[definitions.PurposeSpec("newsletter", True)],
                allowed_origins=[],
            ).public_id
            for n in range(4)
        ]
    ids: list[uuid.UUID] = []
    chunk = 5000
    with rt.engine.begin() as conn:
        for start in range(0, count, chunk):
            leads, states, changes, handoffs = [], [], [], []
            for n in range(start, min(start + chunk, count)):
                lead_id = uuid.uuid4()
                ids.append(lead_id)
                created = now - dt.timedelta(seconds=rng.uniform(0, 120 * 86400))
                leads.append(
                    {
                        "id": lead_id,
                        "email_index": hashlib.sha256(f"{n}".encode()).digest(),
                        "email": os.urandom(48),  # stands for a sealed address
                        "wrapped_key": os.urandom(60),
                        "key_version": 1,
                        "language": "en",
                        "created_at": created,
                        "last_activity_at": created,
                    }
                )
                path = ["new"]
                roll = rng.random()
                for stage, share in (("mql", 0.40), ("sal", 0.15), ("sql", 0.05), ("won", 0.02)):
                    if roll < share:
                        path.append(stage)
                at = created
                for before, after in itertools.pairwise(path):
                    at += dt.timedelta(hours=rng.uniform(1, 96))
                    changes.append(
                        {
                            "lead_id": lead_id,
                            "from_stage": before,
                            "to_stage": after,
                            "at": min(at, now),
                            "cause_kind": "rule",
                            "cause": "bench",
                        }
                    )
                stage = path[-1]
                if stage == "mql" and rng.random() < 0.3:
                    handoffs.append(
                        {
                            "id": uuid.uuid4(),
                            "lead_id": lead_id,
                            "routing_rule": "bench",
                            "status": "rejected",
                            "reject_reason": rng.choice(REASONS),
                            "offered_at": min(at, now),
                            "attempt": 1,
                            "bant": {},
                        }
                    )
                states.append(
                    {
                        "lead_id": lead_id,
                        "score": rng.uniform(0, 120),
                        "as_of": created,
                        "fit_points": rng.uniform(0, 40),
                        "fit_grade": rng.choice("ABCD"),
                        "suspect": rng.random() < 0.03,
                        "flags": [],
                        "stage": stage,
                        "stage_changed_at": min(at, now),
                        "first_form": rng.choice(forms),
                        "utm_source": rng.choice(SOURCES),
                        "utm_campaign": None,
                        "enrichment_pending": False,
                        "enrichment_cost": 0.0,
                        "rules_version": 0,
                        "updated_at": created,
                    }
                )
            conn.execute(sa.insert(Lead.__table__), leads)
            conn.execute(sa.insert(LeadScore.__table__), states)
            if changes:
                conn.execute(sa.insert(StageChange.__table__), changes)
            if handoffs:
                conn.execute(sa.insert(Handoff.__table__), handoffs)
        conn.execute(
            sa.insert(Counter.__table__),
            [
                {
                    "name": f"capture.bot.{reason}.{forms[0]}",
                    "day": day,
                    "value": rng.randint(0, 40),
                }
                for reason in ("honeypot", "token", "too_fast")
                for day in {(now - dt.timedelta(days=d)).date() for d in range(90)}
            ],
        )
    return ids


def rebuild_aggregates(app) -> None:
    """The bulk seed bypasses the hooks that keep the dashboard's aggregates: build them."""
    from admin import rollup
    from leadvault.app import runtime
    from leadvault.db import unit_of_work

    rt = runtime(app)
    with app.app_context(), unit_of_work(rt.session_factory) as session:
        rollup.rebuild(session, rt.settings.zone)


def signed_in_client(app):
    from admin import accounts
    from leadvault.app import runtime
    from leadvault.db import unit_of_work

    with app.app_context(), unit_of_work(runtime(app).session_factory) as session:
        user = accounts.create(session, "owner@bench.example", "owner", actor="system")
        accounts.set_password(session, user, PASSWORD, actor="system")
    client = app.test_client()
    page = client.get("/admin/sign-in").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post(
        "/admin/sign-in",
        data={"email": "owner@bench.example", "password": PASSWORD, "csrf_token": token},
    )
    if answer.status_code != 302:
        raise SystemExit(f"sign-in failed: {answer.status_code}")
    return client


def timed(client, path: str, requests: int, *, cold: bool = False) -> tuple[float, float]:
    """(p50, p95) in milliseconds over ``requests`` requests after one warm-up;
    ``cold``: the dashboard's report cache emptied before each request."""
    from admin.console import dashboard

    first = client.get(path)
    if first.status_code != 200:
        raise SystemExit(f"{path}: {first.status_code}")
    times = []
    for _ in range(requests):
        if cold:
            with client.application.app_context():
                dashboard.report_cache().clear()
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"{path}: {answer.status_code}")
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--database-url", help="postgresql://… (an empty database); default SQLite")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary instance.")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lv-bench-console-"))
    try:
        settings = {"database_url": args.database_url} if args.database_url else {}
        env = bench_env(tmp / "instance", **settings)
        run_cli(["db", "upgrade"], env)
        from leadvault.app import create_app

        app = create_app(environ=env)
        started = time.perf_counter()
        ids = seed(app, args.leads)
        print(f"seeded {args.leads} leads in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        rebuild_aggregates(app)
        print(
            "dashboard aggregates built from them (as `leadvault dashboard rebuild`) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        client = signed_in_client(app)
        second = client.get("/console/leads").get_data(as_text=True)
        cursor = re.search(r'href="(/console/leads\?cursor=[^"]+)"', second)
        pages = {
            "baseline GET /healthz": "/healthz",
            "dashboard, 30 days": "/console/dashboard",
            "dashboard, 90 days": "/console/dashboard?days=90",
            "dashboard, 30 days, cold": "/console/dashboard",
            "dashboard, 90 days, cold": "/console/dashboard?days=90",
            "lead list, newest first": "/console/leads",
            "lead list, MQL by score": "/console/leads?reached=mql&grade=A&sort=score",
            "lead list, page 2": cursor.group(1).replace("&amp;", "&") if cursor else None,
            "one lead's page": f"/console/leads/{ids[len(ids) // 2]}",
        }
        results = {}
        for name, path in pages.items():
            if path is None:
                continue
            results[name] = timed(client, path, args.requests, cold=name.endswith("cold"))
        _base_p50, base_p95 = results["baseline GET /healthz"]
        print(f"{'page':28} {'p50 ms':>8} {'p95 ms':>8} {'p95/base':>9}  target")
        missed = False
        for name, (p50, p95) in results.items():
            target = ""
            if name.startswith(("dashboard", "lead list")):
                ok = p95 < TARGET_P95_MS
                missed |= not ok
                target = f"{'PASS' if ok else 'MISS'} (p95 < {TARGET_P95_MS:.0f} ms)"
            print(f"{name:28} {p50:8.1f} {p95:8.1f} {p95 / base_p95:9.1f}  {target}")
        print("targets:", "MISS" if missed else "PASS")
        return 0
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
