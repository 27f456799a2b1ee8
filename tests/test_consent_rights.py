"""Data-subject rights end to end: one-click unsubscribe (RFC 8058), the consent API,
manage-my-data, the preference center, access export, erasure, retention and the
refusal of tampered, expired and cross-purpose links.

Everything runs through the real app, the real database (SQLite and, when
configured, PostgreSQL), the real outbox and a real SMTP server.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import secrets
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from capture.models import Submission
from consent import retention, rights, service
from consent.models import (
    Consent,
    ConsentStatus,
    LedgerEntry,
    OptInRequest,
    Suppression,
)
from leadvault import api, clock, leads, outbox
from leadvault.app import runtime
from leadvault.cli import cli
from leadvault.db import unit_of_work
from leadvault.models import Lead, LeadAttribute, OutboxMessage, OutboxStatus
from tests import factories
from tests.conftest import (
    LiveServer,
    _smtp_config,
    deliver,
    free_port,
    make_form,
    render_token,
    unique_email,
)

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
BASE_URL = "http://127.0.0.1:5000"
SCHEMA = Path(__file__).resolve().parent.parent / "consent" / "static" / "access-export.v1.json"
# aiosmtpd (the test's mail server, not our code) logs the SMTP dialogue at DEBUG.
TEST_SMTP_LOGGER = "mail.log"


# --- helpers -----------------------------------------------------------------


def submit(app, client, form_id, email, **extra):
    payload = {
        "email": email,
        "consent": ["newsletter"],
        "render_token": render_token(app, form_id),
        **extra,
    }
    response = client.post(f"/f/{form_id}", json=payload)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def path_of(link: str) -> str:
    parts = urlsplit(link)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def text_of(mail) -> str:
    return mail.get_body(preferencelist=("plain",)).get_content()


def link_in(text: str, kind: str) -> str:
    [link] = re.findall(rf"http://\S+/{kind}/\S+", text)
    return link


def csrf_of(response) -> str:
    match = CSRF.search(response.get_data(as_text=True))
    assert match is not None, response.get_data(as_text=True)
    return match.group(1)


def deliver_new(app, smtp_server, expected: int):
    """Run the worker once over everything due; return the mails it sent (exactly ``expected``)."""
    before = len(smtp_server.messages)
    deliver(app)
    # Delivery is synchronous: the server has every mail once deliver() returns.
    received = smtp_server.messages[before:]
    assert len(received) == expected, [m["Subject"] for m in received]
    return received


def confirm(client, link: str):
    page = client.get(path_of(link))
    assert page.status_code == 200
    done = client.post(path_of(link), data={"csrf_token": csrf_of(page)})
    assert done.status_code == 200
    return done


def confirmed_lead(app, client, smtp_server, email: str, form_id: str | None = None, **extra):
    """Submit, deliver the opt-in mail, confirm, deliver the welcome mail; return both mails."""
    form_id = form_id or make_form(app)
    submit(app, client, form_id, email, **extra)
    [optin] = deliver_new(app, smtp_server, 1)
    assert optin["To"] == email
    confirm(client, link_in(text_of(optin), "c"))
    [welcome] = deliver_new(app, smtp_server, 1)
    assert welcome["To"] == email
    return optin, welcome


def lead_of(app, email: str) -> Lead | None:
    with app.app_context(), runtime(app).session_factory() as s:
        return leads.find_by_email(s, email)


def status_of(app, email: str, purpose: str = "newsletter") -> str | None:
    with app.app_context(), runtime(app).session_factory() as s:
        lead = leads.find_by_email(s, email)
        if lead is None:
            return None
        state = service.states(s, lead.id).get(purpose)
        return state.status if state else None


def ledger_events(app, lead_id: uuid.UUID) -> list[tuple[str, str | None, str | None]]:
    with app.app_context(), runtime(app).session_factory() as s:
        rows = s.scalars(
            sa.select(LedgerEntry)
            .where(LedgerEntry.subject == str(lead_id))
            .order_by(LedgerEntry.id)
        )
        return [(row.event, row.purpose, row.detail) for row in rows]


def manage_link(app, client, smtp_server, email: str) -> str:
    """Ask for the preference-center link as a visitor does; return its path."""
    page = client.get("/manage")
    assert page.status_code == 200
    sent = client.post("/manage", data={"csrf_token": csrf_of(page), "email": email})
    assert sent.status_code == 200
    [mail] = deliver_new(app, smtp_server, 1)
    assert mail["To"] == email
    assert mail["Subject"] == "Your link to manage your data"
    return path_of(link_in(text_of(mail), "p"))


def page_link(response, kind: str) -> str:
    [link] = re.findall(rf'href="(/{kind}/[^"]+)"', response.get_data(as_text=True))
    return link


def cli_env(app) -> dict[str, str]:
    settings = runtime(app).settings
    return {
        "LEADVAULT_INSTANCE": str(settings.instance),
        "LEADVAULT_DATABASE_URL": settings.database_url.replace("+psycopg", ""),
        "LEADVAULT_KEYRING": str(settings.keyring),
    }


def assert_no_crash(response) -> None:
    assert response.status_code < 500
    assert "Traceback" not in response.get_data(as_text=True)


def http(method: str, url: str, *, body: bytes | None = None, content_type: str | None = None):
    """A cookie-less request from outside, as a mail provider's server makes it."""
    headers = {"User-Agent": "ExampleMail-Unsubscriber/1.0"}
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


