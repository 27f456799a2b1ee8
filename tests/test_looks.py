"""Every look at a lead's decrypted data on a page behind a signed link is in the audit
trail (``leadvault.looks``): the salesperson's handoff page, the lead's preference
center and correction form. Who and what, never a value; HEAD and refused links leave
nothing; a refused POST keeps its look but none of its change."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from consent import correction, rights
from leadvault import audit
from leadvault.models import AuditEntry
from scoring import handoff
from scoring.models import Handoff
from tests.factories import tampered
from tests.hostile import contact_form, setup_sales, stored_lead, uow

PROFILE = {
    "first_name": "Ottoline",
    "company": "Engines Ltd",
    "job_title": "Head of Engineering",
    "country": "DE",  # routed to the team "dach"
    "company_size": "250-999",
}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def _looks(app: Any, *, mails: bool = False) -> list[AuditEntry]:
    """The lead.revealed entries: of pages, or (``mails``) of the handoff mails."""
    with uow(app) as s:
        entries = s.scalars(
            sa.select(AuditEntry)
            .where(AuditEntry.action == audit.Action.LEAD_REVEALED)
            .order_by(AuditEntry.id)
        )
        return [e for e in entries if audit.detail_of(e).get("via", "").endswith("_mail") == mails]


def _offered(app: Any) -> tuple[Any, Handoff, str]:
    setup_sales(app)
    lead = stored_lead(app, contact_form(app), PROFILE, {"page_url": "https://www.example.com/"})
    with uow(app) as s:
        offered = handoff.open_handoff(s, lead.lead_id)
        assert offered is not None and offered.person_id is not None
        return lead, offered, _path(handoff.handoff_url(s, offered))


def _assert_pseudonymous(entry: AuditEntry, *values: str) -> None:
    stored = repr([entry.actor, entry.object_id, entry.detail, entry.ip_prefix])
    for value in values:
        assert value not in stored


def test_the_handoff_page_records_the_salespersons_look(app, client):
    lead, offered, page_url = _offered(app)
    assert client.head(page_url).status_code == 200
    assert client.get(tampered(page_url)).status_code == 400  # a broken link shows nothing
    assert _looks(app) == []

    page = client.get(page_url)
    assert page.status_code == 200 and "Ottoline" in page.get_data(as_text=True)
    [look] = _looks(app)
    assert look.actor == f"salesperson:{offered.person_id}"
    assert (look.object_type, look.object_id) == ("lead", str(lead.lead_id))
    detail = audit.detail_of(look)
    assert detail["via"] == "handoff_page"
    assert {"email", "first_name", "company", "job_title"} <= set(detail["fields"])
    assert look.ip_prefix is not None
    _assert_pseudonymous(look, lead.email, "Ottoline", "Engines", "Head of Engineering")


def test_the_handoff_mail_records_what_it_carries_to_the_salesperson(app):
    lead, offered, _page_url = _offered(app)
    [sent] = _looks(app, mails=True)  # queued with the offer, in its transaction
    assert sent.actor == f"salesperson:{offered.person_id}"
    assert (sent.object_type, sent.object_id) == ("lead", str(lead.lead_id))
    detail = audit.detail_of(sent)
    assert detail["via"] == "handoff_mail"
    assert {"email", "first_name", "company", "job_title"} <= set(detail["fields"])
    _assert_pseudonymous(sent, lead.email, "Ottoline", "Engines", "Head of Engineering")


def test_a_refused_handoff_action_keeps_its_look_but_not_its_change(app, client):
    _lead, offered, page_url = _offered(app)
    csrf = CSRF.search(client.get(page_url + "/accept").get_data(as_text=True)).group(1)
    # BANT before accepting: refused (422), the page shows the lead again.
    refused = client.post(page_url + "/bant", data={"csrf_token": csrf, "need": "yes"})
    assert refused.status_code == 422
    assert "Ottoline" in refused.get_data(as_text=True)
    accepted = client.post(page_url + "/accept", data={"csrf_token": csrf})
    assert accepted.status_code == 200
    twice = client.post(page_url + "/accept", data={"csrf_token": csrf})
    assert twice.status_code == 409 and "Ottoline" in twice.get_data(as_text=True)
    # Wrong answers after accepting: refused, nothing stored.
    partial = client.post(page_url + "/bant", data={"csrf_token": csrf, "need": "yes"})
    assert partial.status_code == 422
    looks = _looks(app)
    assert [audit.detail_of(e)["via"] for e in looks] == ["handoff_page"] * 4
    assert {e.actor for e in looks} == {f"salesperson:{offered.person_id}"}
    with uow(app) as s:
        assert s.get(Handoff, offered.id).bant == {}
        assert audit.verify(s).ok


def test_the_leads_own_pages_record_the_subjects_look(app, client):
    lead, _offered_handoff, _page = _offered(app)
    with uow(app) as s:
        prefs = _path(rights.prefs_url(s, lead.lead_id))
    assert client.head(prefs).status_code == 200
    assert _looks(app) == []

    page = client.get(prefs)
    assert page.status_code == 200 and lead.email in page.get_data(as_text=True)
    form = client.get(prefs + "/correct")
    assert form.status_code == 200 and 'value="Ottoline"' in form.get_data(as_text=True)
    preference_center, correction_form = _looks(app)
    assert audit.detail_of(preference_center)["via"] == "preference_center"
    assert audit.detail_of(correction_form)["via"] == "correction_form"
    for look in (preference_center, correction_form):
        assert look.actor == "subject"
        assert look.object_id == str(lead.lead_id)
        assert {"email", "first_name", "company"} <= set(audit.detail_of(look)["fields"])
        _assert_pseudonymous(look, lead.email, "Ottoline", "Engines")

    # A new address waiting for its confirmation is shown too, and named.
    new = "ottoline.new@example.org"
    with uow(app) as s:
        from leadvault import leads

        correction.request_email_change(s, leads.get(s, lead.lead_id), new, "en", ip=None)
    assert new in client.get(prefs).get_data(as_text=True)
    waiting = _looks(app)[-1]
    assert "pending_email" in audit.detail_of(waiting)["fields"]
    _assert_pseudonymous(waiting, new)
    # A refused correction (422) shows what was typed and the waiting address: one look.
    refused = client.post(
        prefs + "/correct", data={"csrf_token": CSRF.search(form.get_data(as_text=True)).group(1)}
    )
    assert refused.status_code == 422
    last = _looks(app)[-1]
    assert audit.detail_of(last) == {"fields": ["pending_email"], "via": "correction_form"}
    with uow(app) as s:
        assert audit.verify(s).ok
