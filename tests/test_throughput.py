"""The worker keeps up (issue 13): inbox batches with per-item isolation, shared queues,
nothing lost when a worker is killed mid-batch."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from capture import definitions, queueing
from capture import service as capture_service
from capture.models import Submission
from consent import ledger
from consent import service as consent_service
from consent.ledger import RequestMeta
from consent.models import Suppression
from leadvault import db, inbox, leads, sqlite_writer
from leadvault.app import runtime
from leadvault.cli import cli
from leadvault.db import unit_of_work, vault_of
from leadvault.models import InboxItem, InboxReceipt, InboxStatus, Lead, OutboxMessage
from leadvault.settings import parse_smtp_url
from leadvault.worker import Worker
from tests.conftest import make_form, unique_email
from tests.hostile import Statements
from tests.test_outbox import (
    Workers,
    _Keeping,
    enqueue,
    message_ids,
    outbox_rows,
    running,
    sink_with,
    wait_until,
    worker_env,
)


def submit(app: Any, form_id: str, emails: list[str], **overrides: Any) -> None:
    """Queue submissions as the endpoint does (one sealed inbox row each)."""
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        form = capture_service.get_form(s, form_id)
        assert form is not None
        for email in emails:
            data = queueing.ValidSubmission(
                email=email,
                profile=overrides.get("profile", {"first_name": "Ada"}),
                message=None,
                purposes=overrides.get("purposes", ["newsletter"]),
                source={},
            )
            queueing.accept(s, form, data, language="en", meta=RequestMeta("192.0.2.1", "pytest"))


def count(app: Any, model: Any) -> int:
    with runtime(app).session_factory() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def ledger_ok(app: Any) -> ledger.Verdict:
    with runtime(app).session_factory() as s:
        return ledger.verify(s)


def batch_delete(statement: str) -> bool:
    """Whether ``statement`` is a batch's DELETE of its items (on SQLite not the one of
    items left with a receipt)."""
    return statement.startswith("DELETE FROM inbox WHERE") and "inbox_receipts" not in statement


@pytest.fixture
def whole_batches(monkeypatch):
    """SQLite batches end after a time budget; a slow test machine must not split these."""
    monkeypatch.setattr(inbox, "SQLITE_BATCH_SECONDS", 60.0)


def test_a_poisoned_item_is_recorded_and_the_rest_of_the_batch_is_stored(app, whole_batches):
    form_id = make_form(app)
    good = [unique_email(f"good{n}") for n in range(4)]
    submit(app, form_id, good[:2])
    # The form asks for no such purpose: storing this one raises (KeyError).
    submit(app, form_id, [unique_email("poison")], purposes=["no-such-purpose"])
    submit(app, form_id, good[2:])

    worker = Worker(app, batch_size=10)
    with Statements() as statements:
        assert worker.process_inbox() == 5
    worker.close()

    assert count(app, Lead) == 4  # the poisoned lead was rolled back with its savepoint
    assert count(app, Submission) == 4
    assert count(app, OutboxMessage) == 4
    with runtime(app).session_factory() as s:
        left = s.scalars(sa.select(InboxItem)).one()
    assert (left.status, left.attempts, left.last_error) == (InboxStatus.PENDING, 1, "KeyError")
    assert ledger_ok(app).ok
    assert ledger_ok(app).checked == 4
    # One batch, one transaction: the ledger head is locked once, rules read once,
    # and nothing is deleted from suppressions that hold none of these addresses.
    seen = statements.seen
    assert sum("consent_ledger_head" in s and s.startswith("SELECT") for s in seen) == 1
    assert sum(s.startswith("SELECT") and "scoring_rule_sets" in s for s in seen) <= 1
    assert not any(s.startswith("DELETE FROM suppressions") for s in seen)
    assert sum(batch_delete(s) for s in seen) == 1


def test_a_new_address_twice_in_one_batch_is_one_lead_with_the_later_values(app, whole_batches):
    """A new lead's attributes and consent states are queued as rows of the batch; a later
    item of the same address reads and changes them as stored ones."""
    form_id = make_form(
        app,
        fields=[
            definitions.FieldSpec("first_name", False),
            definitions.FieldSpec("company", False),
        ],
        purposes=[
            definitions.PurposeSpec("newsletter", True),
            definitions.PurposeSpec("sales_contact", False),
        ],
    )
    email, other = unique_email("twice"), unique_email("other")
    submit(app, form_id, [email], profile={"first_name": "Ada"})
    submit(app, form_id, [other])
    submit(
        app,
        form_id,
        [email],
        profile={"first_name": "Grace", "company": "Acme"},
        purposes=["newsletter", "sales_contact"],
    )

    worker = Worker(app, batch_size=10)
    with Statements() as statements:
        assert worker.process_inbox() == 3
    worker.close()

    assert sum(batch_delete(s) for s in statements.seen) == 1  # one batch
    assert (count(app, Lead), count(app, InboxItem)) == (2, 0)
    with app.app_context(), runtime(app).session_factory() as s:
        lead = leads.find_by_email(s, email)
        assert lead is not None
        assert leads.attributes_of(s, lead) == {"first_name": "Grace", "company": "Acme"}
        states = consent_service.states(s, lead.id)
        assert {p: c.status for p, c in states.items()} == {
            "newsletter": "pending",
            "sales_contact": "pending",
        }
        mails = s.scalar(sa.select(sa.func.count()).where(OutboxMessage.lead_id == lead.id))
    # Newsletter asked twice within the resend window: mailed once; sales contact once.
    assert mails == 2
    assert ledger_ok(app).ok
    assert ledger_ok(app).checked == 3


def test_a_lead_created_meanwhile_makes_the_batch_go_again_item_by_item(
    app, monkeypatch, whole_batches, caplog
):
    """The batch writes its new leads in one statement; one whose address another
    transaction stored after the batch looked (two workers) is skipped there, and the
    batch is done again with each item on its own: nothing fails, nothing is doubled."""
    from leadvault import leads

    form_id = make_form(app)
    fresh = [unique_email(f"fresh{n}") for n in range(3)]
    taken = unique_email("taken")
    submit(app, form_id, [taken])
    worker = Worker(app, batch_size=10)
    assert worker.process_inbox() == 1
    submit(app, form_id, [fresh[0], taken, *fresh[1:]])
    # As if the batch had read the leads before the other transaction committed.
    real = leads._batch_leads
    blind: list[bool] = []

    def not_seen(session: Any, index: bytes) -> Any:
        known = real(session, index)
        if known is not None and not blind:
            blind.append(True)
            known.clear()
        return known

    monkeypatch.setattr(leads, "_batch_leads", not_seen)
    with Statements() as statements:
        assert worker.process_inbox() == 4
    worker.close()
    assert blind
    # Seen as such (not as a failing batch end, which would go one transaction per item).
    assert "one by one" not in caplog.text
    # The optimistic round wrote its new leads in one statement (then went again).
    assert sum(s.startswith("INSERT INTO leads") for s in statements.seen) >= 2
    assert count(app, Lead) == 4
    assert count(app, Submission) == 5
    assert count(app, InboxItem) == 0
    assert ledger_ok(app).ok


def test_a_batch_that_cannot_be_committed_is_stored_item_by_item(app, monkeypatch, whole_batches):
    """When the batch's end fails (here: the ledger), each item is tried alone."""
    form_id = make_form(app)
    submit(app, form_id, [unique_email(f"one{n}") for n in range(3)])
    real_chain = ledger._chain
    calls: list[int] = []

    def chain_refusing_batches(session: Any, entries: list[Any]) -> None:
        calls.append(len(entries))
        if len(entries) > 1:
            raise RuntimeError("a batch")
        real_chain(session, entries)

    monkeypatch.setattr(ledger, "_chain", chain_refusing_batches)
    # The deferred flush holds the function it was given: the batch's first call.
    worker = Worker(app, batch_size=10)
    assert worker.process_inbox() == 3
    worker.close()
    assert calls == [3, 1, 1, 1]
    assert count(app, Lead) == 3
    assert count(app, InboxItem) == 0
    assert ledger_ok(app).ok


