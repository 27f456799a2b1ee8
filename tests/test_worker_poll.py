"""How a running worker notices work queued by another process (gunicorn's web workers
cannot wake it): soon after it has worked, at the poll interval once idle; and how it
lowers its CPU priority (``LEADVAULT_WORKER_NICE``).

The poll interval is 30 s here; the worker is real (``Worker.run`` with its threads).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from leadvault import inbox_queueing
from leadvault.app import runtime
from leadvault.db import unit_of_work
from leadvault.settings import parse_smtp_url
from leadvault.worker import Worker
from tests.test_outbox import wait_until

POLL = 30.0
KIND = "test.poll"


class _Running:
    """A worker in threads whose inbox handler records payloads, its polls counted."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.stored: list[int] = []
        self.polls = 0
        runtime(app).inbox_handlers[KIND] = lambda _session, payload: self.stored.append(
            payload["n"]
        )
        self.worker = Worker(app)
        process_inbox = self.worker.process_inbox

        def counted() -> int:
            self.polls += 1
            return process_inbox()

        self.worker.process_inbox = counted  # type: ignore[method-assign]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.worker.run, args=(self.stop,), daemon=True)

    def queue(self, n: int) -> None:
        """What a request in another process does: commit an item, wake nobody."""
        with self.app.app_context(), unit_of_work(runtime(self.app).session_factory) as s:
            inbox_queueing.enqueue(s, KIND, {"n": n})

    def close(self) -> None:
        self.stop.set()
        runtime(self.app).wake.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


@pytest.fixture
def running(make_app: Any, smtp_server: Any) -> Iterator[_Running]:
    app = make_app(
        smtp_url=parse_smtp_url(f"smtp://127.0.0.1:{smtp_server.port}"),
        worker_poll_seconds=POLL,
    )
    worker = _Running(app)
    worker.thread.start()
    try:
        yield worker
    finally:
        worker.close()


@pytest.mark.committing
def test_an_idle_worker_polls_at_the_interval_only(running):
    wait_until(lambda: running.polls >= 1, 10, "the first poll")
    time.sleep(1.0)
    assert running.polls == 1


@pytest.mark.committing
def test_work_queued_elsewhere_soon_after_a_batch_is_noticed_within_seconds(running):
    # The worker learns of the first item by a wake (as from a request in its process).
    running.queue(1)
    runtime(running.app).wake.set()
    wait_until(lambda: running.stored == [1], 10, "the first item")
    # The next arrives without a wake, as from a web worker in another process: before,
    # the worker had gone to sleep for the whole poll interval (30 s) after the first.
    time.sleep(0.5)
    running.queue(2)
    wait_until(lambda: running.stored == [1, 2], 5, "the second item well before the poll")
    # Then it backs off to the interval: a few polls in the seconds after work, no more.
    polls = running.polls
    time.sleep(3.0)
    assert running.polls - polls <= 8


_SHOW = """
import os, sys
from pathlib import Path
from leadvault.worker import lower_priority
lower_priority(int(sys.argv[1]))
group = Path("/proc/self/autogroup")
# Empty for a process of the session the machine booted with (no autogroup of its own).
words = group.read_text().split() if group.exists() else []
print(os.nice(0), words[-1] if words else "-")
"""


def _priority(niceness: int, *, own_session: bool) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-c", _SHOW, str(niceness)],
        capture_output=True,
        text=True,
        check=True,
        start_new_session=own_session,
        timeout=60,
    )
    nice, group = done.stdout.split()
    return int(nice), group


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux scheduling")
def test_lower_priority_lowers_the_process_and_a_session_it_leads():
    base = os.nice(0)
    nice, group = _priority(0, own_session=True)
    assert (nice, group) in ((base, "0"), (base, "-"))  # "-": no autogroups here
    nice, lowered = _priority(7, own_session=True)
    assert nice == min(base + 7, 19)
    if group != "-":
        assert lowered == "7"  # the worker's own session: its autogroup is lowered
    # In a session it shares (a shell, an entrypoint with the web tier), only itself:
    # the session's group keeps its niceness, whatever it shows (on the CI machine the
    # suite's own file was empty: a process of the boot session has no autogroup).
    _, shared = _priority(0, own_session=False)
    assert _priority(7, own_session=False) == (nice, shared)
