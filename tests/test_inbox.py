"""The inbox: accepted work survives a failing handler, is retried, and is not kept forever."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from leadvault import clock, inbox_queueing
from leadvault.app import runtime
from leadvault.db import unit_of_work
from leadvault.models import InboxItem, InboxStatus
from tests.conftest import _smtp_config, process


def test_failing_handler_is_retried_then_failed_and_forgotten(make_app, smtp_server):
    app = make_app(smtp_url=_smtp_config(smtp_server.port), outbox_max_attempts=2)
    calls = []

    def explode(session, payload):
        calls.append(payload)
        raise ValueError(f"cannot store {payload['email']}")  # quotes personal data

    runtime(app).inbox_handlers["test.explode"] = explode
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        inbox_queueing.enqueue(s, "test.explode", {"email": "quokka@example.org"})

    def item():
        with runtime(app).session_factory() as s:
            return s.scalars(sa.select(InboxItem)).one_or_none()

    process(app)
    first = item()
    assert calls == [{"email": "quokka@example.org"}]
    assert (first.status, first.attempts, first.last_error) == (
        InboxStatus.PENDING,
        1,
        "ValueError",
    )
    assert b"quokka" not in first.payload  # sealed at rest

    clock.freeze(clock.now() + dt.timedelta(minutes=5))  # past the retry delay
    process(app)
    assert (item().status, item().attempts) == (InboxStatus.FAILED, 2)
    process(app)
    assert len(calls) == 2  # failed items are not retried any more

    from consent import retention

    clock.freeze(clock.now() + dt.timedelta(days=8))
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        counts = retention.purge(s)
    assert counts["failed_submissions_forgotten"] == 1
    assert item() is None


def test_erasure_drops_pending_work_about_the_lead(app, client, smtp_server):
    """A submission still waiting in the inbox must not recreate a lead erased meanwhile."""
    from consent import rights
    from leadvault import leads
    from tests.conftest import deliver, make_form, render_token, unique_email

    form_id = make_form(app)
    email, other = unique_email("erased"), unique_email("other")

    def submit(address):
        response = client.post(
            f"/f/{form_id}",
            json={
                "email": address,
                "consent": ["newsletter"],
                "render_token": render_token(app, form_id),
            },
        )
        assert response.status_code == 200

    submit(email)
    deliver(app)  # the lead exists now
    submit(email)  # asks again; still in the inbox
    submit(other)
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        assert rights.erase_by_email(s, email)
    process(app)
    with app.app_context(), runtime(app).session_factory() as s:
        assert leads.find_by_email(s, email) is None
        assert leads.find_by_email(s, other) is not None
        assert s.scalar(sa.select(sa.func.count()).select_from(InboxItem)) == 0