@pytest.mark.committing
def test_a_sqlite_batch_works_without_the_write_lock_and_checks_what_it_read(
    make_app, backend, monkeypatch, whole_batches, caplog
):
    """On SQLite a batch reads and handles its items in a snapshot: a request writes
    meanwhile without waiting for it. What the batch read (here: whether an address
    is suppressed) is checked when it takes the write lock; changed, the batch is done
    again under the lock, as if the other write had come first."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL's batch locks its rows instead (SKIP LOCKED)")
    app = make_app()
    other = make_app()  # another process's engine on the same database (a request)
    form_id = make_form(app)
    emails = [unique_email(f"snap{n}") for n in range(3)]
    submit(app, form_id, emails)
    handlers = runtime(app).inbox_handlers
    real = handlers[queueing.SUBMISSION]
    wrote: list[bool] = []
    writers: list[threading.Thread] = []

    def suppress() -> None:
        with other.app_context(), unit_of_work(runtime(other).session_factory) as s:
            s.add(Suppression(email_index=vault_of(s).blind_index(emails[0]), reason="erased"))

    def handler(session: Any, payload: dict[str, Any]) -> None:
        real(session, payload)
        if payload["email"] == emails[-1] and not wrote:
            writer = threading.Thread(target=suppress)
            writer.start()
            writer.join(10)  # would wait for the batch's commit if it held the lock
            wrote.append(not writer.is_alive())
            writers.append(writer)

    monkeypatch.setitem(handlers, queueing.SUBMISSION, handler)
    worker = Worker(app, batch_size=10)
    assert worker.process_inbox() == 3
    worker.close()
    for writer in writers:
        writer.join()
    assert wrote == [True], "the batch held the write lock while it handled its items"
    # The new submission lifts the suppression, as it would had it come after it.
    assert count(app, Suppression) == 0
    assert count(app, Lead) == 3
    assert count(app, Submission) == 3
    assert count(app, InboxItem) == 0
    assert "one by one" not in caplog.text
    assert ledger_ok(app).ok
    assert ledger_ok(app).checked == 3


@pytest.mark.committing
def test_a_submission_just_before_a_batch_takes_the_queue_files_lock_does_not_fail_it(
    make_app, backend, monkeypatch, whole_batches, caplog
):
    """SQLite: a batch holds the main file's lock and takes the queue file's only for its
    items' DELETE; submissions commit there meanwhile. Had the batch read the queue file
    before (a snapshot of it), its DELETE could not write over their commits (SQLITE_BUSY,
    not waited out) and the batch would fail and go again one item at a time."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL has no file locks")
    app = make_app()
    other = make_app()  # another process's engine on the same database (a request)
    form_id = make_form(app)
    submit(app, form_id, [unique_email(f"first{n}") for n in range(3)])
    endpoint = queue_as_the_endpoint(other, form_id)
    real = inbox.lock_queue
    submitted: list[bool] = []

    def lock_queue(session: Any) -> None:
        if not submitted:
            writer = threading.Thread(target=endpoint)
            writer.start()
            writer.join(10)
            submitted.append(not writer.is_alive())
        real(session)

    monkeypatch.setattr(inbox, "lock_queue", lock_queue)
    worker = Worker(app, batch_size=10)
    assert worker.process_inbox() == 3
    assert submitted == [True], "the submission waited for the batch"
    assert "one by one" not in caplog.text and "goes again" not in caplog.text
    assert worker.process_inbox() == 1
    worker.close()
    assert count(app, Submission) == 4
    assert count(app, InboxItem) == 0


