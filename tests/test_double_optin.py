"""Capture → opt-in mail → confirmation, through real SMTP and the real ledger."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from consent.models import ConsentStatus, LedgerEntry
from leadvault import leads
from leadvault.app import runtime
from leadvault.cli import cli
from tests import factories
from tests.conftest import deliver, make_form, render_token, unique_email

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def submit(app, client, form_id, email, **extra):
    payload = {
        "email": email,
        "consent": ["newsletter"],
        "render_token": render_token(app, form_id),
        **extra,
    }
    return client.post(f"/f/{form_id}", json=payload)


def confirm_link(mail) -> str:
    text = mail.get_body(preferencelist=("plain",)).get_content()
    [link] = re.findall(r"http://\S+/c/\S+", text)
    return link


def path_of(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def consent_status(app, email: str, purpose: str) -> str | None:
    from consent import service

    with app.app_context(), runtime(app).session_factory() as s:
        lead = leads.find_by_email(s, email)
        if lead is None:
            return None
        state = service.states(s, lead.id).get(purpose)
        return state.status if state else None


def cli_env(app) -> dict[str, str]:
    settings = runtime(app).settings
    return {
        "LEADVAULT_INSTANCE": str(settings.instance),
        "LEADVAULT_DATABASE_URL": settings.database_url.replace("+psycopg", ""),
        "LEADVAULT_KEYRING": str(settings.keyring),
    }


def test_submit_confirm_and_verify_ledger(app, client, smtp_server):
    form_id = make_form(app)
    email = unique_email()
    response = submit(app, client, form_id, email, first_name="Ada")
    assert response.status_code == 200
    assert deliver(app) == 1
    [mail] = smtp_server.wait_for(1)
    assert mail["To"] == email
    link = confirm_link(mail)
    assert consent_status(app, email, "newsletter") == ConsentStatus.PENDING

    # A link scanner's GET (and HEAD) shows a page and confirms nothing.
    page = client.get(path_of(link))
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    client.head(path_of(link))
    assert consent_status(app, email, "newsletter") == ConsentStatus.PENDING

    token = CSRF.search(page.get_data(as_text=True)).group(1)
    done = client.post(path_of(link), data={"csrf_token": token})
    assert done.status_code == 200
    assert consent_status(app, email, "newsletter") == ConsentStatus.GRANTED
    # Confirming twice shows the same success page.
    again = client.post(path_of(link), data={"csrf_token": token})
    assert again.status_code == 200
    assert again.get_data() == done.get_data()

    with app.app_context(), runtime(app).session_factory() as s:
        lead = leads.find_by_email(s, email)
        entries = list(
            s.scalars(
                sa.select(LedgerEntry)
                .where(LedgerEntry.subject == str(lead.id))
                .order_by(LedgerEntry.id)  # no ORDER BY: PostgreSQL's heap order
            )
        )
    assert [e.event for e in entries] == ["requested", "confirmed"]
    from consent.models import ConsentText

    with app.app_context(), runtime(app).session_factory() as s:
        text = s.get(ConsentText, entries[0].text_id)
    for entry in entries:
        assert entry.text_sha256 == text.sha256
        assert entry.ip_prefix == "127.0.0.0"
    # Confirming the newsletter sends a welcome mail, the first marketing mail,
    # with one-click unsubscribe; the opt-in mail itself had none.
    deliver(app)
    welcome = smtp_server.wait_for(2)[1]
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert welcome["List-Unsubscribe"].startswith("<http://127.0.0.1:5000/u/")

    runner = CliRunner()
    ok = runner.invoke(cli, ["consent", "verify"], env=cli_env(app), obj=app)
    assert ok.exit_code == 0, ok.output
    assert "intact" in ok.output

    with runtime(app).session_factory.begin() as s:
        s.execute(
            sa.update(LedgerEntry).where(LedgerEntry.id == entries[0].id).values(purpose="tracking")
        )
    broken = runner.invoke(cli, ["consent", "verify"], env=cli_env(app), obj=app)
    assert broken.exit_code == 1
    assert f"entry {entries[0].id}" in broken.output


def test_confirmed_lead_gets_no_second_optin(app, client, smtp_server):
    form_id = make_form(app)
    email = unique_email()
    submit(app, client, form_id, email)
    deliver(app)
    link = confirm_link(smtp_server.wait_for(1)[0])
    page = client.get(path_of(link))
    client.post(
        path_of(link), data={"csrf_token": CSRF.search(page.get_data(as_text=True)).group(1)}
    )
    deliver(app)
    assert [m["Subject"] for m in smtp_server.wait_for(2)] == [
        "Please confirm your email address",
        "Welcome to our newsletter",
    ]
    assert submit(app, client, form_id, email).status_code == 200
    deliver(app)
    assert len(smtp_server.messages) == 2


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            if name in {"href", "src"} and value:
                self.links.append(value)


@pytest.mark.parametrize("lang", ["en", "de"])
def test_optin_mail_holds_to_its_allow_list(app, client, smtp_server, lang):
    form_id = make_form(app)
    email = unique_email()
    submit(app, client, form_id, email, first_name="Grace", lang=lang)
    deliver(app)
    [mail] = smtp_server.wait_for(1)
    settings = runtime(app).settings
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    link = confirm_link(mail)
    allowed = {link, settings.imprint_url, settings.privacy_url}

    parser = _Links()
    parser.feed(html)
    assert set(parser.links) == allowed
    assert "img" not in parser.tags and "script" not in parser.tags
    assert set(re.findall(r"https?://\S+", text)) == allowed
    greeting = "Hi Grace," if lang == "en" else "Hallo Grace,"
    purpose = "Newsletter by email" if lang == "en" else "Newsletter per E-Mail"
    ignore = "ignore this mail" if lang == "en" else "ignorieren Sie diese E-Mail"
    for part in (text, html):
        assert greeting in part
        assert purpose in part
        assert ignore in part
    # Transactional mail: no one-click unsubscribe header.
    assert mail["List-Unsubscribe-Post"] is None
    assert mail["Content-Language"] == lang


def test_tampered_and_expired_confirmation_links(app, client, smtp_server, monkeypatch):
    from leadvault import clock

    form_id = make_form(app)
    submit(app, client, form_id, unique_email())
    deliver(app)
    link = confirm_link(smtp_server.wait_for(1)[0])
    tampered = client.get(factories.tampered(path_of(link)))
    assert tampered.status_code == 400
    assert "not valid" in tampered.get_data(as_text=True)

    # Another purpose's token (a render token) is refused the same way.
    cross = client.get(f"/c/{render_token(app, form_id)}")
    assert cross.status_code == 400

    import datetime as dt

    clock.freeze(clock.now() + dt.timedelta(days=8))
    expired = client.get(path_of(link))
    assert expired.status_code == 410
    body = expired.get_data(as_text=True)
    assert "expired" in body
    token = CSRF.search(body).group(1)
    resent = client.post(path_of(link) + "/resend", data={"csrf_token": token})
    assert resent.status_code == 200
    deliver(app)
    assert len(smtp_server.wait_for(2)) == 2
