"""The worker's cost per lead, in CPU and SQL statements (issue 13), in process.

    python bench/worker_cpu.py [--items 1000] [--batch-size 100] [--database-url URL]
                               [--profile out.pstats] [--profile-mail mail.pstats]

A fresh instance gets a form (first name, newsletter) and ``--items`` submissions
queued as the endpoint queues them (``capture.queueing.accept``: one sealed inbox
row each). Then, each timed by the process's CPU time (``time.process_time``, so
other processes on a shared machine barely move it) with every SQL statement
counted:

1. the inbox, drained by ``Worker.process_inbox`` in batches of ``--batch-size``
   (lead, submission, ledger entries, scoring, the opt-in mail's outbox row);
2. the opt-in mails, built and delivered by ``Worker.deliver_mail`` to an SMTP
   sink on loopback (aiosmtpd, in a process of its own: its CPU is not counted)
   until every mail is sent.

Baseline in the same run: queueing the same submissions (``accept``, one INSERT
each), the cheapest work per item the pipeline does. Prints statements per item,
CPU ms per item and the ratio to the baseline; checks that every submission became
a lead with one sent mail and that the consent ledger verifies. ``--profile``
writes a cProfile of the inbox stage, ``--profile-mail`` one of the mail stage.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import multiprocessing
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import BenchError, Counted, LockUse, bench_env, free_port, measured, run_cli

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]

import sqlalchemy as sa  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402


class _Sink:
    """An SMTP server on loopback (aiosmtpd) in a process of its own, so that its CPU
    is not counted as the worker's; it counts the messages it receives."""

    def __init__(self) -> None:
        self.port = free_port()
        self._count = multiprocessing.Value("i", 0)
        self._stop = multiprocessing.Event()
        ready = multiprocessing.Event()
        self._process = multiprocessing.Process(
            target=_serve, args=(self.port, self._count, ready, self._stop), daemon=True
        )
        self._process.start()
        if not ready.wait(30):
            raise BenchError("the SMTP sink did not start")

    @property
    def count(self) -> int:
        return self._count.value

    def close(self) -> None:
        self._stop.set()
        self._process.join(10)


def _serve(port: int, count: Any, ready: Any, stop: Any) -> None:
    class Handler:
        async def handle_EHLO(  # noqa: N802
            self, _server: Any, session: Any, _envelope: Any, hostname: str, responses: list[str]
        ) -> list[str]:
            # Says PIPELINING as relays do (and as pipeline.py's sinks do), so the mail
            # stage measured is the one production takes: a group of commands a round trip
            # (aiosmtpd reads pipelined input in order; it only does not offer it).
            session.host_name = hostname
            return [*responses[:-1], "250-PIPELINING", responses[-1]]

        async def handle_DATA(self, _server: Any, _session: Any, _envelope: Any) -> str:  # noqa: N802
            with count.get_lock():
                count.value += 1
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


# Each submission's address is this process's next number (its database is fresh):
# never one a lead already has. Six random hex digits, as before, repeated one of the
# ~17 000 addresses of a worker_ab side (16 rounds of 1 000) about once in 120 sides,
# 60 runs; the second submission then joined the first's lead and, its opt-in mail sent
# minutes before (optin_resend_minutes), queued none: "1000 handled, 999 received".
_ADDRESSES = itertools.count()


def queue_submissions(app: Any, form_id: str, count: int) -> None:
    from capture import queueing
    from capture import service as capture_service
    from consent.ledger import RequestMeta
    from leadvault.app import runtime
    from leadvault.db import unit_of_work

    with app.app_context(), unit_of_work(runtime(app).session_factory) as session:
        form = capture_service.get_form(session, form_id)
        assert form is not None
        for n in range(count):
            data = queueing.ValidSubmission(
                email=f"lead{n}.{next(_ADDRESSES):06x}@bench.example",
                profile={"first_name": f"Ada{n}"},
                message=None,
                purposes=["newsletter"],
                source={"page_url": "https://www.example.com/p", "utm_source": "bench"},
            )
            queueing.accept(
                session,
                form,
                data,
                language="de" if n % 4 == 0 else "en",
                meta=RequestMeta("192.0.2.1", "bench"),
            )


def make_form(app: Any) -> str:
    from capture import definition_service, definitions
    from leadvault.app import runtime
    from leadvault.db import unit_of_work

    with app.app_context(), unit_of_work(runtime(app).session_factory) as session:
        return definition_service.create_form(
            session,
            name="Bench",
            kind="newsletter",
            fields=[definitions.FieldSpec("first_name", False)],
            purposes=[definitions.PurposeSpec("newsletter", True)],
            allowed_origins=["https://www.example.com"],
        ).public_id


def report(
    n: int, base: dict[str, float], stored: dict[str, float], mailed: dict[str, float]
) -> None:
    rows = (
        ("queue (baseline: accept)", base),
        ("inbox -> lead + mail row", stored),
        ("mail -> SMTP sink", mailed),
    )
    for name, figures in rows:
        print(
            f"{name:26} {figures['statements'] / n:6.2f} statements/item  "
            f"{figures['cpu'] * 1000 / n:6.3f} CPU ms/item  "
            f"({n / figures['wall'] if figures['wall'] else 0:,.0f} items/s wall)"
        )
    if "lock_cpu" in stored:
        print("holding SQLite's write lock (what capture and the worker wait for each other on):")
        for name, figures in rows:
            print(
                f"  {name:24} {figures['lock_cpu'] * 1000 / n:6.3f} CPU ms/item  "
                f"{figures['lock_wall'] * 1000 / n:6.3f} wall ms/item  "
                f"{figures['holds'] / n:6.3f} holds/item  "
                f"({figures['lock_cpu'] / figures['cpu'] if figures['cpu'] else 0:.0%} of its CPU)"
            )
    whole = stored["cpu"] + mailed["cpu"]
    print(
        f"end to end: {whole * 1000 / n:.3f} CPU ms/lead = "
        f"{whole / base['cpu'] if base['cpu'] else 0:.1f}x the baseline's"
    )


