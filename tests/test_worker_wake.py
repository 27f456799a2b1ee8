"""A running worker's mail threads are woken for every mail queued, not only after the
poll interval: by the inbox thread when it stored items, when a request woke the
worker, and when a scheduled job ran (a job may queue mails: reminders, nurture).

The poll interval is 30 s here, the mails must arrive within 10 s. The worker is
real (``Worker.run`` with its threads), the relay a real aiosmtpd on loopback; the
test waits until every worker thread sleeps for the poll interval before it queues.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from leadvault import worker as worker_module
from leadvault.app import Job, runtime
from leadvault.db import unit_of_work
from leadvault.settings import parse_smtp_url
from leadvault.worker import Worker
from tests.test_outbox import content, enqueue_mail, message_ids, unique_email, wait_until

POLL = 30.0
ARRIVES_WITHIN = 10.0


def _sleeping_for_the_poll(thread: threading.Thread) -> bool:
    """Whether the thread waits with a timeout of the poll interval's order (an idle
    worker thread), not a short coalescing or yielding wait, nor working."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        timeout = frame.f_locals.get("timeout")
        waits = frame.f_code.co_name in {"wait", "wait_for"}
        if waits and isinstance(timeout, float) and timeout > POLL / 2:
            return True
        frame = frame.f_back
    return False


class _Idle:
    """A worker running in threads, every one of them asleep for the poll interval; a
    scheduled job queues one mail once ``armed`` is set."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.armed = threading.Event()
        self.queued: list[str] = []
        runtime(app).jobs.append(Job(name="test-queue-a-mail", interval_seconds=0, run=self._job))
        self.worker = Worker(app)
        self.stop = threading.Event()
        self.main = threading.Thread(target=self.worker.run, args=(self.stop,), daemon=True)

    def _job(self, session: Any) -> None:
        if self.armed.is_set() and not self.queued:
            row = enqueue_mail(session, content(unique_email("job")), template="t", lead=None)
            self.queued.append(row.message_id)

    def start(self) -> None:
        self.main.start()
        wait_until(
            lambda: (
                len(self.mail_threads()) == self.worker.mail_threads
                and all(map(_sleeping_for_the_poll, [self.main, *self.mail_threads()]))
            ),
            10,
            "every worker thread to sleep for the poll interval",
        )

    @staticmethod
    def mail_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("leadvault-mail-")]

    def close(self) -> None:
        self.stop.set()
        runtime(self.app).wake.set()
        self.main.join(timeout=30)
        assert not self.main.is_alive()


@pytest.fixture
def idle(make_app: Any, smtp_server: Any) -> Iterator[_Idle]:
    app = make_app(
        smtp_url=parse_smtp_url(f"smtp://127.0.0.1:{smtp_server.port}"),
        worker_poll_seconds=POLL,
    )
    running = _Idle(app)
    running.start()
    try:
        yield running
    finally:
        running.close()


def _arrives(smtp_server: Any, message_id: str) -> None:
    wait_until(
        lambda: message_id in message_ids(smtp_server.messages),
        ARRIVES_WITHIN,
        f"the mail within {ARRIVES_WITHIN:.0f} s (the poll interval is {POLL:.0f} s)",
    )


@pytest.mark.committing
def test_a_mail_a_scheduled_job_queues_goes_out_at_once(idle, smtp_server, backend):
    expected = worker_module.MAIL_THREADS_POSTGRESQL if backend == "postgresql" else 1
    assert idle.worker.mail_threads == expected
    idle.armed.set()
    runtime(idle.app).wake.set()  # the job runs in the inbox thread's next round
    wait_until(lambda: bool(idle.queued), ARRIVES_WITHIN, "the job to queue its mail")
    _arrives(smtp_server, idle.queued[0])
    assert message_ids(smtp_server.messages).count(idle.queued[0]) == 1


@pytest.mark.committing
def test_a_mail_queued_by_a_request_goes_out_when_it_wakes_the_worker(idle, smtp_server):
    # What a request that queued a mail does: commit, then wake the in-process worker.
    with idle.app.app_context(), unit_of_work(runtime(idle.app).session_factory) as session:
        row = enqueue_mail(session, content(unique_email("req")), template="t", lead=None)
        message_id = row.message_id
    runtime(idle.app).wake.set()
    _arrives(smtp_server, message_id)
