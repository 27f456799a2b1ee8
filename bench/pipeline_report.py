"""What bench/pipeline.py measured and its report: the runs, the ratios the targets of
issue 13 are stated in, the capacity and CPU lines, and what makes a run invalid."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from cpu_use import Groups
from drain import Drain, print_capacity
from load import WrkResult

MAX_FAILED_FRACTION = 0.01
# Targets of issue 13, as % (of bare req/s; of capture alone).
TARGET_E2E = {"sqlite": 10.0, "postgresql": 8.0}
TARGET_CAPTURE_WITH_WORKER = 80.0
TARGET_PG_CAPTURE = 20.0


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


def invalid(problems: list[str]) -> int:
    if problems:
        print("\nBENCH INVALID:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0
