"""The handoff mail with hostile salesperson names and lead values, as it arrives.

A salesperson's name is typed by staff (CLI, console, API) and greets them in the
handoff and reminder mails; the lead's name and company are in the subject. What a
real SMTP server (aiosmtpd) receives is parsed: no header another line could add,
markup escaped in the HTML part, long values folded, non-ASCII names in RFC 2047
encoded words and non-ASCII addresses over SMTPUTF8. A name that cannot be one
(a line break, a control character, too long) is refused where it is typed, with
a message naming the problem.
"""

from __future__ import annotations

from email import policy
from email.header import decode_header, make_header
from html import unescape

import pytest
from click.testing import CliRunner

from leadvault.cli import cli
from scoring import routing
from tests import factories
from tests.conftest import deliver
from tests.hostile import contact_form, stored_lead, uow
from tests.test_scoring import cli_env

PROFILE = {"company": "Acme", "country": "DE", "company_size": "250-999", "job_title": "CTO"}
SALES = "anna@sales.example"
SCRIPT = "<script>alert(1)</script>"

BAD_NAMES = {
    "crlf": "Anna\r\nBcc: victim@evil.example",
    "lf": "Anna\nX-Injected: 1",
    "tab": "Anna\tB",
    "nul": "Anna\x00",
    "bidi": "Anna\u202egnp.exe",
    "too long": "A" * 121,
    "blank": "   ",
}
BAD_ADDRESSES = {
    "crlf": "anna@sales.example\r\nBcc: victim@evil.example",
    "two at": "anna@@sales.example",
    "no domain": "anna@",
}


def _handoff_mail(app, smtp_server, *, name: str, address: str = SALES, lead: dict | None = None):
    """A salesperson, a lead that qualifies and consented to sales contact: the mail sent."""
    with uow(app) as s:
        routing.add_team(s, "dach", "round_robin")
        routing.add_person(s, email=address, name=name, language="de")
        routing.add_member(s, "dach", address)
    stored_lead(app, contact_form(app), {**PROFILE, **(lead or {})}, {})
    before = len(smtp_server.messages)
    deliver(app)
    sent = [m for m in smtp_server.messages[before:] if "/h/" in _text(m)]
    assert len(sent) == 1, [m["Subject"] for m in smtp_server.messages]
    return sent[0]


def _text(mail) -> str:
    return mail.get_body(preferencelist=("plain",)).get_content()


def _html(mail) -> str:
    return mail.get_body(preferencelist=("html",)).get_content()


def _header_lines(mail) -> list[str]:
    """The raw header block as it came over the wire, unfolded into logical lines."""
    raw = mail.as_bytes(policy=policy.SMTPUTF8).split(b"\r\n\r\n", 1)[0].decode()
    return raw.replace("\r\n ", " ").replace("\r\n\t", " ").split("\r\n")


@pytest.mark.parametrize(
    "name",
    [SCRIPT + "Anna", "Jürgen Müller-Lüdenscheidt 山田", "A" * routing.NAME_MAX, "O'Brien & Söhne"],
    ids=["markup", "non-ascii", "longest", "quote-ampersand"],
)
def test_a_salesperson_name_is_text_in_both_parts(app, smtp_server, name):
    mail = _handoff_mail(app, smtp_server, name=name)
    assert mail["To"] == SALES
    assert f"Hallo {name}," in _text(mail)
    html = _html(mail)
    assert "<script" not in html.lower()  # escaped: the browser shows it, runs nothing
    assert f"Hallo {name}," in unescape(html)
    # Every physical header line keeps to RFC 5322's 998 characters.
    raw = mail.as_bytes(policy=policy.SMTPUTF8).split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


