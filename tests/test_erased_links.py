"""The links of a lead whose data was erased (Art. 17): the confirmation link, its
resend button, the preference center and the single-use access, erase and correction
links. None confirms, re-creates or shows anything; each says clearly, in the
visitor's language, that it no longer works (410), and none fails (500).

Through the real app, the real database, the real outbox and a real SMTP server.
"""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from capture import service as capture_service
from consent import optin, rights
from consent.ledger import RequestMeta
from consent.models import Consent, LedgerEntry, OptInRequest
from leadvault import leads
from leadvault.app import runtime
from leadvault.cli import cli
from leadvault.db import unit_of_work
from tests.conftest import make_form
from tests.test_consent_rights import (
    assert_no_crash,
    cli_env,
    confirmed_lead,
    csrf_of,
    deliver_new,
    lead_of,
    link_in,
    manage_link,
    page_link,
    path_of,
    submit,
    text_of,
)
from widgets import service as widgets_service

GONE = {
    "en": ("This link is no longer valid", "a newer mail replaced it"),
    "de": ("Dieser Link ist nicht mehr gültig", "eine neuere E-Mail hat ihn ersetzt"),
}
NAME = "Quokkabelle"


def _erase_by_cli(app, email: str) -> None:
    result = CliRunner().invoke(
        cli, ["leads", "erase", "--email", email, "--yes"], env=cli_env(app), obj=app
    )
    assert result.exit_code == 0, result.output


def _rows_of(app, lead_id) -> dict[str, int]:
    with app.app_context(), runtime(app).session_factory() as s:
        return {
            "consents": s.scalar(sa.select(sa.func.count()).where(Consent.lead_id == lead_id)),
            "requests": s.scalar(sa.select(sa.func.count()).where(OptInRequest.lead_id == lead_id)),
            "ledger": s.scalar(
                sa.select(sa.func.count()).where(LedgerEntry.subject == str(lead_id))
            ),
        }


def _assert_gone(response, lang: str, email: str) -> None:
    assert response.status_code == 410
    assert_no_crash(response)
    body = response.get_data(as_text=True)
    title, reason = GONE[lang]
    assert f"<title>{title}</title>" in body
    assert reason in body
    # Not the success page, no button that could do nothing, no personal data.
    assert "Thank you" not in body and "Vielen Dank" not in body
    assert "/resend" not in body
    assert email not in body and NAME not in body
    assert response.headers["Cache-Control"] == "no-store"


def test_confirmation_links_of_erased_leads_confirm_nothing(app, client, smtp_server):
    form_id = make_form(app)
    # One lead confirmed and then erased itself; one never confirmed and was erased
    # by the operator (CLI) while its confirmation page was open in the browser.
    confirmed_email = "quokka.confirmed@example.org"
    optin_mail, _welcome = confirmed_lead(
        app, client, smtp_server, confirmed_email, form_id=form_id, first_name=NAME
    )
    confirmed_link = path_of(link_in(text_of(optin_mail), "c"))
    pending_email = "quokka.pending@example.org"
    submit(app, client, form_id, pending_email, first_name=NAME, lang="de")
    [pending_mail] = deliver_new(app, smtp_server, 1)
    pending_link = path_of(link_in(text_of(pending_mail), "c"))
    open_page = client.get(pending_link)
    assert open_page.status_code == 200
    ids = [lead_of(app, e).id for e in (confirmed_email, pending_email)]

    prefs = manage_link(app, client, smtp_server, confirmed_email)
    erase_link = page_link(client.get(prefs), "e")
    erased = client.post(erase_link, data={"csrf_token": csrf_of(client.get(erase_link))})
    assert erased.status_code == 200
    _erase_by_cli(app, pending_email)
    after_erasure = {lead_id: _rows_of(app, lead_id) for lead_id in ids}
    assert all(rows["consents"] == rows["requests"] == 0 for rows in after_erasure.values())

    for link, email in ((confirmed_link, confirmed_email), (pending_link, pending_email)):
        for lang in ("en", "de"):
            headers = {"Accept-Language": lang}
            _assert_gone(client.get(link, headers=headers), lang, email)
            # The button of the page opened before the erasure, and a forged resend.
            token = csrf_of(open_page)
            _assert_gone(
                client.post(link, data={"csrf_token": token}, headers=headers), lang, email
            )
            _assert_gone(
                client.post(f"{link}/resend", data={"csrf_token": token}, headers=headers),
                lang,
                email,
            )
        assert lead_of(app, email) is None
    # Nothing was written: no lead, consent, request or ledger entry came back, no mail.
    assert {lead_id: _rows_of(app, lead_id) for lead_id in ids} == after_erasure
    deliver_new(app, smtp_server, 0)


