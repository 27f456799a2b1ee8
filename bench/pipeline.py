"""End to end: submissions/s accepted, and leads/s stored with their opt-in mail delivered.

    python bench/pipeline.py [--duration 10] [--workers 1] [--database-url postgresql://…]

In one run, under the same gunicorn settings and the same wrk load as
bench/capture.py (every request a new address with a render token of its own):

1. Leadvault with ``--workers`` `leadvault worker` processes running and an SMTP
   sink on loopback that counts the messages it receives: accepted
   submissions/s, p50/p99, and end-to-end/s (opt-in mails received by the sink
   during the load, each one a lead stored with its ledger entries); the inbox
   backlog at the end of the load, then the time to drain it and the backlog after;
2. the same Leadvault without a worker (capture alone);
3. a bare Flask app (bench/bare_app.py).

Between 1 and 2, the drain phase (``--drain`` K, 0 skips it; ``--drain-only`` runs
nothing else, bench/drain.py): the idle workers stopped, the same load queues K
submissions, then the workers go on and are timed until each has its mail at the
sink: drain leads/s, the workers' own rate. ``--burn`` adds capture alone beside a
burner taking the cores the workers and the sink took in 1 (their CPU, without
their transactions). Every phase prints its CPU by process group.

Prints the ratios the targets are stated in (issue 13): end-to-end/s and capture
as % of bare, capture with the worker as % of capture alone. Exits 1 when a run
has more than 1 % failed requests, or when after draining a submission is
missing, unmailed, or mailed twice.

Uses the gunicorn and leadvault executables next to sys.executable.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from cpu_use import Burner, Groups, pids_of
from drain import (
    DRAIN_TIMEOUT,
    Counter,
    cpu_groups,
    drain_alone,
    pending,
    run_drain,
    wait_for,
)
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
    missing_tools,
    render_tokens,
    run_bare,
    run_wrk,
    warmed,
    write_script,
)
from pipeline_report import Pipeline, invalid, report
from smtp_sink import SINKS
from workers import Workers

# The `capture` package, not a file of this folder, must be found by imports below.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]


def serve(args: argparse.Namespace, tmp: Path, name: str, app: str, env: dict[str, str]) -> Server:
    """Every server starts here, so all run under the same gunicorn settings."""
    extra = ["--chdir", str(BENCH_DIR)] if name == "bare" else None
    return Server(name, app, env, workers=args.web_workers, log_dir=tmp, extra=extra)


def run_pipeline(
    args: argparse.Namespace,
    tmp: Path,
    *,
    env: dict[str, str],
    url: str,
    form_id: str,
    tokens: list[str],
    drain_tokens: list[str],
    sink: Counter,
) -> Pipeline:
    path = f"/f/{form_id}"
    script = write_script(tmp, tokens, args.wrk_threads)
    workers = Workers(args.workers, env, args.batch_size, tmp, args.worker_nice)
    try:
        server = serve(args, tmp, "leadvault", "leadvault.wsgi:app", env)
        with warmed(server, path, tokens, args.warmup):
            # Workers up and mailing before the clock starts.
            wait_for(lambda: sink.count >= args.warmup, 120, "the warm-up mails", workers.check)
            mailed_before = sink.count
            load_cpu = cpu_groups(url, server, workers).start()
            result = run_wrk(server, path, script, args)
            load_cpu.stop()
            mailed_during = sink.count - mailed_before
            backlog = pending(url)
            # Mails queued by the inbox stage and not yet sent: which stage is behind.
            mail_backlog = count_rows(url, "outbox", "status IN ('pending', 'sending')")
            workers.check()

            def drained() -> bool:
                return pending(url) == 0 and sink.count >= count_rows(url, "leads")

            drain = wait_for(drained, DRAIN_TIMEOUT, "draining the inbox", workers.check)
            time.sleep(1.0)  # a duplicate would show now
            backlog_after = pending(url)
            capacity = None
            if args.drain:
                capacity = run_drain(
                    args,
                    tmp,
                    url=url,
                    server=server,
                    path=path,
                    workers=workers,
                    sink=sink,
                    tokens=drain_tokens,
                )
                time.sleep(1.0)
            return Pipeline(
                load=result,
                mailed_during_load=mailed_during,
                backlog_at_end=backlog,
                mail_backlog_at_end=mail_backlog,
                drain_seconds=drain,
                backlog_after=backlog_after + (pending(url) if capacity else 0),
                leads=count_rows(url, "leads"),
                submissions=count_rows(url, "submissions"),
                mails=sink.count,
                load_cpu=load_cpu,
                drain=capacity,
            )
    finally:
        workers.close()


def run_capture_alone(
    args: argparse.Namespace,
    tmp: Path,
    env: dict[str, str],
    form_id: str,
    tokens: list[str],
    *,
    url: str,
    burn: float = 0.0,
) -> tuple[WrkResult, Groups]:
    """Capture without a worker; with ``burn`` > 0 beside a burner that takes that many
    cores (what the workers took during the load): capture's loss to their CPU alone,
    without their transactions."""
    path = f"/f/{form_id}"
    script = write_script(tmp, tokens, args.wrk_threads)
    server = serve(args, tmp, "leadvault", "leadvault.wsgi:app", env)
    with warmed(server, path, tokens, args.warmup):
        burner = Burner(burn) if burn else None
        try:
            cpu = cpu_groups(url, server)
            if burner is not None:
                cpu.groups = {"burner": lambda: pids_of(burner.procs), **cpu.groups}
            time.sleep(0.5 if burner else 0.0)  # the burner at its pace
            cpu.start()
            result = run_wrk(server, path, script, args)
            return result, cpu.stop()
        finally:
            if burner is not None:
                burner.close()


def run_bare_app(args: argparse.Namespace, tmp: Path) -> WrkResult:
    server = serve(args, tmp, "bare", "bare_app:app", bare_env())
    return run_bare(server, tmp / "submit.lua", args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser)
    parser.add_argument("--workers", type=int, default=1, help="leadvault worker processes")
    parser.add_argument("--batch-size", type=int, default=100, help="the workers' batch size")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=None,
        choices=range(20),
        metavar="0-19",
        help="LEADVAULT_WORKER_NICE for the workers (default: the setting's default)",
    )
    parser.add_argument(
        "--drain",
        type=int,
        default=5000,
        help="submissions queued with the workers stopped, then timed to drain (0: skip)",
    )
    parser.add_argument(
        "--drain-only",
        action="store_true",
        help="only the drain phase (no load beside the workers, no capture alone, no bare app)",
    )
    parser.add_argument(
        "--sink",
        choices=sorted(SINKS),
        default="lean",
        help="the SMTP sink on loopback (bench/smtp_sink.py): lean (default), or aiosmtpd, "
        "which takes 4-5x the worker's CPU per mail from the same cores",
    )
    parser.add_argument(
        "--burn",
        action="store_true",
        help="also capture beside a CPU burner taking what the workers and the sink took "
        "during the load",
    )
    args = parser.parse_args(argv)
    args.concurrency = max(args.concurrency, args.wrk_threads)
    args.load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])

    if missing_tools():
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="leadvault-pipeline-"))
    instance = tmp / "instance"
    sink = SINKS[args.sink]()
    try:
        with bench_database(args.database_url, instance) as url:
            smtp_url = f"smtp://127.0.0.1:{sink.port}"
            env, form_id = bench_instance(instance, url, smtp_url=smtp_url)
            per_run = args.warmup + TOKENS_PER_SECOND * args.duration
            # The fill's threads stop at their share; connections in flight add a few.
            fill = args.drain + 4 * args.concurrency if args.drain else 0
            if args.drain_only:
                tokens = render_tokens(env, form_id, args.warmup + fill)
                problems = drain_alone(
                    args,
                    url=url,
                    path=f"/f/{form_id}",
                    workers=Workers(args.workers, env, args.batch_size, tmp, args.worker_nice),
                    serve=lambda: serve(args, tmp, "leadvault", "leadvault.wsgi:app", env),
                    sink=sink,
                    tokens=tokens,
                    tmp=tmp,
                )
                return invalid(problems)
            runs = 3 if args.burn else 2
            tokens = render_tokens(env, form_id, runs * per_run + fill)
            pipe = run_pipeline(
                args,
                tmp,
                env=env,
                url=url,
                form_id=form_id,
                tokens=tokens[:per_run],
                drain_tokens=tokens[runs * per_run :],
                sink=sink,
            )
            alone, alone_cpu = run_capture_alone(
                args, tmp, env, form_id, tokens[per_run : 2 * per_run], url=url
            )
            burned = None
            if args.burn:
                # The sink (a relay elsewhere in production) draws on the same two cores.
                burn = pipe.load_cpu.cores("worker") + pipe.load_cpu.cores("sink")
                burned = run_capture_alone(
                    args, tmp, env, form_id, tokens[2 * per_run : 3 * per_run], url=url, burn=burn
                )
        bare = run_bare_app(args, tmp)
        dialect = "postgresql" if args.database_url else "sqlite"
        problems = report(args, dialect, pipe, alone, bare, alone_cpu=alone_cpu, burned=burned)
    except BenchError as exc:
        print(f"\nBENCH FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        sink.close()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return invalid(problems)


if __name__ == "__main__":
    sys.exit(main())
