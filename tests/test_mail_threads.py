"""One worker process delivers mail on several SMTP connections at once (PostgreSQL).

Each mail thread claims its own batches (FOR UPDATE SKIP LOCKED): every mail is
delivered once, and the relay sees several sessions open at the same time. On
SQLite the worker keeps one connection.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from leadvault import worker as worker_module
from leadvault.models import OutboxStatus
from leadvault.settings import parse_smtp_url
from leadvault.worker import Worker
from tests.test_outbox import (
    _Keeping,
    enqueue,
    message_ids,
    outbox_rows,
    running,
    sink_with,
    wait_until,
)


class _Sessions(_Keeping):
    """Keeps each message with the SMTP session that carried it; counts the sessions
    in a DATA exchange at the same moment (the delay keeps each one open a while)."""

    def __init__(self) -> None:
        super().__init__(delay=0.02)
        self.carried_by: list[int] = []
        self.busy = 0
        self.most_at_once = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.busy += 1  # the server's one event loop: no lock needed
        self.most_at_once = max(self.most_at_once, self.busy)
        try:
            reply = await super().handle_DATA(server, session, envelope)
        finally:
            self.busy -= 1
        with self.lock:
            self.carried_by.append(id(session))
        return reply


@pytest.mark.committing
def test_one_worker_sends_on_several_connections_at_once_and_each_mail_once(make_app, backend):
    total = 60
    handler = _Sessions()
    sink = sink_with(handler)
    app = make_app(smtp_url=parse_smtp_url(f"smtp://127.0.0.1:{sink.port}"))
    stored = enqueue(app, total)
    worker = Worker(app, batch_size=20)
    expected = worker_module.MAIL_THREADS_POSTGRESQL if backend == "postgresql" else 1
    assert worker.mail_threads == expected
    stop = threading.Event()
    with running(sink):
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_until(
                lambda: all(row.status == OutboxStatus.SENT for row in outbox_rows(app)),
                30,
                "every mail to be sent",
            )
        finally:
            stop.set()
            worker.runtime.wake.set()
            thread.join(timeout=30)
        assert not thread.is_alive()
    received = message_ids(handler.messages)
    assert sorted(received) == sorted(stored.values())  # each mail once
    sessions = set(handler.carried_by)
    if backend == "postgresql":
        assert len(sessions) == expected  # one connection per mail thread
        assert handler.most_at_once > 1  # in use at the same time
    else:
        assert len(sessions) == 1
        assert handler.most_at_once == 1
