"""The time zone a visitor's browser sends with a submission (a hidden field).

A lead keeps it only when it names a zone of the IANA database; anything else is
dropped and the submission goes on as if the browser sent none.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from leadvault import leads
from leadvault.app import runtime
from leadvault.db import unit_of_work
from leadvault.models import InboxItem
from tests.conftest import deliver, make_form, render_token, unique_email


# "Europe" and "Etc" are folders of the zone database, not zones: opening them raised
# IsADirectoryError, which the worker retried forever (the lead never came to be).
@pytest.mark.parametrize(
    ("sent", "kept"),
    [("Europe/Berlin", "Europe/Berlin"), ("Europe", None), ("Etc", None), ("No/Such", None)],
)
def test_a_lead_keeps_only_a_real_zone_and_is_never_lost_over_one(app, client, sent, kept):
    form_id = make_form(app)
    email = unique_email()
    answer = client.post(
        f"/f/{form_id}",
        data={
            "email": email,
            "consent": "newsletter",
            "time_zone": sent,
            "render_token": render_token(app, form_id),
        },
    )
    assert answer.status_code == 200
    assert deliver(app) == 1  # the opt-in mail
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(InboxItem)) == 0
        lead = leads.find_by_email(s, email)
        assert lead is not None
        assert leads.attributes_of(s, lead).get("time_zone") == kept