def until_empty(step: Callable[[], int]) -> int:
    total = 0
    while (done := step()) > 0:
        total += done
    return total


WARM = 20


def tally(app: Any) -> dict[str, int]:
    """The leads, and the outbox's rows by status: what a shortfall is told by (a mail
    not sent is pending for a retry, sending under a lease, or failed; no mail queued
    for a submission shows as one lead or one row fewer)."""
    from leadvault.app import runtime
    from leadvault.models import Lead, OutboxMessage

    with runtime(app).session_factory() as session:
        counts = {"leads": session.scalar(sa.select(sa.func.count()).select_from(Lead)) or 0}
        by_status = sa.select(OutboxMessage.status, sa.func.count()).group_by(OutboxMessage.status)
        for status, count in session.execute(by_status):
            counts[status] = count
    return counts


def unsent(counts: dict[str, int]) -> str:
    """The outbox rows of ``tally`` not sent, by status, for a failure's message."""
    from leadvault.models import OutboxStatus

    left = {k: v for k, v in counts.items() if k not in ("leads", OutboxStatus.SENT)}
    return ", ".join(f"{v} {k}" for k, v in sorted(left.items()) if v) or "none"


def check(app: Any, n: int, handled: int, received: int) -> None:
    """Every submission a lead with one sent mail, received once; the ledger intact."""
    from consent import ledger
    from leadvault.app import runtime
    from leadvault.models import OutboxStatus

    counts = tally(app)
    leads = counts["leads"] - WARM
    sent = counts.get(OutboxStatus.SENT, 0) - WARM
    with runtime(app).session_factory() as session:
        verdict = ledger.verify(session)
    if not handled == leads == sent == received == n:
        raise BenchError(
            f"{n} queued, {handled} handled, {leads} leads, {sent} sent, {received} received; "
            f"outbox rows not sent: {unsent(counts)}"
        )
    if not verdict.ok:
        raise BenchError(verdict.describe("consent ledger"))


def measure(app: Any, args: argparse.Namespace, sink: _Sink) -> None:
    from leadvault.app import runtime
    from leadvault.worker import Worker

    form_id = make_form(app)
    counter = Counted(runtime(app).engine)
    # SQLite: what each stage does holding the one write lock, which capture waits for.
    locks = None if args.database_url else LockUse()
    queue_submissions(app, form_id, WARM)  # warm: imports, templates, caches
    worker = Worker(app, batch_size=args.batch_size)
    until_empty(worker.process_inbox)
    until_empty(worker.deliver_mail)
    warm_sent = sink.count
    # As `leadvault worker` does once it has its app: start-up's objects out of the
    # collector's full passes (else one lands in a stage or not, moving it by ~8 %).
    gc.collect()
    gc.freeze()

    base: dict[str, float] = {}
    with measured(counter, base, locks):
        queue_submissions(app, form_id, args.items)
    stored: dict[str, float] = {}
    counter.kinds.clear()
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    with measured(counter, stored, locks):
        if profiler:
            profiler.enable()
        handled = until_empty(worker.process_inbox)
        if profiler:
            profiler.disable()
    if profiler:
        profiler.dump_stats(args.profile)
    inbox_kinds = dict(counter.kinds)
    mailed: dict[str, float] = {}
    mail_profiler = cProfile.Profile(time.process_time) if args.profile_mail else None
    with measured(counter, mailed, locks):
        if mail_profiler:
            mail_profiler.enable()
        until_empty(worker.deliver_mail)
        if mail_profiler:
            mail_profiler.disable()
    if mail_profiler:
        mail_profiler.dump_stats(args.profile_mail)
    worker.close()
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"worker CPU per lead on {backend}: {args.items} submissions, batches of {args.batch_size}"
    )
    report(args.items, base, stored, mailed)
    if args.statements:
        print("inbox stage statements per item, by kind:")
        for kind, count in sorted(inbox_kinds.items(), key=lambda kv: -kv[1]):
            print(f"  {count / args.items:7.3f}  {kind}")
    check(app, args.items, handled, sink.count - warm_sent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--database-url", help="postgresql://… (an empty database); default SQLite")
    parser.add_argument("--profile", help="write a cProfile of the inbox stage to this file")
    parser.add_argument(
        "--statements", action="store_true", help="list the inbox stage's statements by kind"
    )
    parser.add_argument("--profile-mail", help="write a cProfile of the mail stage to this file")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lv-bench-worker-"))
    sink = _Sink()
    try:
        settings = {
            "smtp_url": f"smtp://127.0.0.1:{sink.port}",
            "worker_batch_size": str(args.batch_size),
        }
        if args.database_url:
            settings["database_url"] = args.database_url
        env = bench_env(tmp / "instance", **settings)
        run_cli(["db", "upgrade"], env)
        from leadvault import inbox
        from leadvault.app import create_app

        # One batch is one batch here: a slow shared machine must not split it.
        inbox.SQLITE_BATCH_SECONDS = 3600.0
        measure(create_app(environ=env), args, sink)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
