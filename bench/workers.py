"""The `leadvault worker` processes of a benchmark (bench/pipeline.py)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from harness import BIN_DIR, BenchError


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
