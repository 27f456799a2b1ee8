"""A confirmed change of address is told to the old address, which can change it back.

The notice goes through the outbox in the transaction that changes the address, in
the lead's language, with the new address masked (never in full) and a link that
sets the old address again once confirmed from it. Real app, database, worker and
SMTP (aiosmtpd on loopback).
"""

from __future__ import annotations

import logging
import re

import pytest
import sqlalchemy as sa

from consent import correction
from consent.models import EmailChange
from leadvault import audit, leads
from leadvault.models import OutboxMessage
from tests import factories
from tests.conftest import deliver, unique_email
from tests.test_consent_rights import csrf_of, deliver_new, lead_of, link_in, path_of, text_of

uow = factories.uow


def _lead(app, email: str, **kwargs):
    """A confirmed lead whose opt-in and welcome mails are sent already."""
    lead_id = factories.lead(app, email, **kwargs)
    deliver(app)
    return lead_id


def _request_change(app, smtp_server, old: str, new: str, lang: str):
    """The lead asked for ``new`` in its preference center; returns the mail to ``new``."""
    with uow(app) as s:
        lead = leads.find_by_email(s, old)
        correction.request_email_change(s, lead, new, lang, ip=None)
    [mail] = deliver_new(app, smtp_server, 1)
    assert mail["To"] == new
    return mail


def _confirm(client, link: str):
    page = client.get(path_of(link))
    assert page.status_code == 200
    done = client.post(path_of(link), data={"csrf_token": csrf_of(page)})
    assert done.status_code == 200, done.get_data(as_text=True)
    return page


def test_old_address_is_told_with_the_new_one_masked_and_can_change_it_back(
    app, client, smtp_server, caplog
):
    caplog.set_level(logging.DEBUG)
    old = unique_email("ottoline")
    new = "nora.neu." + unique_email("x")
    lead_id = _lead(app, old, profile={"first_name": "Ottoline"}, language="en")
    change_mail = _request_change(app, smtp_server, old, new, "en")

    caplog.clear()  # from here on, no log line (ours or the SMTP server's) has the new address
    _confirm(client, link_in(text_of(change_mail), "address"))
    # Queued with the change, in its transaction: there before any worker ran.
    with uow(app) as s:
        queued = s.scalars(
            sa.select(OutboxMessage.template).where(OutboxMessage.lead_id == lead_id)
        ).all()
        assert correction.NOTICE_TEMPLATE in queued
    [notice] = deliver_new(app, smtp_server, 1)
    assert notice["To"] == old
    assert notice["Subject"] == "Your email address was changed"
    assert notice["Content-Language"] == "en"
    text = text_of(notice)
    html = notice.get_body(preferencelist=("html",)).get_content()
    masked = correction.masked(new)
    assert masked == "n***@" + new.split("@")[1]
    assert f"was changed to {masked} on " in text and masked in html
    assert "Hi Ottoline," in text
    # The new address is never in the notice, nor in any log line of the change and the
    # notice's delivery (the SMTP session included).
    assert new not in notice.as_string() and new.split("@")[0] not in notice.as_string()
    assert not [r for r in caplog.records if new in r.getMessage()]
    assert lead_of(app, new).id == lead_id and lead_of(app, old) is None

    # The notice's link is not shown as the lead's own request, and a newer request of
    # the lead (whoever holds its preference link) does not end it.
    with uow(app) as s:
        lead = leads.get(s, lead_id)
        assert correction.pending_email(s, lead) is None
        correction.request_email_change(s, lead, unique_email("third"), "en", ip=None)
    [third] = deliver_new(app, smtp_server, 1)
    # The notice's link changes the address back, once confirmed from the old address.
    undo = link_in(text, "address")
    assert undo in html
    page = _confirm(client, undo)
    assert "Change your address back" in page.get_data(as_text=True)
    assert lead_of(app, old).id == lead_id and lead_of(app, new) is None
    # ... and the address it was changed to gets the same notice (with the old masked).
    [back] = deliver_new(app, smtp_server, 1)
    assert back["To"] == new
    assert correction.masked(old) in text_of(back) and old not in back.as_string()
    assert client.post(path_of(undo), data={"csrf_token": csrf_of(page)}).status_code == 410
    # Changing back ended the other request; what is left is the second notice's link.
    assert client.get(path_of(link_in(text_of(third), "address"))).status_code == 410
    with uow(app) as s:
        assert audit.verify(s).ok
        [left] = s.scalars(sa.select(EmailChange)).all()
        assert correction.is_undo(s, leads.get(s, lead_id), left)


def test_notice_speaks_the_leads_language(app, client, smtp_server):
    old = unique_email("julia")
    new = unique_email("julia-neu")
    _lead(app, old, profile={"first_name": "Julia"}, language="de")
    change_mail = _request_change(app, smtp_server, old, new, "de")
    _confirm(client, link_in(text_of(change_mail), "address"))
    [notice] = deliver_new(app, smtp_server, 1)
    assert notice["To"] == old
    assert notice["Subject"] == "Ihre E-Mail-Adresse wurde geändert"
    assert notice["Content-Language"] == "de"
    text = text_of(notice)
    assert f"auf {correction.masked(new)} geändert" in text
    assert "Wenn Sie das nicht waren, setzen Sie die Adresse mit diesem Link zurück" in text
    assert new not in notice.as_string()
    undo = client.get(path_of(link_in(text, "address")))
    assert "Ihre Adresse zurücksetzen" in undo.get_data(as_text=True)


def test_a_refused_change_sends_no_notice(app, client, smtp_server):
    mine = unique_email("mine")
    theirs = unique_email("theirs")
    _lead(app, mine)
    _lead(app, theirs)
    change_mail = _request_change(app, smtp_server, mine, theirs, "en")
    link = path_of(link_in(text_of(change_mail), "address"))
    page = client.get(link)
    assert client.post(link, data={"csrf_token": csrf_of(page)}).status_code == 409
    assert deliver_new(app, smtp_server, 0) == []


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("nora@example.com", "n***@example.com"),
        ("a@b.example", "a***@b.example"),
        ("\u00e9lodie@exemple.fr", "\u00e9***@exemple.fr"),
    ],
)
def test_masked_keeps_the_first_letter_and_the_domain(address, shown):
    assert correction.masked(address) == shown
    assert re.fullmatch(r".\*\*\*@.+", correction.masked(address))
