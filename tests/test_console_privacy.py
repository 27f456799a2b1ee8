"""The console's privacy page, complete (issue 12.7): requests log (erasures and access
exports, also the lead's own download), retention periods, audit trail filters by kind
of object and date range with paging that keeps them."""

from __future__ import annotations

from consent import rights
from tests import factories
from tests.factories import uow
from tests.test_console import csrf, one_h1, text


def test_requests_log_lists_erasures_and_the_leads_own_download(app, client):
    erased = factories.lead(app)
    asking = factories.lead(app)
    with uow(app) as s:
        access_token = rights.single_use_token(s, rights.ACCESS, asking)
    staff, _ = factories.signed_in_client(app, "privacy")
    token = csrf(staff, "/console/leads")
    staff.post(
        "/console/leads/bulk/erase",
        data={"lead": [str(erased)], "confirmed": "1", "csrf_token": token},
    )
    path = f"/a/{access_token}"
    downloaded = client.post(path, data={"csrf_token": factories.csrf_token(client, path)})
    assert downloaded.status_code == 200 and downloaded.mimetype == "application/json"
    page = text(staff.get("/console/privacy"))
    one_h1(page)
    log = page.split('id="h-requests"')[1].split("</section>")[0]
    assert erased.hex[:8] in log and "by staff" in log
    assert asking.hex[:8] in log and "The lead downloaded its data" in log
    assert "Retention" in page and "1095 days" in page


def test_audit_trail_filters_by_kind_and_dates_and_pages_keep_them(app):
    client, _ = factories.signed_in_client(app, "privacy")
    lead = factories.lead(app)
    client.post(
        f"/console/leads/{lead}/reveal", data={"csrf_token": csrf(client, f"/console/leads/{lead}")}
    )
    only_leads = text(client.get("/console/privacy?object_type=lead"))
    rows = only_leads.split('id="h-audit"')[1].split("<tbody>")[1]
    assert "lead.revealed" in rows and "auth.login" not in rows
    future = text(client.get("/console/privacy?since=2999-01-01"))
    assert "No entries match." in future
    assert client.get("/console/privacy?since=yesterday").status_code == 400
    assert client.get("/console/privacy?object_type=" + "x" * 100).status_code == 400
    # Viewers of the trail without the requests permission do not get the requests log.
    owner, _ = factories.signed_in_client(app, "owner")
    assert 'id="h-requests"' in text(owner.get("/console/privacy"))


def test_an_action_or_kind_not_in_the_catalogue_is_named_not_an_empty_trail(app):
    """The selects offer catalogue codes only; a hand-made URL with another code showed
    "No entries match." as if the trail had none. It is a 400 page with the filter marked."""
    client, _ = factories.signed_in_client(app, "privacy")
    for query, field, lang, message in (
        ("action=lead.vanished", "a-action", "en", "There is no such action"),
        ("object_type=spaceship", "a-type", "en", "There is no such kind of object"),
        ("action=lead.vanished", "a-action", "de", "Diese Aktion gibt es nicht"),
        ("object_type=spaceship", "a-type", "de", "Diese Art von Objekt gibt es nicht"),
    ):
        page = client.get(f"/console/privacy?{query}&lang={lang}")
        assert page.status_code == 400, (query, page.status_code)
        html = text(page)
        one_h1(html)
        select = html.split(f'id="{field}"')[1].split(">")[0]
        assert 'aria-invalid="true"' in select and f'aria-describedby="{field}-error"' in select
        error = html.split(f'id="{field}-error"')[1].split("</p>")[0]
        assert message in error, error
        assert "No entries match." not in html and "Keine Einträge" not in html
    assert client.get("/console/privacy?action=lead.revealed").status_code == 200
