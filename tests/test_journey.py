"""One opt-in confirmation is one step of a lead's journey, however many purposes it
confirmed (each purpose is its own ``optin_confirmed`` event, scored on its own): on
the handoff page and mail, and in the console's activity list."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import sqlalchemy as sa

from scoring import handoff, journey
from scoring.models import Event
from tests import factories
from tests.conftest import deliver
from tests.hostile import SALES, contact_form, setup_sales, stored_lead, uow

CONFIRMED = "Confirmed the email address"
PROFILE = {"first_name": "Ada", "country": "DE", "company_size": "250-999"}


@dataclasses.dataclass
class _Row:
    type: str
    occurred_at: dt.datetime
    awards: dict[str, float]


def test_steps_join_the_events_of_one_confirmation_only():
    t = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    rows = [  # newest first, as the pages read them
        _Row("page_view", t + dt.timedelta(hours=2), {"blog": 1.0}),
        _Row("optin_confirmed", t + dt.timedelta(hours=1), {}),  # a second confirmation
        _Row("optin_confirmed", t + dt.timedelta(microseconds=40), {"newsletter": 7.0}),
        _Row("optin_confirmed", t, {}),  # stamped one by one before the signal had ``at``
        _Row("form_submitted", t - dt.timedelta(minutes=5), {}),
    ]
    steps = journey.steps(rows)
    assert [[r.type for r in step] for step in steps] == [
        ["page_view"],
        ["optin_confirmed"],
        ["optin_confirmed", "optin_confirmed"],
        ["form_submitted"],
    ]
    assert journey.points(steps[2]) == 7.0
    assert journey.steps(reversed(rows))[1] == [rows[3], rows[2]]  # oldest first alike


def test_one_confirmation_of_three_purposes_is_one_step(app, client, smtp_server):
    setup_sales(app)
    lead = stored_lead(app, contact_form(app), PROFILE, {"page_url": "https://www.example.com/"})
    with uow(app) as s:
        confirmed = list(
            s.scalars(
                sa.select(Event.occurred_at).where(
                    Event.lead_id == lead.lead_id, Event.type == "optin_confirmed"
                )
            )
        )
        assert len(confirmed) == 3  # newsletter, sales_contact, tracking: scored each
        assert len(set(confirmed)) == 1  # at the confirmation's one time
        offered = handoff.open_handoff(s, lead.lead_id)
        page_url = "/" + handoff.handoff_url(s, offered).split("/", 3)[3]

    page = client.get(page_url).get_data(as_text=True)
    assert page.count(CONFIRMED) == 1
    deliver(app)
    [mail] = [m for m in smtp_server.messages if m["To"] == SALES]
    assert mail.get_body(("plain",)).get_content().count(CONFIRMED) == 1

    staff, _user = factories.signed_in_client(app, "owner")
    console = staff.get(f"/console/leads/{lead.lead_id}").get_data(as_text=True)
    assert len(re.findall(rf"{CONFIRMED} \(", console)) == 1  # one step, in words
