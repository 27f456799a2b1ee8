"""Issue 16's acceptance, end to end: real SMTP (aiosmtpd), a frozen clock, the real
outbox, worker tick, click redirect, one-click unsubscribe and scoring."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from leadvault import clock
from leadvault.app import runtime
from leadvault.worker import Worker
from nurture import tick
from nurture.models import Enrollment, Send
from scoring import routing, rules, scores
from scoring.models import Handoff, LeadScore
from tests.conftest import _smtp_config, deliver, unique_email
from tests.nurture_helpers import (
    THREE_STEPS,
    form,
    lead,
    links,
    load_rules,
    load_sequence,
    path_of,
    text_of,
    uow,
)

BERLIN = ZoneInfo("Europe/Berlin")
# Monday 2 March 2026, 09:30 in Berlin.
START = dt.datetime(2026, 3, 2, 8, 30, tzinfo=dt.UTC)


def run_tick(app):
    with uow(app) as s:
        return tick.run(s)


def new_mails(smtp_server, seen: list) -> list:
    fresh = smtp_server.messages[len(seen) :]
    seen.extend(fresh)
    return fresh


def nurture_mails(mails, key: str) -> list:
    return [m for m in mails if str(m["Subject"]).startswith(key)]


def score_of(app, lead_id) -> float:
    with uow(app) as s:
        return scores.explain(s, lead_id, rules.active(s)).score


def run_of(app, lead_id, key="a") -> Enrollment:
    with uow(app) as s:
        row = s.scalars(
            sa.select(Enrollment).where(
                Enrollment.lead_id == lead_id, Enrollment.sequence_key == key
            )
        ).one()
        s.expunge(row)
        return row


def test_acceptance_click_scores_mql_handoff_leaves_and_unsubscribe_stops(make_app, smtp_server):
    app = make_app(smtp_url=_smtp_config(smtp_server.port), time_zone="Europe/Berlin")
    client = app.test_client()
    clock.freeze(START)
    load_rules(app)
    with uow(app) as s:
        routing.add_person(s, email="anna@sales.example", name="Anna", language="de")
    load_sequence(app, THREE_STEPS.format(key="a"))
    form_id = form(app)
    julia = lead(
        app, form_id, unique_email("julia"), purposes=("newsletter", "tracking", "sales_contact")
    )
    other = lead(app, form_id, unique_email("otto"), purposes=("newsletter",))
    seen: list = []
    deliver(app)
    new_mails(smtp_server, seen)  # opt-in and welcome mails

    # Both entered on confirming the newsletter; the tick sends step 1 at once.
    result = run_tick(app)
    assert (result.due, result.sent, result.waiting) == (2, 2, 2)
    deliver(app)
    first = nurture_mails(new_mails(smtp_server, seen), "a one")
    assert len(first) == 2
    by_lead = {m["To"]: m for m in first}
    with uow(app) as s:
        from leadvault import leads

        julia_address = leads.email_of(s, leads.get(s, julia))
        otto_address = leads.email_of(s, leads.get(s, other))
    julia_mail, otto_mail = by_lead[julia_address], by_lead[otto_address]
    for mail in (julia_mail, otto_mail):
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "/u/" in str(mail["List-Unsubscribe"])
        assert str(mail["List-Id"]) == '"Three steps" <a.nurture.localhost>'
        assert text_of(mail).startswith("Hi Julia,")
    # Tracking consent: links go through the redirect; without it, straight to the target.
    tracked = links(julia_mail)
    assert (
        len(tracked) == 2 and "www.example.com" not in text_of(julia_mail).split("Unsubscribe")[0]
    )
    assert links(otto_mail) == []
    assert "https://www.example.com/guide" in text_of(otto_mail)

    # Julia clicks: GET (what a link scanner does) changes nothing, the page's POST counts.
    before = score_of(app, julia)
    page = client.get(path_of(tracked[0]))
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert "form-action 'self' https://www.example.com" in page.headers["Content-Security-Policy"]
    assert client.head(path_of(tracked[0])).status_code == 200
    assert score_of(app, julia) == before
    click = client.post(path_of(tracked[0]))
    assert click.status_code == 303
    assert click.headers["Location"] == "https://www.example.com/guide"
    assert score_of(app, julia) == before + 15
    again = client.post(path_of(tracked[0]), data={"js": "1"})  # counted once per link
    assert again.status_code == 204
    assert score_of(app, julia) == before + 15

    # Otto unsubscribes with RFC 8058 one-click from the nurture mail.
    unsubscribe = re.search(r"<(http://[^>]+/u/[^>]+)>", str(otto_mail["List-Unsubscribe"]))
    assert unsubscribe is not None
    done = app.test_client().post(
        path_of(unsubscribe.group(1)), data={"List-Unsubscribe": "One-Click"}
    )
    assert done.status_code == 200
    assert run_of(app, other).exit_reason == "unsubscribed"

    # One day later nothing is due; after the two-day wait step 2 goes to Julia only.
    clock.advance(dt.timedelta(days=1))
    assert run_tick(app).due == 0
    clock.advance(dt.timedelta(days=1))
    result = run_tick(app)
    assert (result.due, result.sent) == (1, 1)
    deliver(app)
    [second] = nurture_mails(new_mails(smtp_server, seen), "a two")
    assert second["To"] == julia_address

    # Her click on step 2 makes her an MQL; she is handed to sales and leaves.
    [case_link] = links(second)
    assert client.post(path_of(case_link)).status_code == 303
    with uow(app) as s:
        assert s.get(LeadScore, julia).stage == "mql"
        assert (
            s.scalars(sa.select(Handoff.status).where(Handoff.lead_id == julia)).one() == "offered"
        )
    run = run_of(app, julia)
    assert (run.status, run.exit_reason) == ("exited", "handoff:offered")
    assert run.mql_after == "second"

    # Step 3 never comes, for either of them.
    clock.advance(dt.timedelta(days=3))
    assert run_tick(app).due == 0
    deliver(app)
    assert nurture_mails(new_mails(smtp_server, seen), "a ") == []
    with uow(app) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Send)) == 3


FAST = """
[sequence]
key = "b"
name = "Fast"
purpose = "newsletter"