# --- 1. RFC 8058 one-click unsubscribe ------------------------------------------


def _unsubscribe_target(welcome) -> str:
    """Parse List-Unsubscribe as a mail provider does and pick the HTTP(S) URI."""
    header = welcome["List-Unsubscribe"]
    assert header is not None
    targets = re.findall(r"<([^>]+)>", str(header))
    [url] = [t for t in targets if t.startswith(("https://", "http://"))]
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return url


def _queue_news(app, email: str) -> int:
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        lead = leads.find_by_email(s, email)
        row = rights.queue_marketing_mail(
            s,
            lead,
            "newsletter",
            template="news",
            subject="Our spring news",
            text="News.",
            html="<p>News.</p>",
        )
        assert row.status == OutboxStatus.PENDING
        return row.id


def _outbox_status(app, outbox_id: int) -> str:
    with app.app_context(), runtime(app).session_factory() as s:
        return s.get(OutboxMessage, outbox_id).status


@pytest.mark.committing
@pytest.mark.parametrize("encoding", ["application/x-www-form-urlencoded", "multipart/form-data"])
def test_one_click_unsubscribe_as_a_mail_provider(app, client, smtp_server, encoding):
    email = unique_email("rfc8058")
    optin, welcome = confirmed_lead(app, client, smtp_server, email)
    # The opt-in mail is transactional: no one-click unsubscribe.
    assert optin["List-Unsubscribe-Post"] is None
    assert optin["List-Unsubscribe"] is None
    url = _unsubscribe_target(welcome)
    assert url.startswith(f"{BASE_URL}/u/")
    lead_id = lead_of(app, email).id
    queued = _queue_news(app, email)

    with LiveServer(app) as server:
        target = server.url + path_of(url)
        # Link scanners and prefetchers (GET, HEAD) change nothing.
        status, headers, body = http("GET", target)
        assert status == 200
        assert headers["Cache-Control"] == "no-store"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert b"Traceback" not in body
        status, _headers, _body = http("HEAD", target)
        assert status == 200
        assert status_of(app, email) == ConsentStatus.GRANTED
        assert _outbox_status(app, queued) == OutboxStatus.PENDING

        # The provider's POST: cross-site, no cookies, no CSRF token.
        if encoding == "multipart/form-data":
            boundary = f"----provider{secrets.token_hex(8)}"
            payload = (
                f"--{boundary}\r\n"
                'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
                f"One-Click\r\n--{boundary}--\r\n"
            ).encode()
            content_type = f"multipart/form-data; boundary={boundary}"
        else:
            payload = b"List-Unsubscribe=One-Click"
            content_type = encoding
        status, _headers, body = http("POST", target, body=payload, content_type=content_type)
        assert 200 <= status < 300, body
        assert b"You are unsubscribed" in body

    assert status_of(app, email) == ConsentStatus.WITHDRAWN
    assert ("withdrawn", "newsletter", "one-click unsubscribe") in ledger_events(app, lead_id)
    # The marketing mail queued for the purpose is cancelled; the sent welcome stays sent.
    assert _outbox_status(app, queued) == OutboxStatus.CANCELLED
    deliver_new(app, smtp_server, 0)
    with app.app_context(), runtime(app).session_factory() as s:
        welcome_row = s.scalars(
            sa.select(OutboxMessage).where(
                OutboxMessage.lead_id == lead_id, OutboxMessage.template == "welcome"
            )
        ).one()
        assert welcome_row.status == OutboxStatus.SENT
    # A second POST (providers retry) is harmless and gives the same answer.
    again = app.test_client().post(
        path_of(url), data={"List-Unsubscribe": "One-Click"}, content_type=encoding
    )
    assert again.status_code == 200
    assert [e for e in ledger_events(app, lead_id) if e[0] == "withdrawn"] == [
        ("withdrawn", "newsletter", "one-click unsubscribe")
    ]


def test_unsubscribe_post_without_one_click_body_changes_nothing(app, client, smtp_server):
    email = unique_email("half")
    _optin, welcome = confirmed_lead(app, client, smtp_server, email)
    url = _unsubscribe_target(welcome)
    fresh = app.test_client()
    response = fresh.post(path_of(url), data={"List-Unsubscribe": "Something-Else"})
    assert response.status_code == 400
    assert_no_crash(response)
    assert status_of(app, email) == ConsentStatus.GRANTED


# --- 2. the consent API ----------------------------------------------------------


def _api_token(app, name: str, scopes: list[str]) -> str:
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        return api.create_token(s, name, scopes)