def queue_as_the_endpoint(app: Any, form_id: str) -> Callable[[], None]:
    """A submission sealed and bound as ``capture.views._store`` does on SQLite; the
    function returned queues it as the endpoint does, on the queue file's lock alone."""
    app_runtime = runtime(app)
    with app.app_context(), app_runtime.session_factory() as s:
        form = capture_service.get_form(s, form_id)
        assert form is not None
        queued = queueing.sealed_submission(
            app_runtime.engine.dialect,
            app_runtime.vault,
            form,
            queueing.ValidSubmission(
                email=unique_email("endpoint"),
                profile={"first_name": "Ada"},
                message=None,
                purposes=["newsletter"],
                source={},
            ),
            language="en",
            meta=RequestMeta("192.0.2.1", "pytest"),
        )

    def queue() -> None:
        with db.short_write(app_runtime.session_factory, files=sqlite_writer.QUEUE) as c:
            assert queued.rowcount(c) == 1

    return queue


@pytest.mark.committing
def test_a_sqlite_batch_whose_item_went_meanwhile_is_done_again(
    make_app, backend, monkeypatch, whole_batches, caplog
):
    """An item the snapshot read but another writer removed before the batch took the
    write lock (erased, or stored by a second worker) is not stored again: the batch's
    DELETE of its items counts them, and the batch goes again without it."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL's batch locks its rows instead (SKIP LOCKED)")
    app = make_app()
    other = make_app()
    form_id = make_form(app)
    emails = [unique_email(f"gone{n}") for n in range(3)]
    submit(app, form_id, emails)
    handlers = runtime(app).inbox_handlers
    real = handlers[queueing.SUBMISSION]
    gone: list[int] = []
    writers: list[threading.Thread] = []

    def remove_first_item() -> None:
        with unit_of_work(runtime(other).session_factory) as s:
            first = s.scalar(sa.select(sa.func.min(InboxItem.id)))
            s.execute(sa.delete(InboxItem).where(InboxItem.id == first))
            gone.append(first)

    def handler(session: Any, payload: dict[str, Any]) -> None:
        real(session, payload)
        if payload["email"] == emails[-1] and not writers:
            writers.append(threading.Thread(target=remove_first_item))
            writers[0].start()
            writers[0].join(10)

    monkeypatch.setitem(handlers, queueing.SUBMISSION, handler)
    worker = Worker(app, batch_size=10)
    assert worker.process_inbox() == 2
    worker.close()
    writers[0].join()
    assert len(gone) == 1
    assert count(app, Lead) == 2
    assert count(app, Submission) == 2
    assert count(app, InboxItem) == 0
    assert "one by one" not in caplog.text
    assert ledger_ok(app).ok


@pytest.mark.committing
def test_two_workers_on_postgresql_share_the_inbox_deliver_once_and_keep_the_ledger(
    backend, make_app, database_url, keyring_path, instance
):
    if backend != "postgresql":
        pytest.skip("concurrent workers (FOR UPDATE SKIP LOCKED) are a PostgreSQL feature")
    total = 120
    sink = sink_with(_Keeping())
    app = make_app(smtp_url=parse_smtp_url(f"smtp://127.0.0.1:{sink.port}"))
    form_id = make_form(app)
    env = worker_env(database_url, keyring_path, instance, smtp_port=sink.port, lease=60.0)
    with running(sink), Workers(env, instance.parent) as workers:
        procs = [workers.start("--batch-size", "10") for _ in range(2)]
        for proc in procs:
            workers.wait_started(proc)
        emails = [unique_email(f"pair{n}") for n in range(total)]
        for start in range(0, total, 20):  # arriving while both work
            submit(app, form_id, emails[start : start + 20])
        try:
            sink.wait_for(total, timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{workers.output()}") from None
        time.sleep(0.5)  # a duplicate would arrive now
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            assert proc.wait(timeout=15) == 0, workers.output()

    recipients = sorted(str(m["To"]) for m in sink.messages)
    assert recipients == sorted(emails)  # every lead mailed, none twice
    assert count(app, Lead) == total
    assert count(app, InboxItem) == 0
    runner = CliRunner()
    result = runner.invoke(cli, ["consent", "verify"], obj=app)
    assert result.exit_code == 0, result.output
    assert f"{total} entries verified" in result.output


@pytest.mark.committing
def test_a_worker_killed_mid_batch_loses_nothing(make_app, database_url, keyring_path, instance):
    # Enough that the worker cannot have stored them all 0.3 s after it started: a quiet
    # machine's worker stores ~1 250 a second on SQLite (300 were sometimes all stored).
    total = 1000
    sink = sink_with(_Keeping())
    app = make_app(smtp_url=parse_smtp_url(f"smtp://127.0.0.1:{sink.port}"))
    form_id = make_form(app)
    emails = [unique_email(f"kill{n}") for n in range(total)]
    submit(app, form_id, emails)
    env = worker_env(database_url, keyring_path, instance, smtp_port=sink.port, lease=2.0)
    with running(sink), Workers(env, instance.parent) as workers:
        first = workers.start("--batch-size", "200")
        # Killed while its first batch of 200 is not committed yet, or soon after.
        workers.wait_started(first)
        time.sleep(0.3)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        stored_at_kill = count(app, Lead)
        assert stored_at_kill < total, "the inbox was drained before the kill"
        second = workers.start("--batch-size", "50")
        try:
            sink.wait_for(total, timeout=90)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{workers.output()}") from None
        time.sleep(0.5)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=15) == 0, workers.output()

    assert count(app, Lead) == total
    assert count(app, Submission) == total
    assert count(app, InboxItem) == 0
    recipients = [str(m["To"]) for m in sink.messages]
    assert sorted(set(recipients)) == sorted(emails)
    assert ledger_ok(app).ok
    assert ledger_ok(app).checked == total


def test_items_whose_delete_was_lost_are_not_stored_twice(app, backend, whole_batches):
    """SQLite commits a batch's leads (main file) before its items' DELETE (queue file): a
    worker killed between the two leaves stored items queued. Their receipts, committed
    with the leads, keep the next batch from storing them again."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL commits a batch once")
    form_id = make_form(app)
    first = [unique_email(f"lost{n}") for n in range(5)]
    submit(app, form_id, first)
    factory = runtime(app).session_factory
    with factory() as s:
        queued = s.execute(sa.select(InboxItem.__table__)).mappings().all()
    worker = Worker(app, batch_size=10)
    assert worker.process_inbox() == 5
    assert receipts(app) == {row["id"] for row in queued}
    # The DELETE lost: the items are queued again, as they were.
    with unit_of_work(factory) as s:
        s.execute(sa.insert(InboxItem.__table__), [dict(row) for row in queued])
    later = unique_email("later")
    submit(app, form_id, [later])
    with factory() as s:
        later_id = s.scalars(sa.select(InboxItem.id).order_by(InboxItem.id.desc())).first()
    assert later_id is not None and later_id > max(receipts(app))  # no id is used twice

    assert worker.process_inbox() == 1
    assert count(app, Submission) == 6
    assert count(app, InboxItem) == 0
    # A receipt goes only once its item is gone, in a later transaction than the item.
    assert receipts(app) == {row["id"] for row in queued} | {later_id}
    submit(app, form_id, [unique_email("last")])
    assert worker.process_inbox() == 1
    assert len(receipts(app)) == 1
    worker.close()
    assert count(app, Lead) == 7
    assert ledger_ok(app).ok


