"""GET and HEAD never change state (issue 10, point 6).

Mail scanners, link checkers and browsers' prefetchers follow links; only a
person presses a button. Every GET route is requested, as GET and as HEAD,
with a valid link of its kind, and no row of any table may change, but for the
audit trail's record that a page showed a lead's decrypted data (``LOOKS``). A new
GET route without an entry here fails the test, so it gets walked too.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from capture import definition_service, definitions, queueing
from capture import service as capture_service
from consent import correction, optin, rights
from consent.models import OptInRequest
from leadvault import api, counters, leads
from leadvault.app import import_models, runtime
from leadvault.db import vault_of
from leadvault.model_base import Base
from nurture.mails import CLICK_TOKEN
from scoring import events, handoff
from tests.hostile import META, contact_form, setup_sales, stored_lead, uow
from widgets import service as widgets_service

PDF = b"%PDF-1.4\n% a guide\n%%EOF\n"
PROFILE = {
    "first_name": "Ada",
    "job_title": "Head of Engineering",
    "country": "DE",
    "company_size": "250-999",
}


def snapshot(app: Any) -> dict[str, list[str]]:
    """Every row of every table, as the app's own (writable) sessions see them."""
    import_models()
    with runtime(app).session_factory() as session:
        return {
            table.name: sorted(repr(tuple(row)) for row in session.execute(sa.select(table)))
            for table in Base.metadata.sorted_tables
        }


