"""The outbox end to end: real SMTP on loopback, real worker processes, both backends."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from leadvault import clock, leads
from leadvault.app import runtime
from leadvault.cli import cli
from leadvault.db import unit_of_work
from leadvault.mail import MailContent
from leadvault.models import OutboxAttempt, OutboxMessage, OutboxStatus
from leadvault.outbox import enqueue_mail, read_content
from leadvault.settings import parse_smtp_url
from tests.conftest import SmtpSink, deliver, free_port, make_form, render_token, unique_email

LEADVAULT = Path(sys.executable).parent / "leadvault"


# --- SMTP handlers ------------------------------------------------------------


class _Keeping:
    """Same interface as the conftest collector: ``messages`` under ``lock``."""

    def __init__(self, delay: float = 0.0) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()
        self.delay = delay

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.delay:
            await asyncio.sleep(self.delay)
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"


class _RefusingRecipient(_Keeping):
    """Answers every RCPT with a 550 that quotes the address back."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        self.refused.append(address)
        return f"550 no such user <{address}>"


class _RejectingData(_Keeping):
    """Accepts the recipient, then rejects the message quoting the address."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return f"554 5.7.1 message for <{envelope.rcpt_tos[0]}> rejected as spam"


class _HeldTransientFailure(_Keeping):
    """Holds DATA until the test sets ``release``, then answers with a temporary failure:
    the test, not a duration, decides when the failure arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.in_data = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.in_data.set()
        # Waited for in a thread: the server's event loop goes on serving meanwhile.
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        return "451 4.3.0 try again later"


def sink_with(handler: _Keeping, port: int | None = None) -> SmtpSink:
    sink = SmtpSink(port=port)
    sink.collector = handler  # type: ignore[assignment]
    return sink


@contextlib.contextmanager
def running(sink: SmtpSink) -> Iterator[SmtpSink]:
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


# --- helpers -----------------------------------------------------------------


def content(to: str, n: int = 0) -> MailContent:
    return MailContent(
        to=to,
        subject=f"Test mail {n}",
        text=f"Hello number {n}.\nVisit https://www.example.com/x/{n}\n",
        html=f"<p>Hello number {n}.</p>",
    )


def enqueue(app: Any, count: int, *, with_lead: bool = False) -> dict[int, str]:
    """Queue ``count`` mails in one transaction; return {outbox id: Message-ID}."""
    rows = []
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        for n in range(count):
            email = unique_email(f"r{n}")
            lead = leads.get_or_create(s, email, language="en")[0] if with_lead else None
            rows.append(enqueue_mail(s, content(email, n), template="test", lead=lead))
    return {row.id: row.message_id for row in rows}


def outbox_rows(app: Any) -> list[OutboxMessage]:
    with runtime(app).session_factory() as s:
        return list(s.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id)))


def attempt_rows(app: Any, outbox_id: int | None = None) -> list[OutboxAttempt]:
    query = sa.select(OutboxAttempt).order_by(OutboxAttempt.id)
    if outbox_id is not None:
        query = query.where(OutboxAttempt.outbox_id == outbox_id)
    with runtime(app).session_factory() as s:
        return list(s.scalars(query))


def message_ids(messages: list[EmailMessage]) -> list[str]:
    return [str(m["Message-ID"]).strip() for m in messages]