def receipts(app: Any) -> set[int]:
    with runtime(app).session_factory() as s:
        return set(s.scalars(sa.select(InboxReceipt.item_id)))


def test_the_inbox_claims_skip_locked_items_on_postgresql(backend, app):
    """A batch is taken with FOR UPDATE SKIP LOCKED: a second worker passes over it."""
    if backend != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's")
    form_id = make_form(app)
    submit(app, form_id, [unique_email("lock")])
    with Statements() as statements, unit_of_work(runtime(app).session_factory) as s:
        assert len(inbox._take(s, 10)) == 1
    assert any("FOR UPDATE SKIP LOCKED" in s for s in statements.seen)


def test_sent_mail_bodies_are_deleted_after_the_retention_period(make_app, smtp_server):
    import datetime as dt

    from consent import retention
    from leadvault import clock
    from leadvault.models import OutboxStatus
    from leadvault.outbox import enqueue_mail, read_content, read_subject
    from tests.conftest import _smtp_config, deliver
    from tests.test_outbox import content

    app = make_app(smtp_url=_smtp_config(smtp_server.port), sent_mail_retention_days=30)
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        sent_id = enqueue_mail(s, content("sent@example.org", 1), template="t", lead=None).id
    assert deliver(app) == 1
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        queued = enqueue_mail(s, content("queued@example.org", 2), template="t", lead=None)
        queued.next_attempt_at = clock.now() + dt.timedelta(days=365)  # waits, unsent

    def row(outbox_id: int) -> OutboxMessage:
        with runtime(app).session_factory() as s:
            return s.get(OutboxMessage, outbox_id)

    before = row(sent_id)
    assert before.status == OutboxStatus.SENT and before.payload is not None

    def purge() -> int:
        with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
            return retention.purge(s)["sent_mail_bodies_forgotten"]

    clock.freeze(clock.now() + dt.timedelta(days=29))
    assert purge() == 0
    clock.freeze(clock.now() + dt.timedelta(days=2))
    assert purge() == 1
    gone = row(sent_id)
    assert gone.payload is None
    assert (gone.message_id, gone.status, gone.sent_at, gone.template, gone.kind) == (
        before.message_id,
        OutboxStatus.SENT,
        before.sent_at,
        "t",
        before.kind,
    )
    with app.app_context(), runtime(app).session_factory() as s:
        # What the access export lists stays readable; the body is gone for good.
        assert read_subject(s, s.get(OutboxMessage, sent_id)) == "Test mail 1"
        with pytest.raises(ValueError, match="no body"):
            read_content(s, s.get(OutboxMessage, sent_id))
        # A mail not sent yet keeps its body, however old.
        assert read_content(s, s.get(OutboxMessage, queued.id)).to == "queued@example.org"
    assert purge() == 0