@pytest.mark.parametrize(
    "lead",
    [
        {"first_name": "Zoë", "last_name": "Ünal", "company": "Müller & Söhne <b>GmbH</b>"},
        {"first_name": "Eve\r\nBcc: victim@evil.example", "company": "Acme\nX-Injected: 1"},
        {"first_name": "Z" * 200, "company": "Ω" * 200},
    ],
    ids=["non-ascii", "line-breaks", "long"],
)
def test_lead_values_in_the_subject_cannot_add_headers(app, smtp_server, lead):
    """Values stored before validation got stricter (an old import): the subject is one
    header however it is folded, and reads back as the lead's values on one line."""
    mail = _handoff_mail(app, smtp_server, name="Anna", lead=lead)
    names = [line.split(":", 1)[0].lower() for line in _header_lines(mail)]
    assert "bcc" not in names and "x-injected" not in names
    assert names.count("subject") == 1 and names.count("to") == 1
    subject = str(make_header(decode_header(mail["Subject"])))
    assert subject.startswith("Neuer Lead für Sie: ")
    assert "\r" not in subject and "\n" not in subject
    assert lead["first_name"].split()[0][:40] in subject
    # Name and company at most 80 characters (cut with an ellipsis), then grade and score.
    who = subject.removeprefix("Neuer Lead für Sie: ").rsplit(" (Fit-Note", 1)[0]
    assert len(who) <= 80
    assert who.endswith("…") == (len(lead["first_name"]) > 40)
    assert "<b>" not in _html(mail)
    if lead["first_name"] == "Zoë":
        # Encoded words (RFC 2047) in the raw header, readable once decoded.
        raw = mail.as_bytes().split(b"\r\n\r\n", 1)[0]
        assert b"=?utf-8?" in raw
        assert "Zoë Ünal, Müller & Söhne <b>GmbH</b>" in subject


def test_a_non_ascii_salesperson_address_goes_over_smtputf8(app, smtp_server):
    mail = _handoff_mail(app, smtp_server, name="Jürgen", address="jürgen@vertrieb.example")
    assert mail["To"] == "jürgen@vertrieb.example"
    assert "Hallo Jürgen," in _text(mail)


def test_bad_names_and_addresses_are_refused_by_the_service_cli_console_and_api(app):
    env = cli_env(app)
    runner = CliRunner()
    for kind, name in BAD_NAMES.items():
        with pytest.raises(routing.SalesError, match="name"), uow(app) as s:
            routing.add_person(s, email=SALES, name=name)
        result = runner.invoke(
            cli, ["sales", "add", "--email", SALES, "--name", name], env=env, obj=app
        )
        assert result.exit_code == 1, (kind, result.output)
        assert "name" in result.output, (kind, result.output)
        assert "Traceback" not in result.output
    for kind, address in BAD_ADDRESSES.items():
        result = runner.invoke(
            cli, ["sales", "add", "--email", address, "--name", "Anna"], env=env, obj=app
        )
        assert result.exit_code == 1, (kind, result.output)
        assert "This is not an email address." in result.output, (kind, result.output)

    client, user_id = factories.signed_in_client(app, "owner")
    headers = {"X-CSRFToken": factories.csrf_token(client, "/admin/account")}
    console_csrf = factories.csrf_token(client, "/console/sales")
    for kind, name in BAD_NAMES.items():
        answer = client.post(
            "/api/v1/salespeople", json={"email": SALES, "name": name}, headers=headers
        )
        assert answer.status_code == 422, (kind, answer.get_data(as_text=True))
        assert answer.mimetype == "application/problem+json"
        assert "name" in answer.get_json()["errors"], (kind, answer.get_json())
        page = client.post(
            "/console/sales/people",
            data={"name": name, "email": SALES, "csrf_token": console_csrf},
        )
        assert page.status_code == 422, kind
        assert 'id="name-error"' in page.get_data(as_text=True), kind
    for kind, address in BAD_ADDRESSES.items():
        answer = client.post(
            "/api/v1/salespeople", json={"email": address, "name": "Anna"}, headers=headers
        )
        assert answer.status_code == 422, (kind, answer.get_data(as_text=True))
    # Nobody was added on any path.
    with uow(app) as s:
        assert routing.people(s) == []
    del user_id


def test_a_good_name_is_stored_trimmed(app):
    with uow(app) as s:
        routing.add_person(s, email=SALES, name="  Anna Łukasiewicz  ")
    with uow(app) as s:
        [person] = routing.people(s)
        assert routing.contact(s, person).name == "Anna Łukasiewicz"