[trigger]
on = "purpose_confirmed"

[[steps]]
name = "b1"
mail = "m1"

[[steps]]
name = "w1"
wait = { hours = 1 }

[[steps]]
name = "b2"
mail = "m2"

[[steps]]
name = "w2"
wait = { hours = 1 }

[[steps]]
name = "b3"
mail = "m3"

[mails.m1.en]
subject = "b one"
markdown = "{{ greeting }} one"

[mails.m1.de]
subject = "b eins"
markdown = "{{ greeting }} eins"

[mails.m2.en]
subject = "b two"
markdown = "{{ greeting }} two"

[mails.m2.de]
subject = "b zwei"
markdown = "{{ greeting }} zwei"

[mails.m3.en]
subject = "b three"
markdown = "{{ greeting }} three"

[mails.m3.de]
subject = "b drei"
markdown = "{{ greeting }} drei"
"""


def test_acceptance_two_sequences_respect_the_cap_and_quiet_hours(make_app, smtp_server):
    app = make_app(smtp_url=_smtp_config(smtp_server.port), time_zone="Europe/Berlin")
    # Monday 19:30 in Berlin: half an hour before quiet hours begin.
    clock.freeze(dt.datetime(2026, 3, 2, 18, 30, tzinfo=dt.UTC))
    load_sequence(app, THREE_STEPS.format(key="a"))
    load_sequence(app, FAST)
    form_id = form(app)
    lead_id = lead(app, form_id, unique_email("third"), purposes=("newsletter",))
    seen: list = []
    deliver(app)
    new_mails(smtp_server, seen)
    # The worker runs the tick as one of its jobs.
    assert "nurture-tick" in [job.name for job in runtime(app).jobs]
    worker = Worker(app)
    received: list[tuple[dt.datetime, str]] = []
    end = clock.now() + dt.timedelta(days=22)
    while clock.now() < end:
        worker.run_due_jobs()
        worker._last_run.clear()  # the frozen clock moves faster than the job interval
        deliver(app)
        for mail in new_mails(smtp_server, seen):
            if re.match(r"^[ab] ", str(mail["Subject"])):
                received.append((clock.now(), str(mail["Subject"])))
        with uow(app) as s:
            due = s.scalar(sa.select(sa.func.min(Enrollment.due_at)))
        # Jump to the next due step, but look at least every three hours (quiet hours).
        step = dt.timedelta(hours=3)
        target = min(due, clock.now() + step) if due is not None else clock.now() + step
        clock.freeze(max(target, clock.now() + dt.timedelta(minutes=1)))
    worker.sender.close()

    # Nothing is dropped: all six mails arrive, the cap spreads them over three weeks.
    assert sorted(subject for _at, subject in received) == sorted(
        ["a one", "a two", "a three", "b one", "b two", "b three"]
    )
    for at, subject in received:
        local = at.astimezone(BERLIN).time()
        assert dt.time(8, 0) <= local < dt.time(20, 0), (subject, at)
        window = [other for other, _s in received if at - dt.timedelta(days=7) < other <= at]
        assert len(window) <= 2, (subject, at, window)
    with uow(app) as s:
        held = s.scalars(sa.select(Send.step).where(Send.lead_id == lead_id)).all()
    assert len(held) == 6
