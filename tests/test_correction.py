"""Art. 16 in the preference center: the lead corrects its data there.

Profile fields change at once; a new address only once a link mailed to it is
confirmed (the old address stays the lead's until then, then the blind index
moves). Each step is audited with the actor ``subject`` and no values; the
ledger stays the lead's. Real app, database, outbox and SMTP.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from consent import correction, ledger
from consent.models import EmailChange
from leadvault import audit, leads
from leadvault.app import runtime
from leadvault.models import AuditEntry
from tests.conftest import deliver, unique_email
from tests.test_consent_rights import (
    confirmed_lead,
    csrf_of,
    deliver_new,
    lead_of,
    link_in,
    manage_link,
    path_of,
    submit,
    text_of,
)


def _attributes(app, email: str) -> dict[str, str]:
    with app.app_context(), runtime(app).session_factory() as s:
        lead = leads.find_by_email(s, email)
        assert lead is not None
        return leads.attributes_of(s, lead)


def _audit(app, lead_id) -> list[tuple[str, str, str]]:
    with app.app_context(), runtime(app).session_factory() as s:
        rows = s.scalars(
            sa.select(AuditEntry)
            .where(AuditEntry.object_id == str(lead_id))
            .order_by(AuditEntry.id)
        )
        return [(row.action, row.actor, row.detail) for row in rows]


def _form_values(body: str) -> dict[str, str]:
    return dict(re.findall(r'name="(\w+)" type="(?:text|tel|email)"[^>]*?value="([^"]*)"', body))


def test_lead_corrects_its_profile_with_clear_errors_and_one_audit_entry(app, client, smtp_server):
    email = unique_email("correct")
    confirmed_lead(app, client, smtp_server, email, first_name="Ottoline")
    lead_id = lead_of(app, email).id
    prefs = manage_link(app, client, smtp_server, email)
    page = client.get(prefs)
    [correct] = re.findall(r'href="(/p/[^"]+/correct)"', page.get_data(as_text=True))

    form = client.get(correct)
    assert form.status_code == 200
    assert form.headers["Cache-Control"] == "no-store"
    body = form.get_data(as_text=True)
    assert f'value="{email}"' in body and 'value="Ottoline"' in body
    token = csrf_of(form)

    # Refused with a message per field, and nothing stored.
    bad = client.post(
        correct,
        data={
            "csrf_token": token,
            "email": "not an address",
            "first_name": "www.evil.example",
            "country": "Germany",
            "company_size": "lots",
            "company": "x" * 201,
        },
    )
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "Please enter a valid email address, like name@example.com." in text
    assert "Please leave web addresses out of this field." in text
    assert "Please use the two-letter country code, like DE or GB." in text
    assert "Please choose one of the options." in text
    assert "Please use at most 200 characters." in text
    assert 'aria-invalid="true"' in text and "Germany" in text  # what was typed stays
    assert _attributes(app, email) == {"first_name": "Ottoline"}
    assert not [a for a in _audit(app, lead_id) if a[0] == correction.CORRECTED]

    # Corrected, completed and one field removed: one audit entry naming the fields.
    done = client.post(
        correct,
        data={
            "csrf_token": token,
            "email": email,
            "first_name": "",
            "last_name": "Beispiel",
            "company": "Beispiel GmbH",
            "country": "de",
            "company_size": "50-249",
        },
    )
    assert done.status_code == 200, done.get_data(as_text=True)
    assert "Your data is corrected." in done.get_data(as_text=True)
    assert _attributes(app, email) == {
        "last_name": "Beispiel",
        "company": "Beispiel GmbH",
        "country": "DE",
        "company_size": "50-249",
    }
    entries = [a for a in _audit(app, lead_id) if a[0] == correction.CORRECTED]
    assert len(entries) == 1
    _action, actor, detail = entries[0]
    assert actor == "subject"
    assert "first_name" in detail and "Beispiel" not in detail  # names, never values
    assert deliver_new(app, smtp_server, 0) == []  # the address did not change: no mail
    page = client.get(prefs)
    assert "Beispiel GmbH" in page.get_data(as_text=True)


def test_new_address_counts_only_once_confirmed_from_it(app, client, smtp_server):
    old = unique_email("old")
    new = unique_email("new")
    confirmed_lead(app, client, smtp_server, old, first_name="Ottoline")
    lead_id = lead_of(app, old).id
    prefs = manage_link(app, client, smtp_server, old)
    correct = prefs + "/correct"
    form = client.get(correct)
    sent = client.post(
        correct, data={"csrf_token": csrf_of(form), "email": new, "first_name": "Ottoline"}
    )
    assert sent.status_code == 200
    assert "until then we keep using the old one" in sent.get_data(as_text=True)

    # One mail, to the new address only; the old one is still the lead's.
    [mail] = deliver_new(app, smtp_server, 1)
    assert mail["To"] == new
    assert "Ottoline" in text_of(mail)
    assert lead_of(app, old).id == lead_id and lead_of(app, new) is None
    assert new in client.get(prefs).get_data(as_text=True)  # shown as waiting
    with app.app_context(), runtime(app).session_factory() as s:
        [change] = s.scalars(sa.select(EmailChange)).all()
        assert new.encode() not in change.new_email  # sealed at rest

    # The link shows a button; only its POST changes the address.
    link = path_of(link_in(text_of(mail), "address"))
    page = client.get(link)
    assert page.status_code == 200 and lead_of(app, new) is None
    done = client.post(link, data={"csrf_token": csrf_of(page)})
    assert done.status_code == 200
    assert "Your address is changed" in done.get_data(as_text=True)
    assert lead_of(app, new).id == lead_id  # the blind index moved
    assert lead_of(app, old) is None
    with app.app_context(), runtime(app).session_factory() as s:
        lead = leads.get(s, lead_id)
        assert leads.email_of(s, lead) == new
        # What is left is the link that changes it back, in the notice to the old address.
        [undo] = s.scalars(sa.select(EmailChange)).all()
        assert correction.is_undo(s, lead, undo)
        assert audit.verify(s).ok and ledger.verify(s).ok
    actions = [(a, actor) for a, actor, _d in _audit(app, lead_id)]
    assert (correction.EMAIL_CHANGE_REQUESTED, "subject") in actions
    assert (correction.EMAIL_CHANGED, "subject") in actions
    assert all(old not in d and new not in d for _a, _actor, d in _audit(app, lead_id))
    [notice] = deliver_new(app, smtp_server, 1)  # the old address is told (the new masked)
    assert notice["To"] == old and new not in notice.as_string()

    # Used once; mails now go to the new address.
    again = client.post(link, data={"csrf_token": csrf_of(page)})
    assert again.status_code == 410
    assert "already used" in again.get_data(as_text=True)
    page = client.get("/manage")
    client.post("/manage", data={"csrf_token": csrf_of(page), "email": new})
    [manage] = deliver_new(app, smtp_server, 1)
    assert manage["To"] == new


def test_address_of_another_lead_is_refused_and_erasure_ends_the_request(app, client, smtp_server):
    mine = unique_email("mine")
    theirs = unique_email("theirs")
    confirmed_lead(app, client, smtp_server, mine)
    confirmed_lead(app, client, smtp_server, theirs)
    prefs = manage_link(app, client, smtp_server, mine)
    form = client.get(prefs + "/correct")
    client.post(prefs + "/correct", data={"csrf_token": csrf_of(form), "email": theirs})
    [mail] = deliver_new(app, smtp_server, 1)
    link = path_of(link_in(text_of(mail), "address"))
    page = client.get(link)
    taken = client.post(link, data={"csrf_token": csrf_of(page)})
    assert taken.status_code == 409
    assert lead_of(app, mine) is not None and lead_of(app, theirs) is not None
    assert lead_of(app, mine).id != lead_of(app, theirs).id

    # A newer request replaces the older one: its link stops working.
    form = client.get(prefs + "/correct")
    client.post(
        prefs + "/correct", data={"csrf_token": csrf_of(form), "email": unique_email("third")}
    )
    [newer] = deliver_new(app, smtp_server, 1)
    assert client.get(link).status_code == 410

    # Erased: the link says so instead of "already used".
    page = client.get(prefs)
    [erase] = re.findall(r'href="(/e/[^"]+)"', page.get_data(as_text=True))
    erase = erase.replace("&amp;", "&")
    page = client.get(erase)
    assert client.post(erase, data={"csrf_token": csrf_of(page)}).status_code == 200
    deliver(app)
    gone = client.get(path_of(link_in(text_of(newer), "address")))
    assert gone.status_code == 410
    assert "Your data has been erased" in gone.get_data(as_text=True)
    with app.app_context(), runtime(app).session_factory() as s:
        assert s.scalars(sa.select(EmailChange)).all() == []


def test_sources_read_in_the_leads_language_and_time_zone(make_app, smtp_server):
    """A widget sends the browser's time zone: the preference center dates the source in
    it (here a day earlier than in the instance's Berlin); an unknown zone is ignored."""
    import datetime as dt

    from leadvault import clock
    from tests.conftest import _smtp_config, make_form

    app = make_app(smtp_url=_smtp_config(smtp_server.port), time_zone="Europe/Berlin")
    client = app.test_client()
    form_id = make_form(
        app, name="Leitfaden (intern)", title={"de": "Praxisleitfaden"}, kind="whitepaper"
    )
    clock.freeze(dt.datetime(2026, 12, 3, 3, 30, tzinfo=dt.UTC))  # 2 Dec, 22:30 in New York
    try:
        far = unique_email("ny")
        near = unique_email("berlin")
        for email, zone in ((far, "America/New_York"), (near, "Mars/Olympus_Mons")):
            submit(
                app,
                client,
                form_id,
                email,
                lang="de",
                page_url="https://www.example.com/whitepaper?utm_source=x",
                time_zone=zone,
            )
        deliver_new(app, smtp_server, 2)
        assert _attributes(app, far) == {"time_zone": "America/New_York"}
        assert _attributes(app, near) == {}  # not a zone: not kept, and no error
        far_page = client.get(manage_link(app, client, smtp_server, far)).get_data(as_text=True)
        near_page = client.get(manage_link(app, client, smtp_server, near)).get_data(as_text=True)
    finally:
        clock.freeze(None)
    assert "Whitepaper „Praxisleitfaden“ auf www.example.com, 02.12.2026" in far_page
    assert "Whitepaper „Praxisleitfaden“ auf www.example.com, 03.12.2026" in near_page


def test_hosted_form_page_sends_the_time_zone_and_mails_give_times_in_it(make_app, smtp_server):
    """The hosted form page carries the browser's time zone as the widget does (zone.js
    fills a hidden field; its CSP allows the page's own scripts): the lead keeps it, and
    its manage mail gives the link's expiry in New York's time; a lead whose browser sent
    none reads the instance's (Berlin)."""
    import datetime as dt

    from leadvault import clock
    from tests.conftest import _smtp_config, make_form

    app = make_app(smtp_url=_smtp_config(smtp_server.port), time_zone="Europe/Berlin")
    client = app.test_client()
    form_id = make_form(app)
    clock.freeze(dt.datetime(2026, 12, 3, 3, 30, tzinfo=dt.UTC))
    try:
        far, near = unique_email("ny"), unique_email("berlin")
        for email, zone in ((far, "America/New_York"), (near, "")):
            page = client.get(f"/f/{form_id}")
            html = page.get_data(as_text=True)
            assert '<input type="hidden" name="time_zone" value="">' in html
            assert re.search(r'<script src="/capture/static/zone\.js[^"]*" defer>', html)
            assert "script-src 'self'" in page.headers["Content-Security-Policy"]
            token = re.search(r'name="render_token" value="([^"]+)"', html)
            assert token is not None
            sent = client.post(
                f"/f/{form_id}",
                data={
                    "render_token": token.group(1),
                    "lang": "en",
                    "email": email,
                    "consent": "newsletter",
                    "time_zone": zone,
                },
            )
            assert sent.status_code == 200, sent.get_data(as_text=True)
        deliver_new(app, smtp_server, 2)
        assert _attributes(app, far) == {"time_zone": "America/New_York"}
        assert _attributes(app, near) == {}
        expiry = {}
        for email in (far, near):
            page = client.get("/manage")
            client.post("/manage", data={"csrf_token": csrf_of(page), "email": email})
            [mail] = deliver_new(app, smtp_server, 1)
            expiry[email] = " ".join(text_of(mail).split())  # one line, any space one space
    finally:
        clock.freeze(None)
    # 24 hours after 3 Dec 2026, 03:30 UTC.
    assert re.search(r"valid for 24 hours, until Dec 3, 2026, 10:30\sPM EST:", expiry[far])
    assert re.search(r"valid for 24 hours, until Dec 4, 2026, 4:30\sAM CET:", expiry[near])
