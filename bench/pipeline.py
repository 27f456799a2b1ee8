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
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cpu_use import Burner, Groups, pids_of
from drain import (
    DRAIN_TIMEOUT,
    Counter,
    Drain,
    cpu_groups,
    drain_alone,
    pending,
    print_capacity,
    run_drain,
    wait_for,
)
from harness import BIN_DIR, BenchError, Server
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
from smtp_sink import SINKS

# The `capture` package, not a file of this folder, must be found by imports below.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]

MAX_FAILED_FRACTION = 0.01
# Targets of issue 13, as % (of bare req/s; of capture alone).
TARGET_E2E = {"sqlite": 10.0, "postgresql": 8.0}
TARGET_CAPTURE_WITH_WORKER = 80.0
TARGET_PG_CAPTURE = 20.0


class Workers:
    """``n`` `leadvault worker` processes, each in its own process group."""

    def __init__(
        self, n: int, env: dict[str, str], batch_size: int, log_dir: Path, nice: int | None = None
    ) -> None:
        if nice is not None:
            env = {**env, "LEADVAULT_WORKER_NICE": str(nice)}
        self._logs = [(log_dir / f"worker-{i}.log").open("wb") for i in range(n)]
        self.procs = [
            subprocess.Popen(
                [str(BIN_DIR / "leadvault"), "worker", "--batch-size", str(batch_size)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for log in self._logs
        ]

    def check(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise BenchError(f"a worker exited ({proc.returncode}); see worker-*.log")

    def signal(self, signum: int) -> None:
        for proc in self.procs:
            proc.send_signal(signum)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        for log in self._logs:
            log.close()


@dataclasses.dataclass
class Pipeline:
    load: WrkResult
    mailed_during_load: int
    backlog_at_end: int
    mail_backlog_at_end: int
    drain_seconds: float
    backlog_after: int
    leads: int
    submissions: int
    mails: int
    load_cpu: Groups
    drain: Drain | None = None

    @property
    def end_to_end(self) -> float:
        return self.mailed_during_load / self.load.seconds if self.load.seconds else 0.0


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


def percent(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else 0.0


def report(
    args: argparse.Namespace,
    dialect: str,
    pipe: Pipeline,
    alone: WrkResult,
    bare: WrkResult,
    *,
    alone_cpu: Groups,
    burned: tuple[WrkResult, Groups] | None = None,
) -> list[str]:
    print(
        f"\n{dialect}, POST /f/<id> JSON, gunicorn -w {args.web_workers} -k sync, "
        f"wrk -t{args.wrk_threads} -c{args.concurrency} -d{args.duration}s, "
        f"{args.workers} leadvault worker(s) --batch-size {args.batch_size}"
        f"{'' if args.worker_nice is None else f' nice {args.worker_nice}'}, "
        f"{os.cpu_count()} CPUs, load average before {args.load_before}"
    )
    print(f"{'':22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'requests':>10}{'failed':>8}")
    runs = (("capture + worker", pipe.load), ("capture alone", alone), ("bare flask", bare))
    for name, r in runs:
        failed = r.non_2xx + r.socket_errors
        print(
            f"{name:22}{r.rps:>10.1f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}{r.requests:>10}{failed:>8}"
        )
    e2e = pipe.end_to_end
    print(f"end-to-end            {e2e:10.1f} /s  (leads with their opt-in mail at the sink)")
    print(f"inbox backlog         {pipe.backlog_at_end} at the end of the load, ", end="")
    print(f"{pipe.backlog_after} after draining ({pipe.drain_seconds:.1f} s)")
    print(f"mail backlog          {pipe.mail_backlog_at_end} at the end of the load")
    print(f"stored                {pipe.leads} leads, {pipe.submissions} submissions, ", end="")
    print(f"{pipe.mails} mails received")
    ratios = {
        "end-to-end / bare": percent(e2e, bare.rps),
        "capture+worker / bare": percent(pipe.load.rps, bare.rps),
        "capture alone / bare": percent(alone.rps, bare.rps),
        "capture+worker / alone": percent(pipe.load.rps, alone.rps),
        "end-to-end / accepted": percent(e2e, pipe.load.rps),
    }
    for name, value in ratios.items():
        print(f"ratio {name:24}{value:7.1f} %")
    targets = [
        ("end-to-end / bare", ratios["end-to-end / bare"], TARGET_E2E[dialect]),
        ("capture+worker / alone", ratios["capture+worker / alone"], TARGET_CAPTURE_WITH_WORKER),
    ]
    if dialect == "postgresql":
        targets.append(("capture alone / bare", ratios["capture alone / bare"], TARGET_PG_CAPTURE))
    print("targets")
    for name, value, target in targets:
        verdict = "PASS" if value >= target else "MISS"
        print(f"  {name:24} >= {target:4.0f} %: {value:6.1f} %  {verdict}")
    report_capacity(pipe, alone, bare, alone_cpu, burned)

    problems = []
    checked = [("capture + worker", pipe.load), ("capture alone", alone), ("bare", bare)]
    if burned is not None:
        checked.append(("capture + burner", burned[0]))
    for name, r in checked:
        if r.failed_fraction > MAX_FAILED_FRACTION:
            problems.append(f"{name}: {r.non_2xx + r.socket_errors} of {r.requests} failed")
    if pipe.backlog_after or pipe.leads != pipe.submissions:
        problems.append(f"{pipe.backlog_after} left in the inbox, {pipe.leads} leads")
    if pipe.mails != pipe.leads:
        problems.append(f"{pipe.mails} mails received for {pipe.leads} leads")
    return problems


def report_capacity(
    pipe: Pipeline,
    alone: WrkResult,
    bare: WrkResult,
    alone_cpu: Groups,
    burned: tuple[WrkResult, Groups] | None,
) -> None:
    """The workers' rate without capture beside them (--drain), capture beside a burner
    (--burn), and who used the CPU in each phase."""
    phases = {"capture + worker": (pipe.load, pipe.load_cpu), "capture alone": (alone, alone_cpu)}
    if burned is not None:
        phases["capture + burner"] = burned
    print_capacity(pipe.drain, phases, bare_rps=bare.rps)


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


def invalid(problems: list[str]) -> int:
    if problems:
        print("\nBENCH INVALID:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