def test_consent_api(app, client, smtp_server):
    email = unique_email("api")
    lead_id = factories.lead(app, email)  # the sign-up flow is not under test here
    token = _api_token(app, "newsletter-tool", ["consent:read"])
    auth = {"Authorization": f"Bearer {token}"}

    response = client.get("/api/v1/consent", query_string={"email": email}, headers=auth)
    assert response.status_code == 200
    data = response.get_json()
    with app.app_context(), runtime(app).session_factory() as s:
        keys = service.purpose_keys(s)
    assert set(data["purposes"]) == keys
    assert data["purposes"]["newsletter"] == "granted"
    assert all(data["purposes"][p] == "none" for p in keys - {"newsletter"})
    assert set(data["unsubscribe_urls"]) == keys
    with app.app_context(), runtime(app).session_factory() as s:
        for purpose, url in data["unsubscribe_urls"].items():
            assert url.startswith(f"{BASE_URL}/u/")
            # Signed: it names exactly this lead and this purpose.
            assert rights.read_unsubscribe(s, url.rsplit("/", 1)[1]) == (lead_id, purpose)
            with pytest.raises(rights.TokenInvalid):
                rights.read_unsubscribe(s, factories.tampered(url.rsplit("/", 1)[1]))

    # The URL the API hands out works as a one-click unsubscribe.
    done = app.test_client().post(
        path_of(data["unsubscribe_urls"]["newsletter"]), data={"List-Unsubscribe": "One-Click"}
    )
    assert done.status_code == 200
    after = client.get("/api/v1/consent", query_string={"email": email}, headers=auth)
    assert after.get_json()["purposes"]["newsletter"] == "withdrawn"

    # Case and surrounding space of the address do not matter.
    shouted = client.get(
        "/api/v1/consent", query_string={"email": f"  {email.upper()} "}, headers=auth
    )
    assert shouted.status_code == 200

    missing = client.get("/api/v1/consent", query_string={"email": email})
    wrong = client.get(
        "/api/v1/consent", query_string={"email": email}, headers={"Authorization": "Bearer lv_x"}
    )
    not_bearer = client.get(
        "/api/v1/consent", query_string={"email": email}, headers={"Authorization": token}
    )
    other_scope = _api_token(app, "event-feed", ["events:write"])
    scoped = client.get(
        "/api/v1/consent",
        query_string={"email": email},
        headers={"Authorization": f"Bearer {other_scope}"},
    )
    for refused in (missing, wrong, not_bearer, scoped):
        assert refused.status_code == 401
        assert refused.is_json
        assert refused.get_json()["status"] == 401
        assert "consent:read" in refused.get_json()["error"]
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert email not in refused.get_data(as_text=True)

    no_email = client.get("/api/v1/consent", headers=auth)
    blank = client.get("/api/v1/consent", query_string={"email": "  "}, headers=auth)
    for bad in (no_email, blank):
        assert bad.status_code == 400
        assert bad.is_json
        assert "email" in bad.get_json()["error"]

    unknown = client.get(
        "/api/v1/consent", query_string={"email": unique_email("nobody")}, headers=auth
    )
    assert unknown.status_code == 404
    assert unknown.is_json

    # The POST variant answers the same without the address in the URL.
    posted = client.post("/api/v1/consent/lookup", json={"email": email}, headers=auth)
    assert posted.status_code == 200
    assert posted.get_json()["purposes"] == after.get_json()["purposes"]

    def signed_payloads(reply):  # the tokens' timestamps may differ by a second
        urls = reply.get_json()["unsubscribe_urls"]
        return {p: url.rsplit("/", 1)[1].split(".")[0] for p, url in urls.items()}

    assert signed_payloads(posted) == signed_payloads(after)
    assert client.post("/api/v1/consent/lookup", json={"email": email}).status_code == 401
    for body in ({}, {"email": "  "}, {"email": 7}, ["x"]):
        refused = client.post("/api/v1/consent/lookup", json=body, headers=auth)
        assert refused.status_code == 400 and "email" in refused.get_json()["error"], body
    not_json = client.post("/api/v1/consent/lookup", data="email=x", headers=auth)
    assert not_json.status_code == 400 and "JSON" in not_json.get_json()["error"]
    nobody = {"email": unique_email("nobody")}
    assert client.post("/api/v1/consent/lookup", json=nobody, headers=auth).status_code == 404

    # A revoked token no longer opens the API.
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        assert api.revoke_token(s, "newsletter-tool")
    revoked = client.get("/api/v1/consent", query_string={"email": email}, headers=auth)
    assert revoked.status_code == 401


# --- 3. manage my data -------------------------------------------------------------


def test_manage_replies_the_same_for_known_and_unknown(make_app, smtp_server):
    app = make_app(smtp_url=_smtp_config(smtp_server.port))
    client = app.test_client()
    known = unique_email("known")
    submit(app, client, make_form(app), known)
    deliver_new(app, smtp_server, 1)

    page = client.get("/manage")
    assert page.status_code == 200
    token = csrf_of(page)
    for_known = client.post("/manage", data={"csrf_token": token, "email": known})
    for_unknown = client.post(
        "/manage", data={"csrf_token": token, "email": unique_email("stranger")}
    )
    assert for_known.status_code == for_unknown.status_code == 200
    assert for_known.get_data() == for_unknown.get_data()
    assert for_known.headers["Cache-Control"] == for_unknown.headers["Cache-Control"]
    assert known not in for_known.get_data(as_text=True)
    # Only the known address gets a mail.
    [mail] = deliver_new(app, smtp_server, 1)
    assert mail["To"] == known
    assert "/p/" in text_of(mail)

    # Rate limited per client: the third request within the hour is refused.
    limited = make_app(smtp_url=_smtp_config(smtp_server.port), rate_limit_manage="2/hour")
    other = limited.test_client()
    token = csrf_of(other.get("/manage"))
    replies = [
        other.post("/manage", data={"csrf_token": token, "email": unique_email("many")})
        for _ in range(3)
    ]
    assert [r.status_code for r in replies] == [200, 200, 429]
    assert_no_crash(replies[2])
    assert "Too many requests" in replies[2].get_data(as_text=True)
    # … and per address: one address asked for from three networks. Past the limit
    # the reply stays the same (nobody is locked out) but no further request is queued.
    from leadvault.models import InboxItem

    with runtime(limited).session_factory() as s:
        queued_before = s.scalar(sa.select(sa.func.count()).select_from(InboxItem))
    target = unique_email("target")
    replies = [
        other.post(
            "/manage",
            data={"csrf_token": token, "email": target},
            environ_base={"REMOTE_ADDR": f"198.51.100.{i}"},
        )
        for i in (1, 2, 3)
    ]
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert replies[2].get_data() == replies[0].get_data()
    with runtime(limited).session_factory() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(InboxItem)) == queued_before + 2