def _changed(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    return [name for name in before if before[name] != after[name]]


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def _links(app: Any, tmp_path: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """A valid path for every GET endpoint (some more than one), and API headers."""
    setup_sales(app)
    contact = contact_form(app)
    sales_lead = stored_lead(app, contact, PROFILE, {"page_url": "https://www.example.com/"})
    source = tmp_path / "guide.pdf"
    source.write_bytes(PDF)
    with uow(app) as s:
        whitepaper = definition_service.create_form(
            s,
            name="Guide",
            kind="whitepaper",
            fields=[definitions.FieldSpec("first_name", False)],
            purposes=[definitions.PurposeSpec("whitepaper", True)],
            allowed_origins=["https://www.example.com"],
            follow_up_fields=["company"],
        )
        asset = widgets_service.add_asset(s, source, title="Guide")
        widgets_service.attach(s, asset, whitepaper)
        form_id, asset_id = whitepaper.public_id, asset.public_id
        reader = capture_service.submit(
            s,
            whitepaper,
            queueing.ValidSubmission(
                f"reader.{uuid.uuid4().hex[:6]}@example.org", {}, None, ["whitepaper"], {}
            ),
            language="en",
            meta=META,
        ).lead_id
        pending = capture_service.submit(
            s,
            whitepaper,
            queueing.ValidSubmission(
                f"pending.{uuid.uuid4().hex[:6]}@example.org", {}, None, ["whitepaper"], {}
            ),
            language="en",
            meta=META,
        ).lead_id
    with uow(app) as s:
        requests = {
            r.lead_id: r
            for r in s.scalars(
                sa.select(OptInRequest).where(OptInRequest.lead_id.in_([reader, pending]))
            )
        }
        optin.confirm(s, requests[reader], meta=META)
        whitepaper = capture_service.get_form(s, form_id)
        asset = widgets_service.get_asset(s, asset_id)
        offered = handoff.open_handoff(s, sales_lead.lead_id)
        assert offered is not None
        secret = api.create_token(s, f"walk-{uuid.uuid4().hex[:6]}", ["consent:read"])
        counters.increment(s, "walk.ready")
        loader = widgets_service.loader_version()
        moving = leads.get(s, reader)
        assert moving is not None
        address_url = correction.request_email_change(
            s, moving, f"moved.{uuid.uuid4().hex[:6]}@example.org", "en", ip=None
        )
        paths = {
            "core.healthz": ["/healthz"],
            "core.index": ["/"],
            "core.placeholder": ["/imprint", "/privacy"],
            "core.static": ["/static/leadvault.css"],
            "core.brand_css": ["/brand.css"],
            "core.brand_logo": ["/brand/logo"],  # none configured here: 404
            "capture.show": [f"/f/{form_id}"],
            "capture.config": [f"/f/{form_id}/config"],
            "capture.static": ["/capture/static/pow.js"],
            "consent.confirm": [
                _path(optin.optin_url(s, requests[pending])),
                _path(optin.optin_url(s, requests[reader])),
            ],
            "consent.unsubscribe": [
                _path(rights.unsubscribe_url(s, sales_lead.lead_id, "newsletter"))
            ],
            "consent.manage": ["/manage"],
            "consent.preferences": [_path(rights.prefs_url(s, sales_lead.lead_id))],
            "consent.access": [
                "/a/" + rights.single_use_token(s, rights.ACCESS, sales_lead.lead_id)
            ],
            "consent.erase": ["/e/" + rights.single_use_token(s, rights.ERASE, reader)],
            "consent.export_schema": ["/schemas/access-export.v1.json"],
            "consent_correction.correct_form": [
                _path(rights.prefs_url(s, sales_lead.lead_id)) + "/correct"
            ],
            "consent_correction.confirm_address": [_path(address_url)],
            "consent.api_consent": [f"/api/v1/consent?email={sales_lead.email}"],
            "widgets.loader": [f"/widgets/{loader}/widget.js", f"/widgets/{loader}/widget.css"],
            "widgets.download": [_path(widgets_service.download_url(s, reader, asset, whitepaper))],
            "widgets.more": [_path(widgets_service.profile_url(s, reader, whitepaper))],
            "nurture.click": [
                # A mail no longer known: the page still shows (and must not write).
                "/n/"
                + vault_of(s).sign(
                    CLICK_TOKEN, {"s": 999_999, "k": 0, "u": "https://www.example.com/"}
                )
            ],
            "nurture.static": ["/static/nurture/click.js"],
            "scoring.page": [
                _path(handoff.handoff_url(s, offered)),
                _path(handoff.handoff_url(s, offered, "accept")),
            ],
        }
        events.record_event(s, reader, "page_view", {"category": "blog"}, None)
    return paths, {"Authorization": f"Bearer {secret}"}


def _staff_links(app: Any) -> dict[str, list[Any]]:
    """Admin pages, each walked by a client in the state it needs: (path, client, headers)."""
    import pyotp

    from admin import accounts
    from admin.models import User
    from tests import factories

    signed_in, _user_id = factories.signed_in_client(app, "owner")
    _totp_id, totp_email = factories.staff_user(app, "viewer", totp_secret=pyotp.random_base32())
    pending = app.test_client()
    assert factories.sign_in(pending, totp_email).status_code == 302
    invited_id, _email = factories.staff_user(app, "viewer", password=None)
    with uow(app) as s:
        link = accounts.setup_link(s, s.get(User, invited_id))
    anonymous = app.test_client()
    return {
        "admin_auth.sign_in_form": [("/admin/sign-in", anonymous, {})],
        "admin_auth.account": [("/admin/account", signed_in, {})],
        "admin_auth.password_form": [("/admin/password", signed_in, {})],
        "admin_auth.totp_setup_form": [("/admin/totp/setup", signed_in, {})],
        "admin_auth.totp_form": [("/admin/totp", pending, {})],
        "admin_auth.set_password": [(_path(link), anonymous, {})],
        "admin_auth.static": [("/admin/static/admin.css", anonymous, {})],
        "console.home": [("/console/", signed_in, {})],
        "console.dashboard": [
            ("/console/dashboard", signed_in, {}),
            ("/console/dashboard?days=90", signed_in, {}),
        ],
        "console.leads": [("/console/leads?reached=mql&sort=score", signed_in, {})],
        "console.lead": [(f"/console/leads/{factories.lead(app)}", signed_in, {})],
        "console.static": [("/console/static/console.css", anonymous, {})],
        "console.privacy": [
            ("/console/privacy", signed_in, {}),
            ("/console/privacy?verify=1&action=auth.login", signed_in, {}),
        ],
        "console.proof": [(f"/console/leads/{factories.lead(app)}/proof", signed_in, {})],
        **_forms_links(factories.form(app), signed_in),
        "console.consent_texts_page": [
            ("/console/consent", signed_in, {}),
            ("/console/consent?published=1&moved=abc", signed_in, {}),
        ],
        "console.consent_purpose": [("/console/consent/newsletter", signed_in, {})],
        "console.consent_new": [("/console/consent/newsletter/new?language=de", signed_in, {})],
        "console.assets_page": [
            ("/console/assets", signed_in, {}),
            ("/console/assets?archived=1", signed_in, {}),
        ],
        "console.asset_page": [(f"/console/assets/{_asset(app)}", signed_in, {})],
        "console.settings": [
            ("/console/settings", signed_in, {}),
            ("/console/settings?check=1", signed_in, {}),
        ],
        "console.users": [("/console/settings/users", signed_in, {})],
        "console.api_tokens": [("/console/settings/tokens", signed_in, {})],
        **_export_links(app, signed_in),
        **_api_links(app, anonymous),
        **_scoring_links(app, signed_in, anonymous),
    }


def _forms_links(form_id: str, client: Any) -> dict[str, list[Any]]:
    return {
        "console.forms": [("/console/forms", client, {})],
        "console.form": [(f"/console/forms/{form_id}", client, {})],
        "console.form_new": [("/console/forms/new", client, {})],
        "console.form_edit": [(f"/console/forms/{form_id}/edit", client, {})],
        "console.form_delete_confirm": [(f"/console/forms/{form_id}/delete", client, {})],
    }


def _export_links(app: Any, signed_in: Any) -> dict[str, list[Any]]:
    """The console's export, import and webhook pages (issue 14.4)."""
    from export import webhooks
    from tests import factories

    lead = factories.lead(app)
    with uow(app) as s:
        endpoint, _secret = webhooks.create_endpoint(
            s, url="https://crm.example.com/hooks", resolve=False
        )
        webhooks.enqueue_test(s, endpoint)
        endpoint_id = endpoint.id
    return {
        "console.exports": [
            ("/console/exports?stage=new&since=2020-01-01", signed_in, {}),
            (f"/console/exports?lead={lead}", signed_in, {}),
        ],
        "console.imports_page": [("/console/imports", signed_in, {})],
        "console.webhooks_page": [("/console/webhooks", signed_in, {})],
        "console.webhook": [(f"/console/webhooks/{endpoint_id}", signed_in, {})],
    }


def _api_links(app: Any, client: Any) -> dict[str, list[Any]]:
    """The admin API's GET operations with a personal token (its use is not stamped on reads)."""
    from tests import factories

    token = {"Authorization": f"Bearer {factories.personal_token(app, 'owner')}"}
    lead = factories.lead(app)
    asset_id = _asset(app)
    return {
        "admin_api.me": [("/api/v1/me", client, token)],
        "api_exports.webhooks_list": [("/api/v1/webhooks", client, token)],
        "admin_api.leads_list": [("/api/v1/leads?stage=new&limit=5", client, token)],
        "admin_api.lead_detail": [(f"/api/v1/leads/{lead}", client, token)],
        "admin_api.tokens_list": [("/api/v1/tokens", client, token)],
        "admin_api.audit_list": [("/api/v1/audit", client, token)],
        "admin_api.audit_verify": [("/api/v1/audit/verify", client, token)],
        "admin_api.ledger_verify": [("/api/v1/ledger/verify", client, token)],
        "admin_api.report_funnel": [("/api/v1/reports/funnel?days=30", client, token)],
        "admin_api.report_sources": [("/api/v1/reports/sources?by=form", client, token)],
        "admin_api.report_bots": [("/api/v1/reports/bots", client, token)],
        "admin_api.forms_list": [("/api/v1/forms", client, token)],
        "admin_api.form_detail": [(f"/api/v1/forms/{factories.form(app)}", client, token)],
        "admin_api.purposes_list": [("/api/v1/consent/purposes?versions=3", client, token)],
        "admin_api.purpose_detail": [("/api/v1/consent/purposes/newsletter", client, token)],
        "admin_api.assets_list": [
            ("/api/v1/assets", client, token),
            ("/api/v1/assets?archived=true", client, token),
        ],
        "admin_api.asset_detail": [(f"/api/v1/assets/{asset_id}", client, token)],
        "admin_api.openapi": [("/api/v1/openapi.json", client, {})],
        "admin_api.reference": [("/api/v1/docs", client, {})],
    }


def _scoring_links(app: Any, signed_in: Any, client: Any) -> dict[str, list[Any]]:
    """Rules versions, the sales team and the handoff board: console pages and API reads."""
    import datetime as dt

    from leadvault import clock
    from scoring import absences, rules, rulesets, sales_team
    from tests import factories

    with uow(app) as s:
        rulesets.activate(s, rules.example_text(), actor="user:1")
        rulesets.activate(s, rules.example_text().replace("C = 10", "C = 12"), actor="user:1")
        person = sales_team.add_person(
            s, email="walk@sales.example", name="Walker", actor="cli:test"
        ).id
        today = clock.now().date()
        absences.add_absence(s, person, today, today + dt.timedelta(days=1), actor="cli:test")
    token = {"Authorization": f"Bearer {factories.personal_token(app, 'owner')}"}
    return {
        "console.scoring": [("/console/scoring", signed_in, {})],
        "console.scoring_versions": [("/console/scoring/versions", signed_in, {})],
        "console.scoring_version": [("/console/scoring/versions/2", signed_in, {})],
        # The confirm step of a restore runs the dry run: it reads only.
        "console.scoring_restore_confirm": [("/console/scoring/versions/1/restore", signed_in, {})],
        "console.handoffs": [
            ("/console/handoffs", signed_in, {}),
            ("/console/handoffs?overdue=1", signed_in, {}),
        ],
        "console.sales": [("/console/sales", signed_in, {})],
        "console.sales_person": [(f"/console/sales/people/{person}", signed_in, {})],
        "admin_api.rules_versions": [("/api/v1/scoring/rules/versions", client, token)],
        "admin_api.rules_version": [("/api/v1/scoring/rules/versions/2?against=1", client, token)],
        "admin_api.handoffs_list": [("/api/v1/handoffs?overdue=false", client, token)],
        "admin_api.salespeople_list": [("/api/v1/salespeople", client, token)],
        "admin_api.salesperson_detail": [(f"/api/v1/salespeople/{person}", client, token)],
        "admin_api.teams_list": [("/api/v1/teams", client, token)],
        "admin_api.absences_list": [(f"/api/v1/absences?person_id={person}", client, token)],
    }


def _asset(app: Any) -> str:
    import io

    from widgets import assets

    with uow(app) as s:
        texts = assets.AssetTexts(titles={"en": "Walked guide"})
        return assets.store(s, io.BytesIO(PDF), filename="walked.pdf", texts=texts).public_id


# GET routes whose answer is a redirect (the console's home sends each role to its first page).
REDIRECTS = {"console.home"}
# GET pages behind signed links that show a lead's decrypted data: the one thing their
# GET leaves is the audit trail's entry of that look (leadvault.looks); HEAD leaves none.
LOOKS = {"scoring.page", "consent.preferences", "consent_correction.correct_form"}
AUDIT_TABLES = {"audit_trail", "audit_head"}


def _only_a_look(before: dict[str, list[str]], after: dict[str, list[str]]) -> bool:
    """Whether the audit trail grew by exactly one ``lead.revealed`` entry, and nothing
    else changed."""
    if set(_changed(before, after)) != AUDIT_TABLES:
        return False
    added = [row for row in after["audit_trail"] if row not in before["audit_trail"]]
    return len(after["audit_trail"]) == len(before["audit_trail"]) + 1 and (
        len(added) == 1 and "'lead.revealed'" in added[0]
    )


def test_every_get_and_head_leaves_every_table_as_it_was(app, client, tmp_path):
    paths, api_headers = _links(app, tmp_path)
    paths.update(_staff_links(app))
    endpoints = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or set()) and rule.endpoint != "static"
    }
    assert endpoints - set(paths) == set(), "walk these GET routes too"
    requests = 0
    for endpoint in sorted(endpoints):
        for entry in paths[endpoint]:
            path, walker, headers = (
                entry if isinstance(entry, tuple) else (entry, client, api_headers)
            )
            for method in ("GET", "HEAD"):
                before = snapshot(app)
                response = walker.open(path, method=method, headers=headers)
                requests += 1
                # The imprint and privacy placeholders answer 404 until configured,
                # the logo route until a logo is.
                expected = 404 if endpoint in {"core.placeholder", "core.brand_logo"} else 200
                if endpoint in REDIRECTS:
                    expected = 302
                assert response.status_code == expected, (method, path, response.status_code)
                after = snapshot(app)
                if method == "GET" and endpoint in LOOKS:
                    assert _only_a_look(before, after), f"GET {endpoint}: not one audited look"
                    continue
                changed = _changed(before, after)
                assert not changed, f"{method} {endpoint} changed {changed}"
    assert requests >= 2 * len(endpoints)


