"""`leadvault import` throughput, in process: lines/s and SQL statements per line.

    python bench/imports.py [--lines 10000] [--database-url URL] [--profile out.pstats]

A fresh instance (SQLite, or with ``--database-url postgresql://…`` a fresh database on
that server, dropped afterwards) imports a generated CSV file of ``--lines`` contacts
through ``export.imports.run``, as ``leadvault import`` does: one in a hundred lines is
bad (five kinds of problem), two in three good ones carry proof of consent (granted
with a ledger entry), the others wait for a re-permission mail. Stages, each timed by
the process's CPU time (``time.process_time``: other processes on a shared machine
barely move it) and by the wall clock, with every SQL statement counted:

1. baseline: reading and checking the same lines without a database
   (``import_mapping.read`` + ``import_contact.contact``), the work no import can skip;
2. a dry run (reads only, rolled back);
3. the real run (every good line a new lead);
4. the same file again (every good line merges into its lead).

Prints lines/s, CPU ms and statements per line, and the ratio of each stage to the
baseline; exits 1 when a stage's counts are not the expected ones or the consent
ledger does not verify. ``--profile`` writes a cProfile of the real run.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import datetime as dt
import io
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness import BenchError, Counted, bench_env, measured, run_cli
from load import bench_database

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]


HEADER = [
    "email",
    "first_name",
    "last_name",
    "company",
    "country",
    "optin_at",
    "optin_source",
    "optin_text",
]
PROOF_TEXT = "Yes, send me the monthly newsletter. I can unsubscribe at any time."
BAD = [
    lambda i: [f"broken{i}.example.org", "Bad", "", "", "", "", "", ""],
    lambda i: [f"link{i}@example.org", "www.spam.example", "", "", "", "", "", ""],
    lambda i: [f"date{i}@example.org", "Dora", "", "", "", "last tuesday", "web", PROOF_TEXT],
    lambda i: [f"land{i}@example.org", "Lan", "", "", "Atlantis", "", "", ""],
    lambda i: [f"wide{i}@example.org", "W", "", "", "", "", "", "", "extra"],
]


def make_file(count: int) -> tuple[bytes, int, int, int]:
    """The CSV file; its good lines with proof, without proof, and its bad lines."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    proof = plain = bad = 0
    for i in range(count):
        if i % 100 == 99:
            writer.writerow(BAD[(i // 100) % len(BAD)](i))
            bad += 1
        elif i % 3:
            when = (dt.datetime(2021, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=i)).isoformat()
            email = f"c{i}@firma{i % 97}.example"
            writer.writerow(
                [email, "Jürgen", "Müller", "Bäckerei", "DE", when, "old form", PROOF_TEXT]
            )
            proof += 1
        else:
            writer.writerow(
                [f"c{i}@firma{i % 97}.example", "Ana", "Smith", "", "Germany"] + [""] * 3
            )
            plain += 1
    return buffer.getvalue().encode(), proof, plain, bad


def parse_only(data: bytes) -> int:
    from export import import_contact, import_mapping
    from export.import_contact import LineProblem

    header, lines = import_mapping.read(io.BytesIO(data))
    columns = import_mapping.plan(header, overrides={})
    zone = dt.UTC
    now = dt.datetime.now(dt.UTC)
    good = 0
    for raw in lines:
        if raw.values is None:
            continue
        try:
            import_contact.contact(raw.values, columns, zone=zone, now=now)  # type: ignore[arg-type]
        except LineProblem:
            continue
        good += 1
    return good


def run_import(app: Any, data: bytes, *, dry_run: bool) -> Any:
    from export import imports
    from leadvault.app import runtime

    with app.app_context():
        return imports.run(
            runtime(app).session_factory,
            io.BytesIO(data),
            purposes=["newsletter"],
            actor="cli:bench",
            dry_run=dry_run,
        )


def expect(name: str, got: tuple[int, ...], wanted: tuple[int, ...]) -> None:
    if got != wanted:
        raise BenchError(f"{name}: {got}, expected {wanted}")


def measure(app: Any, args: argparse.Namespace) -> None:
    from consent import ledger
    from leadvault.app import runtime

    n = args.lines
    data, proof, plain, bad = make_file(n)
    good = proof + plain
    run_import(app, make_file(50)[0].replace(b"@firma", b"@warm"), dry_run=False)  # warm up
    counter = Counted(runtime(app).engine)
    stages: list[tuple[str, dict[str, float]]] = []

    base: dict[str, float] = {}
    with measured(None, base):
        expect("baseline (good lines)", (parse_only(data),), (good,))
    stages.append(("baseline: read + check", base))

    dry: dict[str, float] = {}
    with measured(counter, dry):
        report = run_import(app, data, dry_run=True)
    expect("dry run", (report.created, report.merged, report.refused), (good, 0, bad))
    stages.append(("dry run", dry))

    real: dict[str, float] = {}
    counter.kinds.clear()
    profiler = cProfile.Profile() if args.profile else None
    with measured(counter, real):
        if profiler:
            profiler.enable()
        report = run_import(app, data, dry_run=False)
        if profiler:
            profiler.disable()
    if profiler:
        profiler.dump_stats(args.profile)
    kinds = dict(counter.kinds)
    expect("real run", (report.created, report.merged, report.refused), (good, 0, bad))
    expect("consent", (report.consent_imported, report.repermission), (proof, plain))
    stages.append(("real run (new leads)", real))

    again: dict[str, float] = {}
    with measured(counter, again):
        report = run_import(app, data, dry_run=False)
    expect("same file again", (report.created, report.merged, report.refused), (0, good, bad))
    stages.append(("same file again (merged)", again))

    with runtime(app).session_factory() as session:
        verdict = ledger.verify(session)
    if not verdict.ok:
        raise BenchError(verdict.describe("consent ledger"))

    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"import of {n} lines on {backend} ({proof} with proof, {plain} without, {bad} bad)")
    for name, figures in stages:
        ratio = figures["cpu"] / base["cpu"] if base["cpu"] else 0.0
        print(
            f"{name:26} {n / figures['wall']:8,.0f} lines/s wall  "
            f"{n / figures['cpu']:8,.0f} lines/s CPU  "
            f"{figures['cpu'] * 1000 / n:6.3f} CPU ms/line  "
            f"{figures['statements'] / n:6.2f} statements/line  {ratio:5.1f}x baseline CPU"
        )
    if args.statements:
        print("real run statements per line, by kind:")
        for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]):
            print(f"  {count / n:7.3f}  {kind}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--database-url", help="postgresql://… (a fresh database is made on it)")
    parser.add_argument("--profile", help="write a cProfile of the real run to this file")
    parser.add_argument(
        "--statements", action="store_true", help="list the real run's statements by kind"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lv-bench-import-"))
    try:
        with bench_database(args.database_url, tmp / "instance") as url:
            env = bench_env(tmp / "instance", database_url=url)
            run_cli(["db", "upgrade"], env)
            from leadvault.app import create_app, runtime

            app = create_app(environ=env)
            try:
                measure(app, args)
            finally:
                runtime(app).engine.dispose()
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