# --- 4. the preference center ---------------------------------------------------------


def _state_cell(body: str, purpose_label: str) -> str:
    match = re.search(rf'<th scope="row">{re.escape(purpose_label)}</th>\s*<td>([^<]*)</td>', body)
    assert match is not None, body
    return match.group(1)


def test_preference_center(app, client, smtp_server):
    email = unique_email("prefs")
    confirmed_lead(app, client, smtp_server, email, first_name="Ottoline")
    lead_id = lead_of(app, email).id
    prefs = manage_link(app, client, smtp_server, email)

    page = client.get(prefs)
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    body = page.get_data(as_text=True)
    assert "Ottoline" in body  # decrypted for the lead, and only here
    assert email in body
    assert _state_cell(body, "Newsletter by email") == "given"
    assert _state_cell(body, "Contact by our sales team") == "not given"

    # Withdraw.
    withdrawn = client.post(
        prefs + "/withdraw", data={"csrf_token": csrf_of(page), "purpose": "newsletter"}
    )
    assert withdrawn.status_code == 200
    assert withdrawn.headers["Cache-Control"] == "no-store"
    assert "Consent withdrawn" in withdrawn.get_data(as_text=True)
    assert status_of(app, email) == ConsentStatus.WITHDRAWN
    assert ("withdrawn", "newsletter", "preference center") in ledger_events(app, lead_id)
    page = client.get(prefs)
    assert _state_cell(page.get_data(as_text=True), "Newsletter by email") == "withdrawn"

    # An unknown purpose or action is refused with a page, not a crash.
    bogus = client.post(prefs + "/withdraw", data={"csrf_token": csrf_of(page), "purpose": "x"})
    assert bogus.status_code == 400
    assert_no_crash(bogus)
    bogus = client.post(
        prefs + "/delete", data={"csrf_token": csrf_of(page), "purpose": "newsletter"}
    )
    assert bogus.status_code == 400
    assert_no_crash(bogus)
    # Without the CSRF token nothing changes.
    forged = app.test_client().post(prefs + "/grant", data={"purpose": "newsletter"})
    assert forged.status_code == 400
    assert status_of(app, email) == ConsentStatus.WITHDRAWN

    # Agreeing again is double opt-in again: pending until the new mail is confirmed.
    granted = client.post(
        prefs + "/grant", data={"csrf_token": csrf_of(page), "purpose": "newsletter"}
    )
    assert granted.status_code == 200
    assert "confirm with the link" in granted.get_data(as_text=True)
    assert status_of(app, email) == ConsentStatus.PENDING
    [optin] = deliver_new(app, smtp_server, 1)
    assert optin["To"] == email
    assert optin["Subject"] == "Please confirm your email address"
    assert optin["List-Unsubscribe"] is None
    assert "Ottoline" in text_of(optin)
    confirm(client, link_in(text_of(optin), "c"))
    assert status_of(app, email) == ConsentStatus.GRANTED
    events = [e[0] for e in ledger_events(app, lead_id)]
    assert events == ["requested", "confirmed", "withdrawn", "requested", "confirmed"]


# --- 5. access export ---------------------------------------------------------------


