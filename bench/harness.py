"""What the benchmarks share: a clean environment, the CLI, a gunicorn server."""

from __future__ import annotations

import collections
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BIN_DIR = Path(sys.executable).parent


class BenchError(Exception):
    """The benchmark could not run as intended (the message says why)."""


def verdict(ok: bool) -> str:
    """A target's verdict as the benchmarks print it."""
    return "PASS" if ok else "MISS"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_env(instance: Path, **settings: str) -> dict[str, str]:
    """The caller's environment without its LEADVAULT_* settings, plus the bench's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADVAULT_")}
    env.update(LEADVAULT_INSTANCE=str(instance), LEADVAULT_LOG_LEVEL="WARNING")
    env.update({f"LEADVAULT_{k.upper()}": v for k, v in settings.items()})
    return env


def run_cli(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(BIN_DIR / "leadvault"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(
            f"`leadvault {' '.join(args)}` failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return done.stdout


class Server:
    """A gunicorn master in its own process group, stopped in ``close()``."""

    def __init__(
        self,
        name: str,
        app: str,
        env: dict[str, str],
        *,
        workers: int,
        log_dir: Path,
        worker_class: str = "sync",
        threads: int = 4,
        extra: list[str] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"gunicorn-{name}.log"
        cmd = [
            str(BIN_DIR / "gunicorn"),
            "-w",
            str(workers),
            "-k",
            worker_class,
            "-b",
            f"127.0.0.1:{self.port}",
            "--backlog",
            "2048",
            "--log-level",
            "warning",
            "--error-logfile",
            "-",
            *(["--threads", str(threads)] if worker_class == "gthread" else []),
            *(extra or []),
            app,
        ]
        self._log = self.log_path.open("wb")  # closed in close()
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, path: str = "/healthz", timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name}: gunicorn exited ({self.proc.returncode}):\n" + self.log_tail()
                )
            try:
                with urllib.request.urlopen(self.base + path, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise BenchError(
            f"{self.name}: {path} did not answer within {timeout:.0f}s:\n" + self.log_tail()
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def workers_cpu_seconds(self) -> float:
        """User + system CPU time of the server's worker processes so far (Linux /proc)."""
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return 0.0
        total_ticks = 0
        for pid in children.split():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue  # a worker that just exited
            fields = stat.rsplit(")", 1)[1].split()
            total_ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return total_ticks / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc.poll() is None:
            # gunicorn stops its workers on SIGTERM (graceful); the group is ours alone.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()


class Counted:
    """SQL statements run through an engine, in all and by kind ("INSERT leads")."""

    def __init__(self, engine: Any) -> None:
        import sqlalchemy as sa  # here, not at the top: the scripts set sys.path first

        self.statements = 0
        self.kinds: collections.Counter[str] = collections.Counter()
        sa.event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, _connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements += 1
        # "INSERT INTO leads", "SELECT … FROM rule_sets": what kind of statement on what.
        words = statement.split()
        table = next((w for p, w in itertools.pairwise(words) if p in _TABLE_AFTER), "")
        self.kinds[f"{words[0] if words else ''} {table}"] += 1


_TABLE_AFTER = frozenset({"INTO", "FROM", "UPDATE", "into", "from", "update"})


class LockUse:
    """Time this process held SQLite's write lock (``sqlite_writer._WriterQueue``, taken
    by every write transaction): CPU time of the holding thread and wall time, summed
    over every hold. What runs under the lock is what capture and the worker wait for
    each other on: the figure to shrink for SQLite's writer fairness (issue 13.3).
    Measured by wrapping the queue's acquire and release in this process (the
    benchmark's, never the product's code path)."""

    def __init__(self) -> None:
        from leadvault import sqlite_writer  # the scripts set sys.path first

        self.cpu = 0.0
        self.wall = 0.0
        self.holds = 0
        queue = sqlite_writer._WriterQueue
        acquire, release = queue.acquire, queue.release
        use = self

        def acquired(queue_self: Any) -> None:
            acquire(queue_self)
            queue_self.local.bench_held = (time.thread_time(), time.perf_counter())

        def released(queue_self: Any) -> None:
            cpu, wall = queue_self.local.bench_held
            use.cpu += time.thread_time() - cpu
            use.wall += time.perf_counter() - wall
            use.holds += 1
            release(queue_self)

        queue.acquire = acquired  # type: ignore[method-assign]
        queue.release = released  # type: ignore[method-assign]


@contextmanager
def measured(
    counter: Counted | None, into: dict[str, float], locks: LockUse | None = None
) -> Iterator[None]:
    """CPU and wall seconds of the block, and the statements ``counter`` saw in it;
    with ``locks``, the CPU and wall seconds its write-lock holds took (``lock_cpu``,
    ``lock_wall``) and how many there were (``holds``)."""
    statements = counter.statements if counter else 0
    lock_cpu, lock_wall, holds = (locks.cpu, locks.wall, locks.holds) if locks else (0, 0, 0)
    cpu, wall = time.process_time(), time.perf_counter()
    yield
    into["cpu"] = time.process_time() - cpu
    into["wall"] = time.perf_counter() - wall
    into["statements"] = (counter.statements - statements) if counter else 0
    if locks is not None:
        into["lock_cpu"] = locks.cpu - lock_cpu
        into["lock_wall"] = locks.wall - lock_wall
        into["holds"] = locks.holds - holds
