"""The nurture tick: find and queue one minute's due steps among many leads in sequences.

    python bench/nurture.py [--leads 100000] [--spread-minutes 100] [--database-url URL]

1. A fresh instance (``leadvault db upgrade``) gets a two-mail sequence and
   ``--leads`` leads with real wrapped data keys, a sealed address and first
   name, a confirmed newsletter (a third also ``tracking``, so their links are
   signed redirects) and a run in the sequence whose next step falls evenly
   into the next ``--spread-minutes`` minutes, inserted in bulk.
2. The clock is frozen one minute after the first due time, so one minute's
   steps are due (about leads / spread-minutes of them). Timed, each in its
   own transaction: the due query alone (the index on ``due_at``), the same
   query with the index refused (a scan of every run: the baseline the index
   must beat), and one full tick (find, read consent, scores, caps and
   profiles in bulk, render and queue every mail in the outbox, commit).
3. Baseline for the queueing: the same number of mails, rendered once, queued
   with the outbox's ``enqueue_mail`` alone.

Prints the figures and ratios; the target (tick < 2 s on SQLite) is reported,
never asserted. Runs in-process, so take figures on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness import BenchError, bench_env, run_cli

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]

import sqlalchemy as sa  # noqa: E402

TARGET_TICK_S = 2.0
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
SEQUENCE = """
[sequence]
key = "bench"
name = "Bench"
purpose = "newsletter"

[trigger]
on = "purpose_confirmed"

[[steps]]
name = "first"
mail = "one"

[[steps]]
name = "pause"
wait = { days = 3 }

[[steps]]
name = "second"
mail = "two"

[mails.one.en]
subject = "Our guide"
markdown = \"\"\"
{{ greeting }}

