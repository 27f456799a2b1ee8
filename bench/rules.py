"""Rules dry run against the activation it previews, measured in the same run.

    python bench/rules.py [--leads 100000] [--events-per-lead 10] [--limit 20000]

``--leads`` leads with ``--events-per-lead`` events each are written straight into
a throw-away SQLite database (real data keys, sealed properties; bench/events.py's
seeding). A candidate rules file (the example with a lower MQL threshold) is then
1. dry-run over every lead (``scoring.rulesets.dry_run``: replays, writes nothing),
2. dry-run bounded to ``--limit`` leads (what the console and the API do by default),
3. activated the way ``rulesets.activate`` re-grades (every lead recomputed and
   written, qualified ones promoted) inside a transaction rolled back afterwards:
   the baseline.
Prints each time, leads/s and the ratios to the baseline; exits 1 when the dry
run's counts differ from what the activation then did (grade changes, new MQLs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from events import seed_recompute  # also drops bench/ from sys.path (capture.py shadows)
from harness import bench_env, run_cli


def measure(instance: Path, leads: int, limit: int) -> dict[str, float]:
    os.environ.update(bench_env(instance))
    import sqlalchemy as sa

    from leadvault.app import create_app, runtime
    from scoring import rules, rulesets
    from scoring.models import LeadScore, StageChange

    candidate_text = rules.example_text().replace("mql_score = 35", "mql_score = 10", 1)
    candidate = rules.parse(candidate_text, source="bench", version=1)
    app = create_app()
    factory = runtime(app).session_factory
    figures: dict[str, float] = {}
    with app.app_context():
        with factory() as session:
            started = time.monotonic()
            full = rulesets.dry_run(session, candidate_text, limit=leads)
            figures["dry_s"] = time.monotonic() - started
            started = time.monotonic()
            bounded = rulesets.dry_run(session, candidate_text, limit=limit)
            figures["bounded_s"] = time.monotonic() - started
            session.rollback()
        with factory() as session:
            grades_before = {
                row.lead_id: row.fit_grade
                for row in session.execute(sa.select(LeadScore.lead_id, LeadScore.fit_grade))
            }
            started = time.monotonic()
            rulesets.regrade(session, candidate)
            session.flush()
            figures["activate_s"] = time.monotonic() - started
            grades_after = {
                row.lead_id: row.fit_grade
                for row in session.execute(sa.select(LeadScore.lead_id, LeadScore.fit_grade))
            }
            promoted = session.scalar(
                sa.select(sa.func.count())
                .select_from(StageChange)
                .where(StageChange.to_stage == "mql")
            )
            session.rollback()
    changed = sum(1 for k, g in grades_after.items() if grades_before.get(k, "D") != g)
    figures.update(
        checked=full.checked,
        bounded_checked=bounded.checked,
        dry_promotions=full.promotions,
        dry_grades=full.grade_changes,
        promoted=promoted or 0,
        regraded=changed,
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--events-per-lead", type=int, default=10)
    parser.add_argument("--limit", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lv-bench-rules-"))
    try:
        instance = tmp / "rules"
        run_cli(["db", "upgrade"], bench_env(instance))
        started = time.monotonic()
        seed_recompute(instance, args.leads, args.events_per_lead)
        seeded = time.monotonic() - started
        f = measure(instance, args.leads, min(args.limit, args.leads))
        print(
            f"\n{os.cpu_count()} CPUs, SQLite, {args.leads} leads x {args.events_per_lead} "
            f"events (seeding took {seeded:.1f} s)"
        )
        rows = (
            ("activation (baseline)", f["activate_s"], args.leads),
            ("dry run, every lead", f["dry_s"], f["checked"]),
            (f"dry run, first {f['bounded_checked']:.0f}", f["bounded_s"], f["bounded_checked"]),
        )
        for name, seconds, count in rows:
            ratio = seconds / f["activate_s"] if f["activate_s"] else 0.0
            print(
                f"{name:28} {seconds:8.2f} s  {count / seconds if seconds else 0:9.0f} leads/s"
                f"   ratio to activation {ratio:5.2f}"
            )
        print(
            f"dry run: {f['dry_promotions']:.0f} would become MQL, {f['dry_grades']:.0f} change "
            f"grade; activation: {f['promoted']:.0f} became MQL, {f['regraded']:.0f} changed grade"
        )
        if (f["dry_promotions"], f["dry_grades"]) != (f["promoted"], f["regraded"]):
            print("\nDRY RUN DISAGREES WITH THE ACTIVATION", file=sys.stderr)
            return 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
