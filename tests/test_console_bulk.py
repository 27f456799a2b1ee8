"""Bulk actions on the console's lead list (issue 12.3): the checkboxes of one page,
a stage change with a reason, an erasure after a confirmation step, an export of the
selection; each lead audited on its own, through the same services as one lead."""

from __future__ import annotations

import csv
import io
import re

import sqlalchemy as sa

from leadvault.audit import Action
from leadvault.models import AuditEntry, Lead
from tests import factories
from tests.factories import uow
from tests.test_console import audit_count, csrf, one_h1, text


def _stage(app, lead_id) -> str:
    from scoring.models import LeadScore

    with uow(app) as s:
        return s.scalar(sa.select(LeadScore.stage).where(LeadScore.lead_id == lead_id)) or "new"


def test_stage_change_of_the_chosen_leads_with_a_reason(app):
    first, second, untouched = (factories.lead(app) for _ in range(3))
    client, _ = factories.signed_in_client(app, "marketing")
    listing = text(client.get("/console/leads"))
    assert f'name="lead" value="{first}"' in listing  # a checkbox per row, no script needed
    token = csrf(client, "/console/leads")
    chosen = {"lead": [str(first), str(second)], "to": "mql", "csrf_token": token}

    no_reason = client.post("/console/leads/bulk/stage", data=chosen)
    assert no_reason.status_code == 422 and "Please choose a reason" in text(no_reason)
    nothing = client.post(
        "/console/leads/bulk/stage", data={"to": "mql", "reason": "qualified", "csrf_token": token}
    )
    assert nothing.status_code == 422 and "Choose at least one lead" in text(nothing)
    assert _stage(app, first) == "new"

    before = audit_count(app, Action.LEAD_STAGE_CHANGED)
    done = client.post("/console/leads/bulk/stage", data={**chosen, "reason": "qualified"})
    assert done.status_code == 200
    one_h1(text(done))
    assert "2 of 2 leads moved" in text(done)
    assert (_stage(app, first), _stage(app, second), _stage(app, untouched)) == (
        "mql",
        "mql",
        "new",
    )
    assert audit_count(app, Action.LEAD_STAGE_CHANGED) == before + 2

    # A lead that may not make the move keeps its stage and says why; the others move.
    again = client.post(
        "/console/leads/bulk/stage",
        data={
            "lead": [str(first), str(untouched)],
            "to": "sal",
            "reason": "qualified",
            "csrf_token": token,
        },
    )
    assert again.status_code == 200
    assert "1 of 2 leads moved" in text(again)
    assert "cannot move to that stage" in text(again)
    assert (_stage(app, first), _stage(app, untouched)) == ("sal", "new")


def test_erase_asks_first_then_erases_each_lead_audited(app):
    doomed = [factories.lead(app) for _ in range(2)]
    kept = factories.lead(app)
    marketing, _ = factories.signed_in_client(app, "marketing")
    token = csrf(marketing, "/console/leads")
    chosen = {"lead": [str(i) for i in doomed], "csrf_token": token}
    assert marketing.post("/console/leads/bulk/erase", data=chosen).status_code == 403

    client, _ = factories.signed_in_client(app, "privacy")
    token = csrf(client, "/console/leads")
    chosen["csrf_token"] = token
    ask = client.post("/console/leads/bulk/erase", data=chosen)
    assert ask.status_code == 200
    one_h1(text(ask))
    assert "Erase 2 leads?" in text(ask)
    with uow(app) as s:
        assert s.get(Lead, doomed[0]) is not None  # nothing happens before the confirmation

    before = audit_count(app, Action.LEAD_ERASED)
    done = client.post("/console/leads/bulk/erase", data={**chosen, "confirmed": "1"})
    assert done.status_code == 200 and "2 leads were erased" in text(done)
    with uow(app) as s:
        assert all(s.get(Lead, i) is None for i in doomed)
        assert s.get(Lead, kept) is not None
        erased = s.scalars(
            sa.select(AuditEntry.object_id).where(AuditEntry.action == Action.LEAD_ERASED)
        ).all()
    assert audit_count(app, Action.LEAD_ERASED) == before + 2
    assert {str(i) for i in doomed} <= set(erased)
    # Sent again (a reload): nothing left to erase, a message instead of an error.
    gone = client.post("/console/leads/bulk/erase", data={**chosen, "confirmed": "1"})
    assert gone.status_code == 422 and "None of the chosen leads" in text(gone)


def test_export_of_the_selection_streams_only_the_chosen_leads(app):
    chosen = [factories.lead(app, factories.unique_email("pick")) for _ in range(2)]
    factories.lead(app, factories.unique_email("other"))
    client, _ = factories.signed_in_client(app, "marketing")
    listing = text(client.get("/console/leads"))
    action = re.search(r'formaction="([^"]+)"[^>]*>Export as CSV', listing)
    assert action, "the list offers the export of the chosen leads"
    response = client.post(
        action.group(1),
        data={
            "lead": [str(i) for i in chosen],
            "format": "csv",
            "columns": "id,email",
            "csrf_token": csrf(client, "/console/leads"),
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert sorted(row["id"] for row in rows) == sorted(str(i) for i in chosen)
    with uow(app) as s:
        entry = s.scalars(
            sa.select(AuditEntry).where(AuditEntry.action == Action.LEADS_EXPORTED)
        ).one()
    from leadvault import audit

    assert audit.detail_of(entry)["filter"] == "2 leads chosen one by one"
    assert audit.detail_of(entry)["rows"] == 2


def test_sales_act_only_on_their_own_leads(app):
    salesperson = factories.salesperson(app, factories.unique_email("sp"), "Sam")
    foreign = factories.lead(app)
    client, _ = factories.signed_in_client(app, "sales", salesperson_id=salesperson)
    refused = client.post(
        "/console/leads/bulk/stage",
        data={
            "lead": [str(foreign)],
            "to": "mql",
            "reason": "qualified",
            "csrf_token": csrf(client, "/console/leads"),
        },
    )
    assert refused.status_code == 422 and "None of the chosen leads" in text(refused)
    assert _stage(app, foreign) == "new"
    assert client.post("/console/leads/bulk/erase", data={"lead": [str(foreign)]}).status_code in (
        400,
        403,
    )


def test_only_lead_ids_as_the_checkboxes_carry_them(app):
    """A value that merely starts with a lead id, or spells it another way, is refused
    (the first 36 characters used to be read and the rest ignored)."""
    lead = factories.lead(app)
    client, _ = factories.signed_in_client(app, "marketing")
    token = csrf(client, "/console/leads")
    for value in (f"{lead}garbage", f"{{{lead}}}", f"urn:uuid:{lead}", lead.hex, "x" * 10_000):
        answer = client.post(
            "/console/leads/bulk/stage",
            data={"lead": [value], "to": "mql", "reason": "qualified", "csrf_token": token},
        )
        assert answer.status_code == 422, value
        assert "could not be understood" in text(answer)
    upper = client.post(
        "/console/leads/bulk/stage",
        data={"lead": [str(lead).upper()], "to": "mql", "reason": "qualified", "csrf_token": token},
    )
    assert upper.status_code == 200 and "1 of 1 leads moved" in text(upper)
    assert _stage(app, lead) == "mql"