here is [the guide](https://www.example.com/guide) and [the FAQ](https://www.example.com/faq).

- one point
- another point
\"\"\"

[mails.one.de]
subject = "Unser Leitfaden"
markdown = "{{ greeting }} [Leitfaden](https://www.example.com/de/leitfaden)"

[mails.two.en]
subject = "A case study"
markdown = "{{ greeting }} [Case study](https://www.example.com/case)"

[mails.two.de]
subject = "Eine Fallstudie"
markdown = "{{ greeting }} [Fallstudie](https://www.example.com/de/fall)"
"""


def seed(app, leads_count: int, spread_minutes: int) -> None:
    """Leads, consents and runs, inserted in bulk (real keys, sealed fields)."""
    from consent.models import Consent
    from leadvault.app import runtime
    from leadvault.models import Lead, LeadAttribute
    from nurture import sequences
    from nurture.models import Enrollment

    rt = runtime(app)
    vault = rt.vault
    with app.app_context(), rt.session_factory() as session:
        sequences.load(session, SEQUENCE, source="bench.toml")
        text_ids = {
            p: session.scalar(
                sa.text(f"SELECT id FROM consent_texts WHERE purpose = '{p}' LIMIT 1")
            )
            for p in ("newsletter", "tracking")
        }
        session.commit()
    spread = dt.timedelta(minutes=spread_minutes)
    chunk = 5000
    with rt.engine.begin() as conn:
        for start in range(0, leads_count, chunk):
            leads, attributes, consents, runs = [], [], [], []
            for n in range(start, min(start + chunk, leads_count)):
                lead_id = uuid.uuid4()
                email = f"lead{n}@bench.example"
                key, wrapped = vault.new_data_key(lead_id)
                leads.append(
                    {
                        "id": lead_id,
                        "email_index": vault.blind_index(email),
                        "email": key.encrypt("email", email),
                        "wrapped_key": wrapped.wrapped,
                        "key_version": wrapped.version,
                        "language": "en",
                        "created_at": START,
                        "last_activity_at": START,
                    }
                )
                attributes.append(
                    {
                        "lead_id": lead_id,
                        "name": "first_name",
                        "value": key.encrypt("attr/first_name", f"Name{n}"),
                        "updated_at": START,
                    }
                )
                for purpose in ("newsletter", "tracking") if n % 3 == 0 else ("newsletter",):
                    consents.append(
                        {
                            "lead_id": lead_id,
                            "purpose": purpose,
                            "status": "granted",
                            "text_id": text_ids[purpose],
                            "requested_at": START,
                            "granted_at": START,
                        }
                    )
                runs.append(
                    {
                        "lead_id": lead_id,
                        "sequence_key": "bench",
                        "version": 1,
                        "active_key": "bench",
                        "status": "active",
                        "step": 0,
                        "due_at": START + spread * (n / leads_count),
                        "entered_at": START,
                    }
                )
            conn.execute(sa.insert(Lead.__table__), leads)
            conn.execute(sa.insert(LeadAttribute.__table__), attributes)
            conn.execute(sa.insert(Consent.__table__), consents)
            conn.execute(sa.insert(Enrollment.__table__), runs)


def _due(app, *, scan: bool):
    from leadvault import clock
    from leadvault.app import runtime
    from leadvault.model_base import UTCDateTime
    from nurture import tick
    from nurture.models import Enrollment

    query = tick.due_query(clock.now(), 5000).with_only_columns(Enrollment.id)
    if not scan or runtime(app).engine.dialect.name != "sqlite":
        return query  # PostgreSQL: the scan is forced by session settings
    # SQLite's unary + keeps a column from using its index: the same query as a scan.
    due_at = sa.type_coerce(sa.literal_column("+nurture_enrollments.due_at"), UTCDateTime())
    return (
        sa.select(Enrollment.id)
        .where(due_at <= clock.now())
        .order_by(due_at, Enrollment.id)
        .limit(5000)
    )


def timed_query(app, *, scan: bool) -> tuple[float, int]:
    """The tick's due query alone; ``scan``: with the index refused (every run read)."""
    from leadvault.app import runtime

    engine = runtime(app).engine
    with engine.connect() as conn:
        if scan and engine.dialect.name == "postgresql":
            conn.execute(sa.text("SET enable_indexscan = off"))
            conn.execute(sa.text("SET enable_bitmapscan = off"))
            conn.execute(sa.text("SET enable_indexonlyscan = off"))
        conn.execute(_due(app, scan=scan)).all()  # warm the page cache first
        started = time.perf_counter()
        found = len(conn.execute(_due(app, scan=scan)).all())
        took = time.perf_counter() - started
        conn.rollback()
    return took, found


def plan(app) -> str:
    from leadvault.app import runtime

    engine = runtime(app).engine
    compiled = _due(app, scan=False).compile(engine, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        rows = conn.execute(sa.text(prefix + str(compiled))).all()
    return " | ".join(str(row[-1]) for row in rows)


def timed_tick(app) -> tuple[float, object]:
    from leadvault.app import runtime
    from leadvault.db import unit_of_work
    from nurture import tick

    with app.app_context():
        started = time.perf_counter()
        with unit_of_work(runtime(app).session_factory) as session:
            result = tick.run(session)
        return time.perf_counter() - started, result


def timed_bare_enqueue(app, count: int) -> float:
    """The outbox alone: ``count`` mails rendered once, queued in one transaction."""
    from leadvault import leads, outbox
    from leadvault.app import runtime
    from leadvault.db import unit_of_work
    from leadvault.mail import MailContent
    from leadvault.models import Lead

    with app.app_context():
        with runtime(app).session_factory() as session:
            ids = list(session.scalars(sa.select(Lead.id).order_by(Lead.id).limit(count)))
        content = MailContent(
            to="x@bench.example", subject="s", text="t" * 600, html="<p>" + "h" * 900 + "</p>"
        )
        started = time.perf_counter()
        with unit_of_work(runtime(app).session_factory) as session:
            for lead_id in ids:
                lead = session.get(Lead, lead_id)
                leads.email_of(session, lead)
                outbox.enqueue_mail(
                    session, content, template="bench", lead=lead, purpose="newsletter"
                )
            session.rollback()
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--spread-minutes", type=int, default=100)
    parser.add_argument("--database-url", help="postgresql://… (an empty database); default SQLite")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary instance.")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lv-bench-nurture-"))
    try:
        settings = {"nurture_quiet_hours": "off"}
        if args.database_url:
            settings["database_url"] = args.database_url
        env = bench_env(tmp / "instance", **settings)
        run_cli(["db", "upgrade"], env)
        from leadvault import clock
        from leadvault.app import create_app

        app = create_app(environ=env)
        started = time.perf_counter()
        seed(app, args.leads, args.spread_minutes)
        seeded = time.perf_counter() - started
        clock.freeze(START + dt.timedelta(minutes=1))
        index_s, due = timed_query(app, scan=False)
        scan_s, scanned = timed_query(app, scan=True)
        if due != scanned:
            raise BenchError(f"index and scan disagree: {due} vs {scanned}")
        query_plan = plan(app)
        tick_s, result = timed_tick(app)
        sent = result.sent  # type: ignore[attr-defined]
        bare_s = timed_bare_enqueue(app, sent)
        backend = "PostgreSQL" if args.database_url else "SQLite"
        print(
            f"nurture tick on {backend}: {args.leads} leads in a sequence, seeded in {seeded:.1f} s"
        )
        print(f"due in one minute: {due} ({args.leads} leads over {args.spread_minutes} minutes)")
        print(f"plan: {query_plan}")
        print(
            f"due query: index {index_s * 1000:.1f} ms, full scan {scan_s * 1000:.1f} ms "
            f"(scan / index = {scan_s / index_s if index_s else float('inf'):.1f}x)"
        )
        print(
            f"tick: {tick_s:.2f} s for {result.due} due, {sent} mails queued "  # type: ignore[attr-defined]
            f"= {sent / tick_s if tick_s else 0:.0f} mails/s"
        )
        print(
            f"outbox alone: {bare_s:.2f} s for {sent} mails = {sent / bare_s if bare_s else 0:.0f} "
            f"mails/s (tick / outbox alone = {tick_s / bare_s if bare_s else 0:.2f}x)"
        )
        verdict = "PASS" if tick_s < TARGET_TICK_S else "MISS"
        print(f"target tick < {TARGET_TICK_S:.0f} s ({backend}): {verdict}")
        if sent != due:
            raise BenchError(f"{due} steps were due but {sent} mails were queued")
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
    raise SystemExit(main())