def _sneaky_handler_refused(app: Any) -> None:
    from leadvault import db

    def sneaky() -> str:
        counters.increment(db.session(), "sneaky.get")
        return "wrote"

    app.add_url_rule("/sneaky", "sneaky", sneaky, methods=["GET", "POST"])
    client = app.test_client()
    before = snapshot(app)
    for method in ("GET", "HEAD"):  # OPTIONS: Flask answers it without the view
        response = client.open("/sneaky", method=method)
        assert response.status_code >= 500, method
        assert "Traceback" not in response.get_data(as_text=True)
    assert snapshot(app) == before
    # The same handler on POST may write.
    app.config["WTF_CSRF_ENABLED"] = False
    assert client.post("/sneaky").status_code == 200
    with uow(app) as s:
        assert counters.total(s, "sneaky.get") == 1


def test_a_get_handler_that_writes_is_refused(app):
    """The class, not only today's handlers: a GET's session may not write (here
    inside the test's transaction, where SQLAlchemy refuses it)."""
    _sneaky_handler_refused(app)


@pytest.mark.committing  # a connection of its own: the database's read-only mode
def test_a_get_handler_that_writes_is_refused_by_the_database(app, backend):
    """With a connection of its own, a GET's transaction is read-only in the database
    itself (PostgreSQL READ ONLY, SQLite query_only), whatever the code does."""
    from leadvault import db

    with app.app_context(), app.test_request_context("/", method="GET"):
        raw = db.session().connection().connection.driver_connection
        # Straight to the driver, past SQLAlchemy's guard: the database itself refuses.
        with pytest.raises(Exception) as refused:
            raw.execute("CREATE TABLE sneaky (x INTEGER)")
        expected = {"sqlite": "OperationalError", "postgresql": "ReadOnlySqlTransaction"}
        assert type(refused.value).__name__ == expected[backend], repr(refused.value)
    _sneaky_handler_refused(app)