def test_confirm_after_the_request_is_gone_confirms_nothing(app, client, smtp_server):
    """The service itself, for a click racing an erasure or a resend: the request object
    a view read earlier no longer has a row (before, a 500 or a "thank you")."""
    form_id = make_form(app)
    email, other = "numbat.erased@example.org", "numbat.resent@example.org"
    for address in (email, other):
        submit(app, client, form_id, address)
    deliver_new(app, smtp_server, 2)
    meta = RequestMeta(ip="127.0.0.1", user_agent="pytest")
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        lead = leads.find_by_email(s, email)
        request = s.scalars(sa.select(OptInRequest).where(OptInRequest.lead_id == lead.id)).one()
        lead_id = lead.id
        rights.erase(s, lead, actor="subject", reason="self_service")
        assert optin.confirm(s, request, meta=meta) is optin.Confirmation.GONE

        resent = leads.find_by_email(s, other)
        old = s.scalars(sa.select(OptInRequest).where(OptInRequest.lead_id == resent.id)).one()
        assert optin.resend_optin(s, old)
        assert optin.confirm(s, old, meta=meta) is optin.Confirmation.GONE
    assert lead_of(app, email) is None
    assert _rows_of(app, lead_id) == {"consents": 0, "requests": 0, "ledger": 2}
    with app.app_context(), runtime(app).session_factory() as s:
        states = s.scalars(sa.select(Consent.status).where(Consent.lead_id == resent.id)).all()
    assert states == ["pending"]


def test_rights_links_of_an_erased_lead_say_so(app, client, smtp_server):
    email = "quokka.rights@example.org"
    form_id = make_form(app)
    confirmed_lead(app, client, smtp_server, email, form_id=form_id, first_name=NAME)
    prefs = manage_link(app, client, smtp_server, email)
    with app.app_context(), runtime(app).session_factory() as s:
        form = capture_service.get_form(s, form_id)
        more = path_of(widgets_service.profile_url(s, lead_of(app, email).id, form))
    page = client.get(prefs)
    token = csrf_of(page)
    access, erase = page_link(page, "a"), page_link(page, "e")
    correct = f"{prefs}/correct"
    _erase_by_cli(app, email)

    titles = {"en": "Your data has been erased", "de": "Ihre Daten wurden gelöscht"}
    for lang, title in titles.items():
        headers = {"Accept-Language": lang}
        answers = [
            client.get(prefs, headers=headers),
            client.post(
                f"{prefs}/withdraw",
                data={"csrf_token": token, "purpose": "newsletter"},
                headers=headers,
            ),
            client.post(
                f"{prefs}/grant",
                data={"csrf_token": token, "purpose": "sales_contact"},
                headers=headers,
            ),
            client.get(access, headers=headers),
            client.post(access, data={"csrf_token": token}, headers=headers),
            client.get(erase, headers=headers),
            client.post(erase, data={"csrf_token": token}, headers=headers),
            client.get(correct, headers=headers),
            # The whitepaper mail's "tell us more" page (progressive profiling).
            client.get(more, headers=headers),
            client.post(more, data={"csrf_token": token, "company": "Acme"}, headers=headers),
        ]
        for answer in answers:
            assert answer.status_code == 410, answer.request.path
            assert_no_crash(answer)
            body = answer.get_data(as_text=True)
            assert f"<title>{title}</title>" in body
            assert email not in body and NAME not in body
    assert lead_of(app, email) is None
    deliver_new(app, smtp_server, 0)
