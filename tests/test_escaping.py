"""Everything a lead typed is shown as text: pages, mails (both parts), terminal output.

Issue 10, point 1. Templates are audited statically (no text partial inside
HTML, no ``|safe``, no autoescape switch), then a lead with markup in every
field goes through the public endpoint, double opt-in, scoring and handoff,
and every page and mail it reaches is parsed: no tag the lead typed exists,
the text they typed is shown. Link-like text is never left for a mail
client to turn into a link.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from jinja2 import nodes

from consent import rights
from leadvault import clock
from leadvault.app import runtime
from scoring import handoff
from tests.conftest import deliver, make_form, render_token, unique_email
from tests.hostile import (
    MARKUP_NAME,
    SALES,
    contact_form,
    handoff_link,
    qualify,
    refresh_to,
    setup_sales,
    stored_lead,
    uow,
)

REPO = Path(__file__).resolve().parent.parent
# Every package of the distribution (a new one is audited without a change here).
PACKAGES = tuple(
    sorted(
        p.name
        for p in REPO.iterdir()
        if (p / "__init__.py").is_file() and p.name not in {"tests", "migrations", "bench"}
    )
)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HOST = "https://www.example.com"


# --- the templates, statically --------------------------------------------------


def _templates() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        root = REPO / package / "templates"
        for path in sorted(root.rglob("*")):
            if path.is_file():
                found.append((path.relative_to(root).as_posix(), path))
    return found


def test_html_templates_never_pull_in_unescaped_text(app):
    env = app.jinja_env
    templates = _templates()
    assert {"leadvault", "capture", "consent", "scoring", "widgets"} <= set(PACKAGES)
    assert len(templates) > 30
    problems = []
    for name, path in templates:
        tree = env.parse(path.read_text(encoding="utf-8"))
        html = name.endswith(".html")
        assert html or name.endswith(".txt"), name
        assert env.autoescape(name) is html, name  # .html escapes, .txt (mail text) does not
        for node in tree.find_all((nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport)):
            if not isinstance(node.template, nodes.Const):
                problems.append(f"{name}: includes a template chosen at run time")
            elif html and not str(node.template.value).endswith(".html"):
                problems.append(f"{name}: pulls in {node.template.value}, which is not escaped")
        for node in tree.find_all(nodes.Filter):
            if node.name == "safe":
                problems.append(f"{name}: marks text as safe")
        for _node in tree.find_all((nodes.EvalContextModifier, nodes.ScopedEvalContextModifier)):
            problems.append(f"{name}: switches autoescaping")
    assert not problems, problems


# Reviewed exceptions, each with the reason it is safe and the test that holds it.
MARKS_SAFE = {
    # Markdown source, not HTML: values are Markdown-escaped by the environment's
    # finalize, and markdown-it runs with raw HTML and linkify off
    # (tests/test_nurture.py::test_lead_values_are_text_never_markup_or_links).
    "nurture/render.py",
    "nurture/mails.py",
    # Escapes (markupsafe.escape) the text Jinja's newstyle gettext would mark safe
    # (test_a_message_id_that_is_not_a_literal_is_text_too).
    "leadvault/i18n.py",
    # Server-rendered SVG: every text it interpolates goes through markupsafe.escape;
    # numbers are formatted floats, colours and dash patterns are the module's own
    # constants (tests/test_charts.py renders hostile labels).
    "admin/charts.py",
    # The dashboard's number links: Markup("<a href=\"{}\">{}</a>").format(...) escapes
    # both the URL (from url_for) and the formatted number; every other text goes
    # through admin/charts.py (tests/test_console.py renders a hostile form name).
    "admin/console/dashboard.py",
}


def test_python_code_never_marks_text_as_safe():
    offenders = []
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if re.search(r"\bMarkup\(|markupsafe|\|\s*safe\b|autoescape\s*=\s*False", text):
                offenders.append(path.relative_to(REPO).as_posix())
    assert set(offenders) - MARKS_SAFE == set(), offenders


def test_a_message_id_that_is_not_a_literal_is_text_too(app):
    """``{{ _(value) }}``: Jinja's i18n extension marks what gettext returns as safe and
    escapes only the %(name)s values, so a message id that is a variable (an error, a
    label) holding typed text must come back escaped from our gettext, in a text node
    and in an attribute; mail text (.txt, no autoescaping) keeps it as typed."""
    hostile = "\"><b>x</b> <script>alert(1)</script> & 'q'"
    env = app.jinja_env
    page = env.from_string(
        '<p title="{{ _(v) }}">{{ _(v) }} {{ ngettext(v, v, 2) }} {{ _("Hi %(n)s", n=v) }}</p>'
    )
    with app.test_request_context("/?lang=de"):
        html = page.render(v=hostile, lang="de")
        document = assert_inert(html, "template")
        assert [t for t, _a in document.tags] == ["p"]
        assert document.tags[0][1]["title"] == hostile
        assert document.content == f"{hostile} {hostile} Hi {hostile}"
        assert env.from_string('{{ _("Submit") }}').render(lang="de") == "Absenden"
        text = env.overlay(autoescape=False).from_string("{{ _(v) }}").render(v=hostile)
        assert text == hostile


# --- pages and mails, end to end ---------------------------------------------------


class _Document(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def content(self) -> str:
        return "".join(self.text)


def assert_inert(html: str, where: str) -> _Document:
    """No tag the lead typed became a tag; what they typed is in the text."""
    document = _Document(html)
    refresh = [a for t, a in document.tags if t == "meta" and "http-equiv" in a]
    assert not refresh, f"{where}: {refresh}"
    typed = [t for t, a in document.tags if t in {"b", "i"} or (t == "script" and not a.get("src"))]
    assert not typed, f"{where}: {typed}"
    return document


def html_of(mail: EmailMessage) -> str:
    return mail.get_body(preferencelist=("html",)).get_content()


def text_of(mail: EmailMessage) -> str:
    return mail.get_body(preferencelist=("plain",)).get_content()


def path_of(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def csrf_of(response: Any) -> str:
    match = CSRF.search(response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)
    return match.group(1)


def test_markup_typed_into_a_form_is_text_on_every_page_and_in_every_mail(app, client, smtp_server):
    setup_sales(app)
    form_id = contact_form(app)
    email = unique_email("markup")
    company = "<i>Engines</i> " + refresh_to("//evil.example/")
    typed = {
        "first_name": MARKUP_NAME,
        "last_name": MARKUP_NAME,
        "company": company,
        "job_title": "<script>alert(1)</script> Head of Engineering",
        "country": "DE",
        "company_size": "250-999",
        "message": MARKUP_NAME,
    }
    response = client.post(
        f"/f/{form_id}",
        json={
            "email": email,
            "consent": ["newsletter", "sales_contact"],
            "render_token": render_token(app, form_id),
            "page_url": "https://www.example.com/<b>x</b>",
            **typed,
        },
        headers={"Origin": HOST},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    deliver(app)
    [optin] = smtp_server.wait_for(1)
    document = assert_inert(html_of(optin), "opt-in mail")
    assert MARKUP_NAME in document.content  # the greeting shows the name as typed
    assert MARKUP_NAME in text_of(optin)
    link = re.search(r"http://\S+/c/\S+", text_of(optin)).group(0)
    page = client.get(path_of(link))
    assert client.post(path_of(link), data={"csrf_token": csrf_of(page)}).status_code == 200

    with uow(app) as s:
        from leadvault import leads

        lead_id = leads.find_by_email(s, email).id
    qualify(app, lead_id)
    deliver(app)
    mails = smtp_server.messages
    [to_sales] = [m for m in mails if m["To"] == SALES]
    assert MARKUP_NAME in text_of(to_sales)  # text/plain shows it as typed
    sales_doc = assert_inert(html_of(to_sales), "handoff mail")
    assert MARKUP_NAME in sales_doc.content
    assert "<script>alert(1)</script> Head of Engineering" in sales_doc.content

    # The salesperson's page: the acceptance's example.
    handoff_page = client.get(path_of(handoff_link(text_of(to_sales))))
    assert handoff_page.status_code == 200
    page_doc = assert_inert(handoff_page.get_data(as_text=True), "handoff page")
    assert MARKUP_NAME in page_doc.content
    assert "<i>Engines</i>" in page_doc.content

    # The reminder mail, the preference center and the manage mail.
    clock.freeze(clock.now() + dt.timedelta(hours=17))
    with uow(app) as s:
        assert handoff.sla_job(s)["reminded"] == 1
    deliver(app)
    clock.freeze(None)
    reminders = [m for m in smtp_server.messages if m["To"] == SALES]
    assert len(reminders) == 2
    assert MARKUP_NAME in assert_inert(html_of(reminders[1]), "reminder mail").content
    with uow(app) as s:
        prefs = rights.prefs_url(s, lead_id)
    prefs_page = client.get(path_of(prefs))
    prefs_doc = assert_inert(prefs_page.get_data(as_text=True), "preference center")
    assert MARKUP_NAME in prefs_doc.content
    # The source is described ("A form on www.example.com": the form has no title, and
    # its name is for staff only), never echoed as typed.
    assert "A form on www.example.com" in prefs_doc.content

    for mail in smtp_server.messages:  # opt-in, welcome, handoff, reminder
        assert_inert(html_of(mail), f"mail {mail['Subject']}")


def test_markup_in_a_refused_form_comes_back_as_text(app, client):
    form_id = make_form(app)
    response = client.post(
        f"/f/{form_id}",
        data={"email": "not an address", "first_name": MARKUP_NAME, "consent": "newsletter"},
        headers={"Origin": HOST},
    )
    assert response.status_code == 200  # the no-JavaScript step: the form once more
    assert_inert(response.get_data(as_text=True), "form page")
    with_token = client.post(
        f"/f/{form_id}",
        data={
            "email": "not an address",
            "first_name": '"><b>x</b>',
            "consent": "newsletter",
            "render_token": render_token(app, form_id),
        },
        headers={"Origin": HOST},
    )
    assert with_token.status_code == 422
    document = assert_inert(with_token.get_data(as_text=True), "form page (422)")
    values = [a.get("value") for t, a in document.tags if t == "input"]
    assert '"><b>x</b>' in values  # back in its field, as text


# --- link-like text in mails -----------------------------------------------------------

# What mail clients turn into links: a scheme, www., or a host name with a TLD.
AUTOLINKED = re.compile(
    r"(?i)\b[a-z][a-z0-9+.\-]*://\S+|\bwww\.\S+|\b(?:[a-z0-9\-]+\.)+[a-z]{2,63}\b"
)


def _link_like(text: str, allowed: set[str]) -> list[str]:
    found = [m.group(0) for m in AUTOLINKED.finditer(text)]
    return [f for f in found if not any(f.startswith(a) or a.endswith(f) for a in allowed)]


def test_link_like_text_a_lead_typed_is_never_a_link_in_a_mail(app, smtp_server):
    setup_sales(app)
    form_id = contact_form(app)
    profile = {
        "first_name": "Win at https://evil.example/prize",
        "last_name": "www.evil.example",
        "company": "Booking.com",
        "job_title": "Head of evil.example",
        "country": "DE",
        "company_size": "250-999",
    }
    lead = stored_lead(app, form_id, profile, {"utm_source": "evil.example"})
    deliver(app)
    settings = runtime(app).settings
    allowed = {
        settings.base_url,
        settings.imprint_url,
        settings.privacy_url,
        lead.email,
        SALES,
        "sales.example",
        "engines.example",
    }
    mails = smtp_server.messages
    assert {m["To"] for m in mails} == {lead.email, SALES}
    for mail in mails:
        for part in (text_of(mail), _Document(html_of(mail)).content):
            assert not _link_like(part, allowed), (mail["Subject"], _link_like(part, allowed))
    [to_sales] = [m for m in mails if m["To"] == SALES]
    # Defused visibly, still readable.
    assert "Booking[.]com" in text_of(to_sales)
    assert "utm_source=evil[.]example" in text_of(to_sales)
    [optin] = [m for m in mails if "/c/" in text_of(m)]
    assert "Win at https[:]//evil[.]example/prize" in text_of(optin)


# --- input: names refuse control characters and links -------------------------------------


def _post(app, client, form_id, **fields):
    return client.post(
        f"/f/{form_id}",
        json={
            "email": unique_email(),
            "consent": ["newsletter"],
            "render_token": render_token(app, form_id),
            **fields,
        },
        headers={"Origin": HOST},
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "Ada\r\nBcc: victim@example.org"),
        ("first_name", "Ada\nLovelace"),
        ("last_name", "Love\x00lace"),
        ("last_name", "\x1b[31mLovelace"),
        ("company", "Engines\u202egnp.exe"),  # right-to-left override
        ("job_title", "Head\u2028of"),  # line separator
        ("phone", "+49 30\t1234"),
        ("page_url", "https://www.example.com/\r\nx"),
        ("first_name", "Visit https://evil.example"),
        ("first_name", "evil.example"),
        ("last_name", "www.evil.example"),
        ("company", "http://evil.example"),
        ("job_title", "see https://evil.example"),
    ],
)
def test_name_fields_refuse_control_characters_and_links(app, client, field, value):
    fields = ["first_name", "last_name", "company", "job_title", "phone", "message"]
    from capture.definitions import FieldSpec

    form_id = make_form(app, fields=[FieldSpec(n, False) for n in fields])
    response = _post(app, client, form_id, **{field: value})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert field in response.get_json()["fields"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "J.R.R."),
        ("last_name", "O'Neil-Smith"),
        ("first_name", "\u0645\u0647\u200c\u0633\u0627"),  # Persian with a zero-width non-joiner
        ("first_name", "Ada \U0001f469\u200d\U0001f4bb"),  # emoji with a zero-width joiner
        ("company", "Booking.com"),
        ("company", "<b>x</b>"),  # odd, harmless once escaped
        ("message", "Hello,\r\nplease call me.\n\tThanks"),
        ("message", "Our site is https://www.example.com"),
    ],
)
def test_real_names_and_messages_are_accepted(app, client, field, value):
    from capture.definitions import FieldSpec

    fields = ["first_name", "last_name", "company", "message"]
    form_id = make_form(app, fields=[FieldSpec(n, False) for n in fields])
    response = _post(app, client, form_id, **{field: value})
    assert response.status_code == 200, response.get_data(as_text=True)


# --- terminal output -------------------------------------------------------------------------


def test_mails_echoed_to_the_terminal_cannot_drive_it(tmp_path, capsys):
    from leadvault.mail import FileSender

    message = EmailMessage()
    message["Message-ID"] = "<abc@localhost>"
    message["Subject"] = "Hello \x1b[2J\x1b]0;owned\x07"
    message.set_content(
        "Confirm: https://leads.example/c/abc\x1b[31m\n"
        "https://x.example/\x1b]8;;https://evil.example\x07click\x1b]8;;\x07\n"
    )
    FileSender(tmp_path).send(message)
    out = capsys.readouterr().out
    assert "[mail] " in out
    assert "https://leads.example/c/abc" in out
    assert not any(ch in out for ch in "\x1b\x07\x00\r"), repr(out)
    assert "\\x1b" in out  # shown, not obeyed


def test_terminal_text_escapes_every_control_character():
    from leadvault.untrusted import for_terminal

    assert for_terminal("plain ÄÖÜ ß 日本") == "plain ÄÖÜ ß 日本"
    shown = for_terminal("a\x1b[2Jb\rc\u202ed\x00e\x9bf\nline")
    assert shown == "a\\x1b[2Jb\\rc\\u202ed\\x00e\\x9bf\\nline"
    stream = io.StringIO()
    stream.write(shown)
    assert stream.getvalue().isprintable()


def test_follow_up_fields_refuse_control_characters_and_links(app, client):
    from capture import queueing
    from capture import service as capture_service
    from leadvault import leads
    from tests.hostile import META
    from widgets import service as widgets_service

    form_id = make_form(app, follow_up_fields=["company", "job_title"])
    email = unique_email("more")
    with uow(app) as s:
        form = capture_service.get_form(s, form_id)
        valid = queueing.ValidSubmission(email, {}, None, ["newsletter"], {})
        lead_id = capture_service.submit(s, form, valid, language="en", meta=META).lead_id
        more = path_of(widgets_service.profile_url(s, lead_id, form))
    page = client.get(more)
    refused = client.post(
        more,
        data={
            "csrf_token": csrf_of(page),
            "company": "Engines\r\nBcc: x@example.org",
            "job_title": "see https://evil.example",
        },
    )
    assert refused.status_code == 422
    document = assert_inert(refused.get_data(as_text=True), "follow-up page")
    assert "control characters" in document.content and "web addresses" in document.content
    saved = client.post(more, data={"csrf_token": csrf_of(page), "company": MARKUP_NAME})
    assert saved.status_code == 200
    with uow(app) as s:
        assert leads.attributes_of(s, leads.get(s, lead_id)) == {"company": MARKUP_NAME}


def _on_a_terminal(command: list[str], env: dict[str, str] | None = None, status: int = 0) -> str:
    """Run ``command`` with a pseudo-terminal as stdin, stdout and stderr; its output
    (the command must exit with ``status``)."""
    import os
    import pty
    import subprocess

    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            command,
            stdin=follower,
            stdout=follower,
            stderr=follower,
            timeout=60,
            check=False,
            env=env,
        )
    finally:
        os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert done.returncode == status, output
    return output.decode()


def test_output_on_a_terminal_shows_escape_sequences_instead_of_sending_them():
    """The guard the ``leadvault`` entry point puts on a terminal's stdout and stderr."""
    import subprocess
    import sys

    script = (
        "import click\n"
        "from leadvault.untrusted import guard_terminal\n"
        "guard_terminal()\n"
        "click.echo('name: \\x1b[2J\\x1b]8;;https://evil.example\\x07x\\u202e|')\n"
        "click.echo('err \\x1b[31m', err=True)\n"
        "print('tab\\tok, newline ok')\n"
    )
    text = _on_a_terminal([sys.executable, "-c", script])
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text, repr(text)
    assert "name: \\x1b[2J\\x1b]8;;https://evil.example\\x07x\\u202e|" in text
    assert "err \\x1b[31m" in text
    assert "tab\tok, newline ok" in text
    # Without a terminal (a pipe, a file) the output is exact.
    piped = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert "\x1b]8;;https://evil.example\x07" in piped.stdout


