"""Who used the CPU during a phase of a load benchmark (Linux /proc), and a burner that
takes a given share of a core (to tell a process's CPU from the contention it causes)."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def named_pids(name: str) -> list[int]:
    """Processes whose command is ``name`` (e.g. every PostgreSQL backend on this machine)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def machine_seconds() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine so far, all cores."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / TICK, idle / TICK


@dataclasses.dataclass
class Groups:
    """CPU seconds used by named groups of processes between ``start()`` and ``stop()``:
    a group is a callable that lists its pids now (processes may come and go; a pid
    that exits between the two readings loses what it used since the first)."""

    groups: dict[str, object]
    used: dict[str, float] = dataclasses.field(default_factory=dict)
    wall: float = 0.0
    busy: float = 0.0
    idle: float = 0.0

    def _read(self) -> dict[str, dict[int, float]]:
        return {
            name: {pid: process_seconds(pid) for pid in pids()}  # type: ignore[operator]
            for name, pids in self.groups.items()
        }

    def start(self) -> Groups:
        self._before = self._read()
        self._machine = machine_seconds()
        self._started = time.perf_counter()
        return self

    def stop(self) -> Groups:
        self.wall = time.perf_counter() - self._started
        busy, idle = machine_seconds()
        self.busy, self.idle = busy - self._machine[0], idle - self._machine[1]
        after = self._read()
        for name, now in after.items():
            before = self._before[name]
            self.used[name] = sum(now[pid] - before.get(pid, 0.0) for pid in now)
        return self

    def cores(self, name: str) -> float:
        """The group's CPU as cores (CPU seconds per wall second)."""
        return self.used.get(name, 0.0) / self.wall if self.wall else 0.0

    def line(self) -> str:
        parts = [f"{name} {self.cores(name):.2f}" for name in self.groups]
        other = (self.busy - sum(self.used.values())) / self.wall if self.wall else 0.0
        idle = self.idle / self.wall if self.wall else 0.0
        return ", ".join([*parts, f"other {other:.2f}", f"idle {idle:.2f}"]) + " cores"


def children_of(pid: int) -> list[int]:
    """The direct children of a process (a gunicorn master's workers)."""
    try:
        return [int(n) for n in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def pids_of(procs: Iterable[subprocess.Popen[bytes]]) -> list[int]:
    return [proc.pid for proc in procs if proc.poll() is None]


BURN = """
import sys, time
rate = float(sys.argv[1])  # CPU seconds per wall second to take
started, used0 = time.perf_counter(), time.process_time()
while True:
    ahead = (time.process_time() - used0) - rate * (time.perf_counter() - started)
    if ahead > 0:
        time.sleep(min(ahead / rate, 0.01))
    else:
        deadline = time.process_time() + 0.002
        while time.process_time() < deadline:
            pass
"""


class Burner:
    """Processes that take ``rate`` cores of CPU together (less if the machine cannot give
    them: each spins whenever its CPU time is behind its share times the time since it
    started, and sleeps while it is ahead; one per core wanted), stopped by ``close()``."""

    def __init__(self, rate: float) -> None:
        n = max(1, math.ceil(rate))
        self.procs = [
            subprocess.Popen([sys.executable, "-c", BURN, str(rate / n)]) for _ in range(n)
        ]

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=10)
