"""The drain phase of bench/pipeline.py: the workers' capacity without capture beside
them, and who used the CPU in a phase."""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from cpu_use import Groups, children_of, named_pids, pids_of
from harness import BenchError, Server
from load import WRK, WrkResult, count_rows, warmed, write_script

DRAIN_TIMEOUT = 900.0


class Workers(Protocol):
    procs: list[subprocess.Popen[bytes]]

    def signal(self, signum: int) -> None: ...

    def check(self) -> None: ...

    def close(self) -> None: ...


class Counter(Protocol):
    count: int


@dataclasses.dataclass
class Drain:
    """The workers' capacity without capture beside them: ``filled`` submissions queued
    with the workers stopped, then stored and mailed by them in ``seconds``."""

    filled: int
    seconds: float
    cpu: Groups

    @property
    def rate(self) -> float:
        return self.filled / self.seconds if self.seconds else 0.0

    def describe(self, more: str = "") -> str:
        return (
            f"drain                 {self.rate:10.1f} leads/s  ({self.filled} queued with the "
            f"worker(s) stopped, stored and mailed in {self.seconds:.2f} s{more})"
        )


def wait_for(condition: Any, timeout: float, what: str, check: Any = None) -> float:
    started = time.perf_counter()
    while not condition():
        if check is not None:
            check()
        if time.perf_counter() - started > timeout:
            raise BenchError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.1)
    return time.perf_counter() - started


def pending(url: str) -> int:
    return count_rows(url, "inbox", "status = 'pending'")


def cpu_groups(url: str, server: Server, workers: Workers | None = None) -> Groups:
    """CPU of the worker processes, the web workers, PostgreSQL's processes (every one on
    this machine) and this process (the SMTP sink's thread: the rest of it waits)."""
    groups: dict[str, object] = {}
    if workers is not None:
        groups["worker"] = lambda: pids_of(workers.procs)
    groups["web"] = lambda: children_of(server.proc.pid)
    if not url.startswith("sqlite"):
        groups["postgres"] = lambda: named_pids("postgres")
    groups["sink"] = lambda: [os.getpid()]
    return Groups(groups)


# Added to the wrk script of the fill: each thread stops after its share of answers.
FILL_STOP = """
local answered = 0
function response(status, headers, body)
  answered = answered + 1
  if answered >= __QUOTA__ then wrk.thread:stop() end
end
"""