def worker_env(
    database_url: str,
    keyring_path: Path,
    instance: Path,
    *,
    smtp_port: int | None,
    lease: float = 2.0,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADVAULT_")}
    env.update(
        LEADVAULT_INSTANCE=str(instance),
        LEADVAULT_DATABASE_URL=database_url,
        LEADVAULT_KEYRING=str(keyring_path),
        LEADVAULT_OUTBOX_LEASE_SECONDS=str(lease),
        LEADVAULT_WORKER_POLL_SECONDS="0.1",
        LEADVAULT_OUTBOX_RETRY_SECONDS="0.2",
        # At the suite's own priority: `worker --once` runs in the test's process, which
        # could never raise its priority again (lower_priority has tests of its own).
        LEADVAULT_WORKER_NICE="0",
    )
    if smtp_port is not None:
        env["LEADVAULT_SMTP_URL"] = f"smtp://127.0.0.1:{smtp_port}"
    return env


class Workers:
    """Worker subprocesses, each logging to a file; all killed on exit."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = self.folder / f"worker{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(LEADVAULT), "worker", *args], env=self.env, stdout=out, stderr=out
            )
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def wait_started(self, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
        """Until the worker logs that it started: its imports and app took 13 s on a
        loaded two-core machine (1.5 s when quiet)."""
        log = self.logs[self.procs.index(proc)]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "started" in log.read_text(errors="replace"):
                return
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"worker did not start:\n{self.output()}")

    def output(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in self.logs)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# --- 1. format -----------------------------------------------------------------


def test_sent_mail_has_stored_message_id_both_parts_date_and_from(app, smtp_server):
    with_lead = unique_email("lead")
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        lead, _created = leads.get_or_create(s, with_lead, language="en")
        rows = [
            enqueue_mail(s, content("nolead@example.org", 1), template="test", lead=None),
            enqueue_mail(s, content(with_lead, 2), template="test", lead=lead),
        ]
    stored = {row.id: row.message_id for row in rows}
    assert all(stored.values())
    assert len(set(stored.values())) == 2

    assert deliver(app) == 2
    received = {m["To"]: m for m in smtp_server.wait_for(2)}
    assert set(received) == {"nolead@example.org", with_lead}
    mail_from = runtime(app).settings.mail_from
    by_id = dict(zip(message_ids(list(received.values())), received.values(), strict=True))
    assert set(by_id) == set(stored.values())

    for n, to in ((1, "nolead@example.org"), (2, with_lead)):
        mail = received[to]
        assert mail["Subject"] == f"Test mail {n}"
        assert mail["From"] == mail_from
        assert parseaddr(str(mail["From"]))[1] == parseaddr(mail_from)[1]
        sent_at = parsedate_to_datetime(str(mail["Date"]))
        assert sent_at.tzinfo is not None
        assert abs((sent_at - clock.now()).total_seconds()) < 120
        assert mail.get_content_type() == "multipart/alternative"
        parts = {part.get_content_type(): part for part in mail.iter_parts()}
        assert set(parts) == {"text/plain", "text/html"}
        assert f"Hello number {n}." in parts["text/plain"].get_content()
        assert f"<p>Hello number {n}.</p>" in parts["text/html"].get_content()

    for row in outbox_rows(app):
        assert row.status == OutboxStatus.SENT
        assert row.attempts == 1
        assert row.sent_at is not None
        assert row.last_error is None
        assert row.locked_by is None
        [attempt] = attempt_rows(app, row.id)
        assert attempt.error is None
        assert by_id[row.message_id]  # the row's own Message-ID went out


# --- 2. transient failure and retry ------------------------------------------------


def test_smtp_down_keeps_the_mail_and_retries_after_the_delay(make_app):
    sink = SmtpSink(port=free_port())  # not started: connections are refused
    app = make_app(smtp_url=parse_smtp_url(f"smtp://127.0.0.1:{sink.port}"))
    [(outbox_id, message_id)] = enqueue(app, 1).items()
    with app.app_context(), runtime(app).session_factory() as s:
        to = read_content(s, s.get(OutboxMessage, outbox_id)).to

    try:
        # Held still while we look, so "not due yet" cannot race the 0.2 s delay.
        failed_at = clock.now()
        clock.freeze(failed_at)
        assert deliver(app) == 1
        assert sink.messages == []
        [row] = outbox_rows(app)
        assert row.status == OutboxStatus.PENDING
        assert row.attempts == 1
        assert row.sent_at is None
        assert row.locked_by is None
        assert row.last_error
        assert "@" not in row.last_error
        assert to not in row.last_error
        assert row.next_attempt_at == failed_at + dt.timedelta(seconds=0.2)
        [attempt] = attempt_rows(app, outbox_id)
        assert attempt.error == row.last_error
        # Not due yet: a second run right away leaves it alone.
        assert deliver(app) == 0
        clock.freeze(None)

        sink.start()
        time.sleep(max(0.0, (row.next_attempt_at - clock.now()).total_seconds()) + 0.05)
        assert deliver(app) == 1
        [mail] = sink.wait_for(1)
        time.sleep(0.2)
        assert len(sink.messages) == 1
        assert message_ids([mail]) == [message_id]
        assert mail["To"] == to
        [row] = outbox_rows(app)
        assert row.status == OutboxStatus.SENT
        assert row.attempts == 2
        assert row.last_error is None
        assert [a.error is None for a in attempt_rows(app, outbox_id)] == [False, True]
    finally:
        sink.stop()


# --- 3. permanent failure -------------------------------------------------------


@pytest.mark.parametrize("handler", [_RefusingRecipient, _RejectingData], ids=["rcpt", "data"])
def test_permanent_refusal_fails_after_one_attempt_with_address_redacted(make_app, handler):
    sink = sink_with(handler())
    app = make_app(smtp_url=parse_smtp_url(f"smtp://127.0.0.1:{sink.port}"))
    [outbox_id] = enqueue(app, 1, with_lead=True)
    with running(sink):
        assert deliver(app) == 1
        # Not retried: no further attempt even once the retry delay has passed.
        time.sleep(0.3)
        assert deliver(app) == 0
    assert sink.messages == []
    if isinstance(sink.collector, _RefusingRecipient):
        [address] = sink.collector.refused
        assert address.endswith("@example.org")
    [row] = outbox_rows(app)
    assert row.status == OutboxStatus.FAILED
    assert row.attempts == 1
    assert row.last_error
    assert "@" not in row.last_error
    assert "example.org" not in row.last_error
    assert "5" in row.last_error  # the reply code survives redaction
    [attempt] = attempt_rows(app, outbox_id)
    assert attempt.error == row.last_error


@pytest.mark.committing
def test_late_failure_after_the_lease_ran_out_does_not_undo_a_send(make_app):
    """Worker A's lease lapses mid-send; B re-claims and sends; A's late failure is moot.

    A's failure arrives once B has recorded its send, because the test says so: with a
    fixed hold (it was 2 s against a 1 s lease) a stall of B near a second (its first
    connections, a slow commit on a busy PostgreSQL) let A's failure land first, and
    the order of the attempts, not the outcome, differed."""
    from leadvault.worker import Worker

    held = _HeldTransientFailure()
    slow = sink_with(held)
    fast = sink_with(_Keeping())
    app_a = make_app(
        smtp_url=parse_smtp_url(f"smtp://127.0.0.1:{slow.port}"), outbox_lease_seconds=1.0
    )
    app_b = make_app(smtp_url=parse_smtp_url(f"smtp://127.0.0.1:{fast.port}"))
    [(outbox_id, message_id)] = enqueue(app_a, 1).items()

    with running(slow), running(fast):
        worker_a = Worker(app_a)
        worker_a.worker_id = "worker-a"
        thread = threading.Thread(target=worker_a.deliver_once)
        thread.start()
        try:
            assert held.in_data.wait(10)
            [row] = outbox_rows(app_a)
            assert row.locked_by == "worker-a"
            time.sleep(max(0.0, (row.locked_until - clock.now()).total_seconds()) + 0.05)
            worker_b = Worker(app_b)
            worker_b.worker_id = "worker-b"
            assert worker_b.deliver_once() == 1  # the lapsed lease is taken over
            worker_b.sender.close()
            [mail] = fast.wait_for(1)
            assert message_ids([mail]) == [message_id]
            assert outbox_rows(app_b)[0].status == OutboxStatus.SENT
        finally:
            held.release.set()  # now A's failure arrives, after B's send
            thread.join(timeout=15)
            worker_a.sender.close()
        assert not thread.is_alive()

        [row] = outbox_rows(app_b)
        assert row.status == OutboxStatus.SENT, row.last_error
        assert row.sent_at is not None
        time.sleep(0.4)  # past any retry delay the failure might have set
        assert deliver(app_b) == 0
        assert len(fast.messages) == 1
    workers = [(a.worker, a.error is None) for a in attempt_rows(app_b, outbox_id)]
    assert workers == [("worker-b", True), ("worker-a", False)]


# --- 4. a killed worker loses nothing --------------------------------------------


@pytest.mark.committing
def test_worker_killed_mid_batch_loses_no_mail(make_app, database_url, keyring_path, instance):
    """Each mail takes the relay 0.3 s, longer than RECORD_EVERY_SECONDS: every outcome is
    recorded before the next mail goes out, so at the kill at most one mail the relay kept
    is not yet recorded as sent, and only such a mail may come twice. (On PostgreSQL the
    worker's second mail thread claims nothing: the first one's batch takes all 15.)

    No deadline below is a promise of the product: a worker's start-up (imports, the app)
    took 13 s on a loaded two-core machine, where the whole wait of 25 s it once had ran
    out. Each step waits on its own, and says which one failed."""
    total = 15
    sink = sink_with(_Keeping(delay=0.3))
    app = make_app(smtp_url=parse_smtp_url(f"smtp://127.0.0.1:{sink.port}"))
    stored = enqueue(app, total)
    env = worker_env(database_url, keyring_path, instance, smtp_port=sink.port, lease=2.0)

    def failed(step: str, exc: AssertionError) -> AssertionError:
        return AssertionError(f"{step}: {exc}\n{workers.output()}")

    with running(sink), Workers(env, instance.parent) as workers:
        first = workers.start()
        workers.wait_started(first)
        try:
            sink.wait_for(3, timeout=30)
        except AssertionError as exc:
            raise failed("the first worker's mails", exc) from None
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        assert first.returncode == -signal.SIGKILL

        rows = outbox_rows(app)
        recorded_at_kill = {r.message_id for r in rows if r.status == OutboxStatus.SENT}
        kept_at_kill = set(message_ids(sink.messages))
        assert len(recorded_at_kill) < total, "the batch was finished before the kill"
        assert any(r.status == OutboxStatus.SENDING for r in rows)
        assert recorded_at_kill <= kept_at_kill
        # Sent and not yet recorded: at most the one mail whose outcome had just come.
        assert len(kept_at_kill - recorded_at_kill) <= 1, (kept_at_kill, recorded_at_kill)

        second = workers.start()
        workers.wait_started(second)

        def all_sent() -> bool:
            return all(r.status == OutboxStatus.SENT for r in outbox_rows(app))

        try:
            # 12-14 mails of 0.3 s, sent in rounds of 1.6 s (0.8 of the lease) with a
            # wait for the lease to run out between them: ~7 s on a quiet machine.
            wait_until(all_sent, 60, "every row to be sent")
        except AssertionError as exc:
            raise failed("the second worker", exc) from None
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=10)

    rows = outbox_rows(app)
    assert len(rows) == total
    assert all(r.status == OutboxStatus.SENT for r in rows)
    received = message_ids(sink.messages)
    assert set(stored.values()) <= set(received)
    assert {r.message_id for r in rows} == set(stored.values())
    # At least once, not much more: only what was sent but not recorded at the kill
    # repeats, and nothing recorded as sent went out again.
    again = {message_id for message_id in received if received.count(message_id) > 1}
    assert again <= kept_at_kill - recorded_at_kill, again
    assert len(received) <= total + 1
    workers_used = {a.worker for a in attempt_rows(app)}
    assert len(workers_used) == 2


# --- 5. two workers never send a row twice ------------------------------------------


@pytest.mark.committing
def test_two_workers_on_postgresql_never_send_a_row_twice(
    backend, make_app, database_url, keyring_path, instance
):
    if backend != "postgresql":
        pytest.skip("concurrent claiming (FOR UPDATE SKIP LOCKED) is a PostgreSQL feature")
    total = 60
    sink = sink_with(_Keeping(delay=0.02))
    app = make_app(smtp_url=parse_smtp_url(f"smtp://127.0.0.1:{sink.port}"))
    env = worker_env(database_url, keyring_path, instance, smtp_port=sink.port, lease=60.0)

    with running(sink), Workers(env, instance.parent) as workers:
        procs = [workers.start("--batch-size", "5") for _ in range(2)]
        for proc in procs:
            workers.wait_started(proc)
        stored = enqueue(app, total)
        try:
            sink.wait_for(total, timeout=40)
            wait_until(
                lambda: all(r.status == OutboxStatus.SENT for r in outbox_rows(app)),
                10,
                "every row to be recorded as sent",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{workers.output()}") from None
        time.sleep(0.3)  # a duplicate would arrive now
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            assert proc.wait(timeout=10) == 0, workers.output()

    received = message_ids(sink.messages)
    assert len(received) == total
    assert len(set(received)) == total
    assert set(received) == set(stored.values())
    attempts = attempt_rows(app)
    assert len(attempts) == total
    assert all(a.error is None for a in attempts)
    per_worker: dict[str, int] = {}
    for attempt in attempts:
        per_worker[attempt.worker] = per_worker.get(attempt.worker, 0) + 1
    assert len(per_worker) == 2, per_worker
    assert all(count > 0 for count in per_worker.values())


# --- 6. no SMTP: .eml files ---------------------------------------------------------


def test_worker_once_without_smtp_writes_private_eml_and_prints_links(
    make_app, database_url, keyring_path, instance
):
    app = make_app()  # no smtp_url: the FileSender
    assert runtime(app).settings.smtp is None
    form_id = make_form(app)
    email = unique_email()
    response = app.test_client().post(
        f"/f/{form_id}",
        json={
            "email": email,
            "consent": ["newsletter"],
            "render_token": render_token(app, form_id),
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)

    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("LEADVAULT_")}
    env.update(worker_env(database_url, keyring_path, instance, smtp_port=None))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(cli, ["worker", "--once"], env=env, obj=app)
    finally:
        # The command reconfigures logging onto the runner's stream; put it back.
        root.handlers[:] = handlers
        root.setLevel(level)
    assert result.exit_code == 0, result.output
    [row] = outbox_rows(app)
    assert row.status == OutboxStatus.SENT

    files = list((instance / "mail").glob("*.eml"))
    assert len(files) == 1, files
    [eml] = files
    assert stat.S_IMODE(eml.stat().st_mode) == 0o600
    mail = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert mail["To"] == email
    assert str(mail["Message-ID"]).strip() == row.message_id
    text = mail.get_body(preferencelist=("plain",)).get_content()
    base_url = runtime(app).settings.base_url
    links = [word for word in text.split() if word.startswith(f"{base_url}/c/")]
    assert links, text

    assert email not in result.output
    assert email.split("@")[0] not in result.output
    assert eml.name in result.output
    for link in links:
        assert link.rstrip(".,)>") in result.output