@pytest.mark.committing
def test_a_connection_the_server_dropped_is_replaced_without_a_ping(backend, database_url):
    """No round trip per checkout (no pre-ping); a dropped connection is still replaced."""
    if backend != "postgresql":
        pytest.skip("SQLite has no server to drop a connection")
    from leadvault.engine import create_engine
    from leadvault.settings import parse_database_url

    engine = create_engine(parse_database_url(database_url), pool_size=1)
    try:
        with engine.connect() as connection:
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with Statements() as statements, engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() == pid
        assert statements.seen == ["SELECT pg_backend_pid()"]  # the checkout sent nothing
        admin = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
        with admin.connect() as other:
            assert other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})").scalar()
        admin.dispose()
        time.sleep(0.2)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
    finally:
        engine.dispose()


class _Dropping(_Keeping):
    """Drops the connection at the ``drop_at``-th message, before keeping it or after
    (the client never hears the 250); counts the SMTP sessions used."""

    def __init__(self, drop_at: int, *, after_keeping: bool) -> None:
        super().__init__()
        self.drop_at = drop_at
        self.after_keeping = after_keeping
        self.seen = 0
        self.sessions: set[int] = set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.seen += 1
        self.sessions.add(id(session))
        if self.seen != self.drop_at:
            return await super().handle_DATA(server, session, envelope)
        if self.after_keeping:
            await super().handle_DATA(server, session, envelope)
        server.transport.close()
        return "421 closing"  # never reaches the client


@pytest.mark.parametrize("after_keeping", [False, True], ids=["before-250", "reply-lost"])
def test_a_mail_batch_survives_the_server_dropping_the_connection(make_app, after_keeping):
    from leadvault.models import OutboxStatus

    total = 12
    handler = _Dropping(5, after_keeping=after_keeping)
    sink = sink_with(handler)
    app = make_app(smtp_url=parse_smtp_url(f"smtp://127.0.0.1:{sink.port}"))
    stored = enqueue(app, total)
    worker = Worker(app, batch_size=total)
    with running(sink):

        def all_sent() -> bool:
            worker.deliver_mail()
            return all(row.status == OutboxStatus.SENT for row in outbox_rows(app))

        wait_until(all_sent, 20, "every mail to be sent")
        worker.close()

    received = message_ids(sink.messages)
    assert set(received) == set(stored.values())  # no loss
    if after_keeping:
        # The server kept the 5th mail but its reply was lost: sent again (at least once).
        assert len(received) == total + 1
    else:
        assert len(received) == total
    # One connection carried the batch; one more after the drop.
    assert len(handler.sessions) == 2