def run_drain(
    args: argparse.Namespace,
    tmp: Path,
    *,
    url: str,
    server: Server,
    path: str,
    workers: Workers,
    sink: Counter,
    tokens: list[str],
) -> Drain:
    """With the (idle) workers stopped by SIGSTOP, the same wrk load queues
    ``args.drain`` submissions; then SIGCONT, and the clock runs until the sink has
    received a mail for each: the workers' own rate, not bounded by what capture
    accepts beside them. (Started afresh, a worker would count its start-up.)"""
    pause_idle(workers, url)
    try:
        script = write_script(tmp, tokens, args.wrk_threads)
        quota = -(-args.drain // args.wrk_threads)
        script.write_text(script.read_text() + FILL_STOP.replace("__QUOTA__", str(quota)))
        fill(server, path, script, args, url=url, count=quota * args.wrk_threads)
        filled = pending(url)
    except BaseException:
        workers.signal(signal.SIGCONT)
        raise
    mailed_before = sink.count
    cpu = cpu_groups(url, server, workers).start()
    workers.signal(signal.SIGCONT)
    seconds = wait_for(
        lambda: sink.count - mailed_before >= filled, DRAIN_TIMEOUT, "the drain", workers.check
    )
    cpu.stop()
    return Drain(filled=filled, seconds=seconds, cpu=cpu)


def drain_alone(
    args: argparse.Namespace,
    *,
    url: str,
    path: str,
    workers: Workers,
    serve: Callable[[], Server],
    sink: Counter,
    tokens: list[str],
    tmp: Path,
) -> list[str]:
    """--drain-only: the workers (closed here) warmed up with the server ``serve`` starts,
    then the drain phase alone, printed; returns what makes the run invalid."""
    try:
        server = serve()
        with warmed(server, path, tokens, args.warmup):
            wait_for(lambda: sink.count >= args.warmup, 120, "the warm-up mails", workers.check)
            time.sleep(1.0)  # idle
            drain = run_drain(
                args,
                tmp,
                url=url,
                server=server,
                path=path,
                workers=workers,
                sink=sink,
                tokens=tokens[args.warmup :],
            )
            time.sleep(1.0)  # a duplicate would show now
    finally:
        workers.close()
    leads, submissions, left = (
        count_rows(url, "leads"),
        count_rows(url, "submissions"),
        pending(url),
    )
    print(
        f"\n{'postgresql' if args.database_url else 'sqlite'}, drain only, "
        f"{args.workers} leadvault worker(s) --batch-size {args.batch_size}, "
        f"{os.cpu_count()} CPUs, load average before {args.load_before}"
    )
    print(drain.describe())
    print(f"CPU (cores)           {drain.cpu.line()}")
    if left or leads != submissions or sink.count != leads:
        return [f"{left} left, {leads} leads, {submissions} submissions, {sink.count} mails"]
    return []


def fill(
    server: Server, path: str, script: Path, args: argparse.Namespace, *, url: str, count: int
) -> None:
    """wrk with ``script`` until ``count`` submissions are in the inbox (its threads stop
    at their share; wrk itself runs its duration unless interrupted)."""
    cmd = [WRK, f"-t{args.wrk_threads}", f"-c{args.concurrency}", "-d300s"]
    wrk = subprocess.Popen(
        [*cmd, "--timeout", "10s", "-s", str(script), server.base + path],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: pending(url) >= count, 300, "the fill", wrk.poll)
    finally:
        wrk.send_signal(signal.SIGINT)
        out = wrk.communicate(timeout=30)[0].decode(errors="replace")
    if "Non-2xx" in out:
        raise BenchError(f"the fill had failed requests:\n{out}")


def pause_idle(workers: Workers, url: str) -> None:
    """SIGSTOP the workers at a moment when none holds a transaction that capture could
    wait for (SQLite's write lock; on PostgreSQL any open transaction)."""
    for _ in range(200):
        workers.signal(signal.SIGSTOP)
        time.sleep(0.01)  # delivered
        if not holds_transaction(url):
            return
        workers.signal(signal.SIGCONT)
        time.sleep(0.02)
    raise BenchError("the workers were never idle")


def holds_transaction(url: str) -> bool:
    if url.startswith("sqlite"):
        # The workers' writers queue on flock of this file (leadvault.sqlite_writer).
        fd = os.open(url.removeprefix("sqlite:///") + ".writer-lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # releases the lock if taken
        return False
    query = "pid <> pg_backend_pid() AND datname = current_database() AND state <> 'idle'"
    return count_rows(url, "pg_stat_activity", query) > 0


def print_capacity(
    drain: Drain | None, phases: dict[str, tuple[WrkResult, Groups]], *, bare_rps: float
) -> None:
    """The drain's rate, capture beside the burner (when ``phases`` has it) against
    capture alone, and who used the CPU in each phase."""
    if drain is not None:
        print(drain.describe(f"; {100 * drain.rate / bare_rps:.1f} % of bare"))
    alone = phases["capture alone"][0]
    load_cpu = phases["capture + worker"][1]
    if "capture + burner" in phases:
        burned, cpu = phases["capture + burner"]
        taken = load_cpu.cores("worker") + load_cpu.cores("sink")
        print(
            f"capture + burner      {burned.rps:10.1f} req/s  p50 {burned.p50_ms:.2f} ms, "
            f"p99 {burned.p99_ms:.2f} ms ({100 * burned.rps / alone.rps:.1f} % of capture "
            f"alone; burner {cpu.cores('burner'):.2f} cores; the worker(s) and the sink took "
            f"{taken:.2f} in the load)"
        )
    print("CPU by phase (cores)")
    for name, (_, cpu) in phases.items():
        print(f"  {name:20}{cpu.line()}")
    if drain is not None:
        print(f"  {'drain':20}{drain.cpu.line()}")
    per_request = ", ".join(f"{name} {r.server_cpu_ms:.2f}" for name, (r, _) in phases.items())
    print(f"  web workers' CPU ms per request: {per_request}")