@pytest.mark.committing  # the commands run in processes of their own
def test_a_command_printing_stored_text_cannot_drive_the_terminal(app):
    """End to end through the ``leadvault`` entry point: a description with escape
    sequences, refused by one command (its message names the character, never sends
    it) and, stored as an older version let it be, printed by another."""
    import os
    import sys
    from pathlib import Path

    settings = runtime(app).settings
    env = {
        **os.environ,
        "LEADVAULT_INSTANCE": str(settings.instance),
        "LEADVAULT_DATABASE_URL": settings.database_url.replace("+psycopg", ""),
        "LEADVAULT_KEYRING": str(settings.keyring),
        "LEADVAULT_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
    }
    leadvault = str(Path(sys.executable).parent / "leadvault")
    hostile = "CRM \x1b]0;owned\x07\x1b[2J"
    refused = _on_a_terminal(
        [leadvault, "webhooks", "add", "http://127.0.0.1:9/hook", "--description", hostile],
        env,
        status=1,
    )
    assert "U+001B" in refused and "\x1b" not in refused, repr(refused)
    added = _on_a_terminal(
        [leadvault, "webhooks", "add", "http://127.0.0.1:9/hook", "--description", "CRM"], env
    )
    assert "added" in added
    from export.models import WebhookEndpoint

    with uow(app) as s:  # what the service refuses today, stored before it did
        endpoint = s.scalars(sa.select(WebhookEndpoint).order_by(WebhookEndpoint.id.desc())).first()
        endpoint.description = hostile
    listed = _on_a_terminal([leadvault, "webhooks", "list"], env)
    assert "CRM " in listed
    assert "\x1b" not in listed and "\x07" not in listed, repr(listed)
    assert "\\x1b]0;owned\\x07\\x1b[2J" in listed