def test_access_export_validates_and_works_once(app, client, smtp_server):
    email = unique_email("export")
    first_form = make_form(app, name="Newsletter footer")
    second_form = make_form(app, name="Newsletter sidebar")
    submit(
        app,
        client,
        first_form,
        email,
        first_name="Imogen",
        last_name="Faraday",
        utm_source="spring-mailing",
        page_url="https://www.example.com/blog/privacy",
    )
    submit(
        app,
        client,
        second_form,
        email,
        utm_source="partner-site",
        page_url="https://www.example.com/pricing",
    )
    [optin] = deliver_new(app, smtp_server, 1)  # one opt-in mail for both
    confirm(client, link_in(text_of(optin), "c"))
    deliver_new(app, smtp_server, 1)  # welcome
    prefs = manage_link(app, client, smtp_server, email)

    page = client.get(prefs)
    access = page_link(page, "a")
    # Following the link (as a scanner would) shows a button and uses nothing up.
    for _ in range(2):
        shown = client.get(access)
        assert shown.status_code == 200
        assert shown.headers["Cache-Control"] == "no-store"
        assert shown.headers.get("Content-Disposition") is None
    download = client.post(access, data={"csrf_token": csrf_of(shown)})
    assert download.status_code == 200
    assert download.mimetype == "application/json"
    assert download.headers["Cache-Control"] == "no-store"
    assert download.headers["Referrer-Policy"] == "no-referrer"
    assert "attachment" in download.headers["Content-Disposition"]
    document = json.loads(download.get_data(as_text=True))

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []
    # The schema the document names is served.
    served = client.get(urlsplit(document["schema"]).path)
    assert served.status_code == 200
    assert json.loads(served.get_data(as_text=True)) == schema

    lead = document["lead"]
    assert lead["email"] == email
    assert lead["profile"] == {"first_name": "Imogen", "last_name": "Faraday"}
    assert lead["id"] == str(lead_of(app, email).id)
    by_form = {s["form"]: s for s in document["submissions"]}
    assert set(by_form) == {first_form, second_form}
    assert by_form[first_form]["source"] == {
        "utm_source": "spring-mailing",
        "page_url": "https://www.example.com/blog/privacy",
    }
    assert by_form[second_form]["source"] == {
        "utm_source": "partner-site",
        "page_url": "https://www.example.com/pricing",
    }
    [newsletter] = [c for c in document["consents"] if c["purpose"] == "newsletter"]
    assert newsletter["status"] == "granted"
    assert newsletter["text"]
    assert newsletter["text_version"] == 1
    assert [e["event"] for e in document["consent_ledger"]] == ["requested", "confirmed"]
    mails = {m["template"]: m for m in document["mails"]}
    assert set(mails) == {"optin", "welcome", "manage"}
    assert all(m["status"] == "sent" and m["sent_at"] for m in mails.values())
    assert mails["optin"]["subject"] == "Please confirm your email address"

    # The link works once.
    again = client.get(access)
    assert again.status_code == 410
    body = again.get_data(as_text=True)
    assert "already used" in body
    assert 'href="/manage"' in body
    assert email not in body
    assert_no_crash(again)
    # A fresh preference-center page hands out a fresh link.
    fresh = client.get(page_link(client.get(prefs), "a"))
    assert fresh.status_code == 200


# --- 6. erasure ------------------------------------------------------------------------


PERSONAL_TABLES = (
    (LeadAttribute, LeadAttribute.lead_id),
    (Submission, Submission.lead_id),
    (Consent, Consent.lead_id),
    (OptInRequest, OptInRequest.lead_id),
    (OutboxMessage, OutboxMessage.lead_id),
)


def _raw_sqlite_bytes(app) -> dict[str, bytes]:
    database = Path(runtime(app).engine.url.database)
    files = [p for p in database.parent.iterdir() if p.is_file()]
    files += [p for p in Path(runtime(app).settings.instance).rglob("*") if p.is_file()]
    assert database in files
    return {str(p): p.read_bytes() for p in files}


def _postgres_texts(app) -> dict[str, str]:
    engine = runtime(app).engine
    tables = sa.inspect(engine).get_table_names()
    assert "leads" in tables and "outbox" in tables
    texts = {}
    with engine.connect() as connection:
        for table in tables:
            rows = connection.execute(sa.text(f'SELECT t::text FROM "{table}" t')).scalars()
            texts[table] = "\n".join(rows)
    return texts


