"""The background worker: stores the inbox, delivers the outbox, runs periodic jobs.

``run`` does the inbox in one thread and the outbox in another; ``deliver_once``
(``leadvault worker --once``, the tests) does one round of each in turn.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from pathlib import Path

from flask import Flask

from leadvault import inbox, mail_delivery
from leadvault.app import runtime
from leadvault.db import unit_of_work
from leadvault.mail import Sender, sender_for
from leadvault.sqlite_writer import checkpoint, checkpoint_apart, write_locked_at, writer_waited

log = logging.getLogger("leadvault.worker")
# After a batch that was not full, wait this long before the next: work arriving
# meanwhile goes in one batch (fewer transactions, and on SQLite fewer turns at the
# write lock that requests wait for) instead of many small ones.
COALESCE_SECONDS = 0.1
# After the inbox ran dry, the first idle wait is this short and each further one twice
# as long, up to the poll interval. A worker beside a web tier in other processes
# (gunicorn) hears of new work only by polling: with the full interval at once, a
# burst that starts just after a lull waited up to LEADVAULT_WORKER_POLL_SECONDS (2 s)
# before the worker noticed it (bench/pipeline.py: the first 2 s of a 10 s load lost,
# ~800 items behind on both databases). A few more polls after work, none when idle.
RECHECK_SECONDS = 0.05
# On SQLite, after a batch that had to wait for the write lock (requests were
# writing), the inbox waits YIELD_FACTOR times the batch's duration: the worker then
# holds the one write lock at most a quarter of the time while capture is busy.
YIELD_FACTOR = 3.0
CONTENDED_SECONDS = 0.002
# On PostgreSQL mail goes out on this many SMTP connections, each in a thread of its
# own that claims its own batches (SKIP LOCKED keeps them apart): a thread spends part
# of a mail waiting for the relay's replies and the database's, and under load each
# wait is a turn for a process on the busy cores; the threads wait at once. Two, not
# more: a batch is shared out between them, and each batch has a fixed cost (its claim,
# then a claim that came back empty, since gone: claim_batch; reading it, recording it) and each
# thread a share of the one interpreter lock. With four, batches of 25 cost a drain
# ~20 % more of the worker's CPU per lead than two with batches of 50 and drained ~27 %
# fewer leads/s, with no gain under capture load (bench/README.md, lv/workerprof).
# SQLite keeps one: its claims and records queue for the one write lock with capture.
MAIL_THREADS_POSTGRESQL = 2


def lower_priority(niceness: int) -> None:
    """Let the web tier on the same cores go first (``LEADVAULT_WORKER_NICE``): the
    worker then takes the cycles requests leave, and catches up when they pause.

    Linux with autogroups (``/proc/sys/kernel/sched_autogroup_enabled``) shares the CPU
    between sessions first, and a process's nice value counts only inside its session:
    a worker that leads a session of its own (started by a supervisor, or with setsid)
    also lowers its session's group, else its niceness would change nothing against a
    web tier in another session. Not done when the session is shared (a shell, a
    container's entrypoint running the web tier too): the others would be lowered too.
    Under systemd, give the unit a lower ``CPUWeight=`` instead (cgroups, not nice)."""
    if niceness <= 0:
        return
    os.nice(niceness)
    if os.getsid(0) == os.getpid():
        # OSError: no autogroups (another OS, the kernel option off).
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(str(niceness))


class _Bell:
    """Wakes every mail thread for each ring. A ring is a number that goes up; a thread
    notes it before it claims and sleeps only while it has not changed. (A shared
    Event lost rings: the thread that cleared it took the ring from those that were
    claiming at that moment, and wakes from requests and jobs never reached it.)"""

    def __init__(self) -> None:
        self._rung = 0
        self._condition = threading.Condition()

    @property
    def rung(self) -> int:
        with self._condition:
            return self._rung

    def ring(self) -> None:
        with self._condition:
            self._rung += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Until a ring after ``seen`` (returns at once if one came meanwhile) or ``timeout``."""
        with self._condition:
            self._condition.wait_for(lambda: self._rung != seen, timeout)


class Worker:
    def __init__(
        self, app: Flask, *, batch_size: int | None = None, sender: Sender | None = None
    ) -> None:
        self.app = app
        self.runtime = runtime(app)
        self.batch_size = batch_size or self.runtime.settings.worker_batch_size
        self.sender = sender or sender_for(self.runtime.settings)
        # More connections only when this worker makes its senders (a given one is one).
        self.mail_threads = (
            MAIL_THREADS_POSTGRESQL
            if sender is None
            and self.runtime.settings.smtp is not None
            and self.runtime.engine.dialect.name == "postgresql"
            else 1
        )
        self._senders: list[Sender] = []
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 10000}"
        self._last_run: dict[str, float] = {}
        self._mail_bell = _Bell()
        self._inbox_drained = False
        # Deliverers of the other outbox kinds (webhooks …), registered by packages.
        self.deliverers = [make(app) for make in self.runtime.deliverers.values()]

    def process_inbox(self) -> int:
        """Turn accepted work (submissions …) into rows, one transaction each."""
        with self.app.app_context():  # handlers render mail templates
            result = inbox.process_batch(
                self.runtime.session_factory, self.runtime.inbox_handlers, limit=self.batch_size
            )
        self._inbox_drained = result.taken < self.batch_size
        return result.handled

    def deliver_mail(self, sender: Sender | None = None, *, limit: int | None = None) -> int:
        return mail_delivery.deliver_due(
            self.runtime.session_factory,
            sender or self.sender,
            worker_id=self.worker_id,
            limit=limit or self.batch_size,
        )

    def deliver_other(self) -> int:
        """Outbox rows that are not mail (webhooks …)."""
        return sum(
            deliverer.deliver_due(worker_id=self.worker_id, limit=self.batch_size)
            for deliverer in self.deliverers
        )

    def deliver_once(self) -> int:
        """One round: inbox first, so an opt-in mail goes out in the same round."""
        return self.process_inbox() + self.deliver_mail() + self.deliver_other()

    def close(self) -> None:
        self.sender.close()
        for sender in self._senders:
            sender.close()
        for deliverer in self.deliverers:
            deliverer.close()

    def run_due_jobs(self) -> int:
        """Run the jobs that are due; returns how many ran."""
        now = time.monotonic()
        ran = 0
        for job in self.runtime.jobs:
            last = self._last_run.get(job.name)
            if last is not None and now - last < job.interval_seconds:
                continue
            self._last_run[job.name] = now
            ran += 1
            try:
                with self.app.app_context(), unit_of_work(self.runtime.session_factory) as session:
                    job.run(session)
            except Exception as exc:  # a failing job must not stop mail delivery
                log.error("job %s failed: %s", job.name, type(exc).__name__)
        return ran

    def run(self, stop: threading.Event) -> None:
        """Inbox (and jobs) in this thread, mail and other deliveries in others (see
        ``MAIL_THREADS_POSTGRESQL``), so neither waits for the other; the inbox wakes the
        mail threads when mail may have been queued: it stored items, a request woke it,
        a job ran."""
        log.info("worker %s started", self.worker_id)
        checkpoint_apart(self.runtime.engine)
        # The first thread uses the worker's sender and also delivers the other kinds;
        # each further one has an SMTP connection of its own and mails only.
        senders = [self.sender]
        for _ in range(self.mail_threads - 1):
            senders.append(sender_for(self.runtime.settings))
            self._senders.append(senders[-1])
        # A batch is shared out: a thread that took all of a burst would leave the
        # others idle while it sends.
        limit = max(1, -(-self.batch_size // len(senders)))
        threads = [
            threading.Thread(
                target=self._deliver_loop,
                args=(stop, sender, limit, n == 0),
                name=f"leadvault-mail-{n}",
                daemon=True,
            )
            for n, sender in enumerate(senders)
        ]
        for thread in threads:
            thread.start()
        poll = self.runtime.settings.worker_poll_seconds
        idle_wait = poll  # see RECHECK_SECONDS; the full interval until work came
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    handled = self.process_inbox()
                    checkpoint(self.runtime.engine)  # see checkpoint_apart
                except Exception as exc:  # database gone: wait and try again
                    log.error("inbox loop error: %s", type(exc).__name__)
                    handled, idle_wait = 0, poll
                if handled:
                    self._mail_bell.ring()
                waited = writer_waited(self.runtime.engine)
                if handled and waited > CONTENDED_SECONDS:
                    # SQLite, and requests are writing: leave them the write lock for
                    # a while (capture first; the inbox catches up when they pause).
                    # Held since the batch's first write, not while it read and worked.
                    locked_at = write_locked_at(self.runtime.engine) or started
                    stop.wait(YIELD_FACTOR * max(time.monotonic() - locked_at, 0.0))
                if self.run_due_jobs():
                    self._mail_bell.ring()  # a job may have queued mails (reminders …)
                if handled == 0:
                    # Sleep until the poll interval ends or a request wakes us: it queued
                    # inbox work, or mail itself. (Cleared only when set: a wake just
                    # after a timeout is kept for the next round, not lost.)
                    if self.runtime.wake.wait(idle_wait):
                        self.runtime.wake.clear()
                        self._mail_bell.ring()
                    idle_wait = min(2 * idle_wait, poll)
                    continue
                idle_wait = min(RECHECK_SECONDS, poll)
                if self._inbox_drained:
                    stop.wait(COALESCE_SECONDS)
        finally:
            self._mail_bell.ring()
            for thread in threads:
                thread.join(timeout=30)
            self.close()
            log.info("worker %s stopped", self.worker_id)

    def _deliver_loop(
        self, stop: threading.Event, sender: Sender, limit: int, others: bool
    ) -> None:
        poll = self.runtime.settings.worker_poll_seconds
        while not stop.is_set():
            # Noted before the claim: a ring from here on (mail committed after the
            # claim looked) means claim again.
            seen = self._mail_bell.rung
            try:
                mail = mail_delivery.deliver_batch(
                    self.runtime.session_factory, sender, worker_id=self.worker_id, limit=limit
                )
                other = self.deliver_other() if others else 0
            except Exception as exc:  # database or relay gone: wait and try again
                log.error("delivery loop error: %s", type(exc).__name__)
                mail, other = mail_delivery.Delivered(0, more=False), 0
            if mail.more or other >= self.batch_size:
                continue  # more was due: the next batch at once
            if other == 0 and mail.handled in (0, limit):
                # Nothing more was due when the claim looked (a full batch claims one
                # row beyond it to tell): the next claim waits for a ring or the poll
                # interval, as after a claim that came back empty, and is not made
                # at once only to find nothing.
                self._mail_bell.wait(seen, poll)
            else:
                stop.wait(COALESCE_SECONDS)