@pytest.mark.committing
def test_erasure_leaves_nothing_readable(app, client, smtp_server, backend, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="leadvault")
    hexpart = secrets.token_hex(4)
    people = [
        (f"quokka.{hexpart}@example.org", "Quokkabelle", "Tarantallegra"),
        (f"numbat.{hexpart}@example.org", "Numbatrice", "Wollemiadottir"),
    ]
    form_id = make_form(app)
    welcomes = [
        confirmed_lead(
            app, client, smtp_server, email, form_id=form_id, first_name=first, last_name=last
        )[1]
        for email, first, last in people
    ]
    by_web, by_cli = (lead_of(app, p[0]) for p in people)
    ids = [by_web.id, by_cli.id]
    wrapped = [by_web.wrapped_key, by_cli.wrapped_key]
    assert all(len(w) >= 32 for w in wrapped)
    with app.app_context(), runtime(app).session_factory() as s:
        for model, column in PERSONAL_TABLES:
            assert s.scalar(sa.select(sa.func.count()).where(column.in_(ids))), model

    # The first lead erases itself through the preference center.
    prefs = manage_link(app, client, smtp_server, people[0][0])
    erase_link = page_link(client.get(prefs), "e")
    ask = client.get(erase_link)
    assert ask.status_code == 200
    assert ask.headers["Cache-Control"] == "no-store"
    assert lead_of(app, people[0][0]) is not None  # GET erases nothing
    erased = client.post(erase_link, data={"csrf_token": csrf_of(ask)})
    assert erased.status_code == 200
    assert "Your data is erased" in erased.get_data(as_text=True)
    # Every link of the erased lead now says so, without a crash.
    for gone in (client.get(prefs), client.get(erase_link)):
        assert gone.status_code == 410
        assert_no_crash(gone)

    # The second by letter: the operator uses the CLI.
    runner = CliRunner()
    result = runner.invoke(
        cli, ["leads", "erase", "--email", people[1][0], "--yes"], env=cli_env(app), obj=app
    )
    assert result.exit_code == 0, result.output
    assert people[1][0] not in result.output
    again = runner.invoke(
        cli, ["leads", "erase", "--email", people[1][0], "--yes"], env=cli_env(app), obj=app
    )
    assert again.exit_code == 1

    with app.app_context(), runtime(app).session_factory() as s:
        assert s.scalar(sa.select(sa.func.count()).where(Lead.id.in_(ids))) == 0
        for model, column in PERSONAL_TABLES:
            assert s.scalar(sa.select(sa.func.count()).where(column.in_(ids))) == 0, model
        vault = runtime(app).vault
        for email, _first, _last in people:
            assert s.get(Suppression, vault.blind_index(email)) is not None
            assert service.is_suppressed(s, email)
    for lead_id in ids:
        assert ledger_events(app, lead_id)[-1][0] == "erased"
    verified = runner.invoke(cli, ["consent", "verify"], env=cli_env(app), obj=app)
    assert verified.exit_code == 0, verified.output
    proof = runner.invoke(
        cli, ["consent", "proof", "--email", people[0][0]], env=cli_env(app), obj=app
    )
    assert proof.exit_code == 1
    # A mail provider's one-click unsubscribe for an erased lead still gets its 2xx.
    for welcome in welcomes:
        late = app.test_client().post(
            path_of(_unsubscribe_target(welcome)), data={"List-Unsubscribe": "One-Click"}
        )
        assert late.status_code == 200
        assert_no_crash(late)
    assert lead_of(app, people[0][0]) is None

    plaintexts = [value for person in people for value in person]
    if backend == "sqlite":
        for name, raw in _raw_sqlite_bytes(app).items():
            for value in plaintexts:
                assert value.encode() not in raw, f"{value!r} in {name}"
                assert value.encode("utf-16-le") not in raw, f"{value!r} in {name}"
            for key in wrapped:
                # The wrapped data key is gone, not just unreachable: no ciphertext
                # of the lead can ever be decrypted again.
                assert key not in raw, f"wrapped data key still in {name}"
    else:
        for table, text in _postgres_texts(app).items():
            for value in plaintexts:
                assert value not in text, f"{value!r} in table {table}"
            for key in wrapped:
                assert key.hex() not in text, f"wrapped data key still in table {table}"

    logged = "\n".join(
        f"{r.name} {r.getMessage()}" for r in caplog.records if r.name != TEST_SMTP_LOGGER
    )
    assert caplog.records, "expected some log output to check"
    for value in plaintexts:
        assert value.lower() not in logged.lower()

    # The same address may come back: a new lead, a new id, a fresh opt-in.
    submit(app, client, form_id, people[0][0])
    [optin] = deliver_new(app, smtp_server, 1)
    assert optin["To"] == people[0][0]
    assert optin["Subject"] == "Please confirm your email address"
    assert "Quokkabelle" not in text_of(optin)
    back = lead_of(app, people[0][0])
    assert back is not None
    assert back.id not in ids
    assert status_of(app, people[0][0]) == ConsentStatus.PENDING
    with app.app_context(), runtime(app).session_factory() as s:
        assert leads.attributes_of(s, s.get(Lead, back.id)) == {}
        assert not service.is_suppressed(s, people[0][0])
    assert [e[0] for e in ledger_events(app, back.id)] == ["requested"]


# --- 7. retention ------------------------------------------------------------------------


def _optin_link_queued(app, email: str) -> str:
    with app.app_context(), runtime(app).session_factory() as s:
        lead = leads.find_by_email(s, email)
        [row] = s.scalars(sa.select(OutboxMessage).where(OutboxMessage.lead_id == lead.id))
        assert row.template == "optin"
        assert row.status == OutboxStatus.PENDING
        return link_in(outbox.read_content(s, row).text, "c")


def test_purge_erases_expired_requests_only(make_app, caplog):
    caplog.set_level(logging.INFO)
    app = make_app(smtp_url=_smtp_config(free_port()))  # nobody listens: mails stay queued
    client = app.test_client()
    form_id = make_form(app)
    clock.freeze(dt.datetime.now(dt.UTC).replace(microsecond=0))

    old, young = unique_email("old"), unique_email("young")
    submit(app, client, form_id, old)
    deliver(app)  # the attempt fails; the mail stays queued
    clock.advance(dt.timedelta(days=2))
    submit(app, client, form_id, young)
    deliver(app)
    clock.advance(dt.timedelta(days=6))  # old: 8 days, young: 6 days

    old_link, young_link = _optin_link_queued(app, old), _optin_link_queued(app, young)
    old_id, young_id = lead_of(app, old).id, lead_of(app, young).id

    caplog.clear()
    result = CliRunner().invoke(cli, ["purge"], env=cli_env(app), obj=app)
    assert result.exit_code == 0, result.output
    assert "requests expired: 1" in result.output
    assert "leads erased unconfirmed: 1" in result.output

    with app.app_context(), runtime(app).session_factory() as s:
        assert s.get(Lead, old_id) is None
        assert not list(s.scalars(sa.select(OptInRequest).where(OptInRequest.lead_id == old_id)))
        assert not list(s.scalars(sa.select(OutboxMessage).where(OutboxMessage.lead_id == old_id)))
        assert s.get(Lead, young_id) is not None
        [request] = s.scalars(sa.select(OptInRequest).where(OptInRequest.lead_id == young_id))
        assert request.confirmed_at is None
        [queued] = s.scalars(sa.select(OutboxMessage).where(OutboxMessage.lead_id == young_id))
        assert queued.status == OutboxStatus.PENDING
        assert queued.template == "optin"
    assert [e[0] for e in ledger_events(app, old_id)] == ["requested", "expired", "erased"]
    assert [e[0] for e in ledger_events(app, young_id)] == ["requested"]

    [line] = [r.getMessage() for r in caplog.records if r.name == "leadvault.retention"]
    assert "requests_expired=1" in line
    assert "leads_erased_unconfirmed=1" in line
    assert "@" not in line
    assert old.split("@")[0] not in line and young.split("@")[0] not in line
    assert all(old not in r.getMessage() for r in caplog.records)

    # The old link's request went with its lead: the link is no longer valid, offers no
    # new one (there is nothing to resend), and a forged resend revives nothing.
    expired = client.get(path_of(old_link))
    assert expired.status_code == 410
    assert "This link is no longer valid" in expired.get_data(as_text=True)
    assert "/resend" not in expired.get_data(as_text=True)
    token = csrf_of(client.get("/manage"))
    resend = client.post(path_of(old_link) + "/resend", data={"csrf_token": token})
    assert resend.status_code == 410
    assert lead_of(app, old) is None
    # The young request still confirms.
    confirm(client, young_link)
    assert status_of(app, young) == ConsentStatus.GRANTED


# --- 8. tampered, expired and cross-purpose links -------------------------------------------


def test_tampered_expired_and_cross_purpose_links(app, client, smtp_server, monkeypatch):
    email = unique_email("links")
    form_id = make_form(app)
    submit(app, client, form_id, email)
    [optin] = deliver_new(app, smtp_server, 1)
    optin_token = urlsplit(link_in(text_of(optin), "c")).path.rsplit("/", 1)[1]
    confirm(client, link_in(text_of(optin), "c"))
    [welcome] = deliver_new(app, smtp_server, 1)
    unsubscribe = path_of(_unsubscribe_target(welcome))
    prefs = manage_link(app, client, smtp_server, email)
    prefs_token = prefs.rsplit("/", 1)[1]
    page = client.get(prefs)
    access_token = page_link(page, "a").rsplit("/", 1)[1]
    erase_token = page_link(page, "e").rsplit("/", 1)[1]
    csrf = csrf_of(page)

    responses = []

    def check(response, status: int, text: str):
        responses.append(response)
        assert response.status_code == status, response.get_data(as_text=True)
        assert text in response.get_data(as_text=True)
        assert response.headers["Cache-Control"] == "no-store"
        return response

    invalid = "This link is not valid"
    check(client.get(f"/p/{optin_token}"), 400, invalid)
    check(client.get(f"/c/{prefs_token}"), 400, invalid)
    check(client.get(f"/a/{prefs_token}"), 400, invalid)
    check(client.get(f"/e/{access_token}"), 400, invalid)
    check(client.get(f"/a/{erase_token}"), 400, invalid)
    check(client.get(f"/u/{prefs_token}"), 400, invalid)
    check(client.get(f"/p/{access_token}"), 400, invalid)
    check(
        client.post(
            f"/p/{optin_token}/withdraw", data={"csrf_token": csrf, "purpose": "newsletter"}
        ),
        400,
        invalid,
    )
    tampered_unsubscribe = factories.tampered(unsubscribe)
    check(client.get(tampered_unsubscribe), 400, invalid)
    check(
        app.test_client().post(tampered_unsubscribe, data={"List-Unsubscribe": "One-Click"}),
        400,
        invalid,
    )
    check(client.get(factories.tampered(prefs)), 400, invalid)
    check(client.get("/p/not-a-token"), 400, invalid)
    check(client.get("/a/" + "A" * 300), 400, invalid)
    # Genuine signatures around malformed payloads are refused the same way.
    vault = runtime(app).vault
    for payload in ("just a string", {"l": "not-a-uuid"}, {"l": 42}, [1, 2]):
        check(client.get(f"/p/{vault.sign(rights.PREFS, payload)}"), 400, invalid)
        check(client.get(f"/a/{vault.sign(rights.ACCESS, payload)}"), 400, invalid)
        check(client.get(f"/u/{vault.sign(rights.UNSUBSCRIBE, payload)}"), 400, invalid)
    # Nothing changed along the way.
    assert status_of(app, email) == ConsentStatus.GRANTED
    assert lead_of(app, email) is not None

    # A day and more later the preference-center link has expired: a page offering a new one.
    clock.advance(dt.timedelta(days=2))
    expired = check(client.get(prefs), 410, "This link has expired")
    assert 'href="/manage"' in expired.get_data(as_text=True)
    assert "Get a new link" in expired.get_data(as_text=True)
    check(client.get(f"/a/{access_token}"), 410, "This link has expired")
    check(client.get(f"/e/{erase_token}"), 410, "This link has expired")
    # Unsubscribe links never expire: a lead must always be able to leave.
    check(client.get(unsubscribe), 200, "Unsubscribe")
    assert status_of(app, email) == ConsentStatus.GRANTED

    for response in responses:
        assert_no_crash(response)


def test_purge_keeps_a_lead_whose_newer_request_is_open(make_app):
    app = make_app(smtp_url=_smtp_config(free_port()))  # nobody listens: mails stay queued
    client = app.test_client()
    form_id = make_form(app)
    clock.freeze(dt.datetime.now(dt.UTC).replace(microsecond=0))
    email = unique_email("again")
    submit(app, client, form_id, email)
    deliver(app)  # the attempt fails; the mail stays queued
    clock.advance(dt.timedelta(days=6))
    submit(app, client, form_id, email)  # asks again: a second, fresh request and mail
    deliver(app)
    clock.advance(dt.timedelta(days=2))  # first request 8 days old, second 2 days
    lead_id = lead_of(app, email).id
    with app.app_context(), runtime(app).session_factory() as s:
        rows = list(
            s.scalars(
                sa.select(OutboxMessage)
                .where(OutboxMessage.lead_id == lead_id)
                .order_by(OutboxMessage.id)
            )
        )
        assert [row.template for row in rows] == ["optin", "optin"]
        fresh_link = link_in(outbox.read_content(s, rows[-1]).text, "c")

    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        counts = retention.purge(s)
    assert counts["requests_expired"] == 1
    assert counts["leads_erased_unconfirmed"] == 0

    # The lead who asked two days ago is still there, waiting for the fresh confirmation.
    assert lead_of(app, email) is not None
    assert status_of(app, email) == ConsentStatus.PENDING
    with app.app_context(), runtime(app).session_factory() as s:
        [open_request] = s.scalars(sa.select(OptInRequest).where(OptInRequest.lead_id == lead_id))
        assert open_request.confirmed_at is None
    confirm(client, fresh_link)
    assert status_of(app, email) == ConsentStatus.GRANTED
    assert [e[0] for e in ledger_events(app, lead_id)] == [
        "requested",
        "requested",
        "expired",
        "confirmed",
    ]


def test_withdrawn_proof_is_purged_after_retention_and_chain_verifies(app, client, smtp_server):
    """Proof of a withdrawn consent (or of an erased lead) is kept for the retention
    period (three years by default), then purged; the ledger still verifies."""
    import datetime as dt

    from capture.definitions import PurposeSpec
    from consent import ledger, optin, retention, service
    from consent.ledger import RequestMeta
    from consent.models import LedgerEntry, OptInRequest
    from leadvault import clock, leads
    from leadvault.db import unit_of_work

    form_id = make_form(
        app, purposes=[PurposeSpec("newsletter", True), PurposeSpec("tracking", False)]
    )
    stays, leaves = unique_email("stays"), unique_email("leaves")
    for email, purposes in ((stays, ["newsletter", "tracking"]), (leaves, ["newsletter"])):
        client.post(
            f"/f/{form_id}",
            json={"email": email, "consent": purposes, "render_token": render_token(app, form_id)},
        )
    deliver(app)
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        stays_id = leads.find_by_email(s, stays).id
        leaves_id = leads.find_by_email(s, leaves).id
        for request in s.scalars(sa.select(OptInRequest)):
            optin.confirm(s, request, meta=RequestMeta())
        service.withdraw(s, stays_id, ["tracking"], meta=RequestMeta())
        service.withdraw(s, leaves_id, ["newsletter"], meta=RequestMeta())
    start = clock.now()

    clock.freeze(start + dt.timedelta(days=1094))
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        counts = retention.purge(s)
    assert counts["proofs_purged"] == 0
    assert counts["leads_erased_inactive"] == 1  # "leaves" has no consent left

    clock.freeze(start + dt.timedelta(days=1096))
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        counts = retention.purge(s)
    assert counts["proofs_purged"] == 3  # tracking: requested, confirmed, withdrawn
    with app.app_context(), runtime(app).session_factory() as s:
        assert [(e.event, e.purpose) for e in ledger.history(s, str(stays_id))] == [
            ("requested", "newsletter"),
            ("confirmed", "newsletter"),
        ]
        assert set(service.states(s, stays_id)) == {"newsletter"}
        assert len(ledger.history(s, str(leaves_id))) == 4  # kept: erased only 2 days ago
        assert ledger.verify(s).ok

    clock.freeze(start + dt.timedelta(days=1094 + 1096))
    with app.app_context(), unit_of_work(runtime(app).session_factory) as s:
        assert retention.purge(s)["proofs_purged"] == 4
    with app.app_context(), runtime(app).session_factory() as s:
        assert ledger.history(s, str(leaves_id)) == []
        assert ledger.verify(s).ok
        pruned = s.scalars(sa.select(LedgerEntry).where(LedgerEntry.pruned_at.is_not(None))).all()
        assert len(pruned) == 7
        assert all(e.subject == "-" and e.ip_prefix is None for e in pruned)

    # Marking another entry as pruned without a pruning record is caught.
    with runtime(app).session_factory.begin() as s:
        s.execute(
            sa.update(LedgerEntry)
            .where(LedgerEntry.subject == str(stays_id))
            .values(pruned_at=clock.now())
        )
    with app.app_context(), runtime(app).session_factory() as s:
        assert not ledger.verify(s).ok
