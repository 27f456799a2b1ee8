"""Why this score / why this fit: rules by their titles, with their points.

The handoff mail (text and HTML), the handoff page and the console's lead page
show each rule by the title the rules file gives it, in the reader's language,
with a bar per rule on the pages; a rule no longer in the active rules shows its
name, marked as such.
"""

from __future__ import annotations

import re

import pytest

from scoring import rules
from tests import factories
from tests.conftest import deliver
from tests.test_scoring import (
    CSRF,
    contact_form,
    mails_to,
    path_of,
    qualify,
    setup_sales,
    text_of,
)

uow = factories.uow

TITLED = """
[[engagement]]
name = "pricing_page"
event = "page_view"
points = 20

[[engagement]]
name = "demo"
event = "demo_booked"
points = 30

[[fit]]
name = "big"
when = { company_size = ["1000+"] }
points = 10

[[routing]]
name = "all"
team = "inbound"

[titles.en]
pricing_page = "Pricing page"
demo = "Booked a demo"

[titles.de]
demo = "Demo  gebucht"
big = "Groß"
"""


def test_titles_per_language_fall_back_to_english_then_the_name():
    parsed = rules.parse(TITLED)
    assert parsed.titles_of("pricing_page") == (("en", "Pricing page"),)
    assert parsed.titles_of("demo") == (("en", "Booked a demo"), ("de", "Demo gebucht"))
    assert parsed.titles_of("all") is None  # a routing rule has no points to explain
    assert parsed.titles_of("nothing") is None
    assert rules.parse(TITLED.split("[titles.en]", maxsplit=1)[0]).titles_of("demo") == ()
    from scoring.rule_lines import lines

    found = lines(parsed, [("demo", 30.0), ("pricing_page", -15.0), ("gone", 3.0), ("big", 10)])
    assert [line.title("de") for line in found] == [
        "Demo gebucht",
        "Pricing page",
        "gone",
        "Groß",
    ]
    assert [line.title("en") for line in found] == ["Booked a demo", "Pricing page", "gone", "Groß"]
    assert [line.retired for line in found] == [False, False, True, False]
    assert [line.share for line in found] == [1.0, 0.5, 0.1, pytest.approx(1 / 3)]


@pytest.mark.parametrize(
    ("titles", "offset", "message"),
    [
        ('[titles.de]\ndemo = ""', 1, "titles.de: a title is a text of 1 to 120 characters"),
        ("[titles.de]\ndemo = 3", 1, "a title is a text"),
        ('[titles.de]\ndemo = "' + "x" * 121 + '"', 1, "a title is a text"),
        ('[titles.de]\nall = "Alle"', 1, "titles.de: there is no engagement or fit rule 'all'"),
        ('[titles.english]\ndemo = "x"', 0, "one [titles.<language>] table per language"),
    ],
)
def test_a_bad_title_is_refused_naming_the_line(titles, offset, message):
    rules_part = TITLED.split("[titles.en]", maxsplit=1)[0]
    with pytest.raises(rules.RulesError, match=re.escape(message)) as caught:
        rules.parse(rules_part + titles, source="rules.toml")
    line = rules_part.count("\n") + 1 + offset
    assert str(caught.value).startswith(f"rules.toml:{line}:"), str(caught.value)
    with pytest.raises(rules.RulesError, match=re.escape("titles must be written as")):
        rules.parse('titles = "x"\n' + rules_part)


def test_handoff_mail_and_page_show_titles_and_bars(app, client, smtp_server):
    setup_sales(app)
    lead_id = qualify(app, contact_form(app), "lead.titles@engines.example")
    deliver(app)
    [mail] = mails_to(smtp_server, "anna@sales.example")
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "Preisseite angesehen" in html and "pricing_page" not in html
    assert "Entscheider laut Position" in html
    # Mail-client safe bars: a table cell with a width and a coloured border (which
    # dark modes leave alone), no SVG; the largest rule's bar is the full 120 pixels.
    bars = re.findall(
        r' width="(\d+)"><tbody><tr><td style="[^"]*border-top: 8px solid #0072b2', html
    )
    assert bars[0] == "120" and len(bars) >= 8
    assert "<svg" not in html

    accept = re.findall(r"http://\S+/h/\S+", text_of(mail))[0]
    page = client.get(path_of(accept)).get_data(as_text=True)
    assert CSRF.search(page)
    rows = re.findall(r'<tr><th scope="row">([^<]+)</th><td class="num">([^<]+)</td>', page)
    assert ("Preisseite angesehen", "20") in rows
    assert ("Entscheider laut Position", "15") in rows
    # The largest rule's bar is full width; the bars are hidden from screen readers.
    assert '<rect x="0" y="1" width="160.0"' in page
    assert page.count('aria-hidden="true" focusable="false"') == len(rows)
    assert "pricing_page" not in page
    # The checks and the journey's own event types read as words too.
    text = text_of(mail)
    assert "Prüfungen: Firmenadresse" in text and "company_mail" not in text
    assert "QR-Code gescannt (5 Punkte)" in text and "qr_scan" not in text
    assert "Produktbild angeklickt (3 Punkte)" in page and "product_image_click" not in page
    assert lead_id


def test_console_lead_page_marks_a_rule_no_longer_in_the_rules(app):
    form_id = contact_form(app)
    lead_id = qualify(app, form_id, "lead.retired@engines.example")
    example = rules.example_text()
    start = example.index('[[engagement]]\nname = "pricing_page"')
    end = example.index("[[engagement]]", start + 1)
    with uow(app) as s:
        without = example[:start] + example[end:]
        titles = [line for line in without.splitlines() if not line.startswith("pricing_page ")]
        rules.load(s, "\n".join(titles), source="test")
    client, _user = factories.signed_in_client(app, "owner")
    page = client.get(f"/console/leads/{lead_id}").get_data(as_text=True)
    rows = re.findall(r'<tr><th scope="row">([^<]+)</th><td class="num">([^<]+)</td>', page)
    assert ("pricing_page (no longer in the rules)", "20") in rows
    assert ("Viewed product pages", "5") in rows
    assert "(Company address)" in page and "company_mail" not in page
    # The activity list in words: event types, mails and their states.
    assert "Viewed a page (20 points)" in page and "Scanned a QR code (5 points)" in page
    assert "Mail opt-in confirmation: waiting to be sent" in page and "optin" not in page
    assert "Handed to sales (queue): waiting for a salesperson" in page
    token = factories.csrf_token(client, f"/console/leads/{lead_id}")
    revealed = client.post(f"/console/leads/{lead_id}/reveal", data={"csrf_token": token})
    shown = revealed.get_data(as_text=True)
    if revealed.status_code in (301, 302, 303):
        shown = client.get(revealed.headers["Location"]).get_data(as_text=True)
    fit = re.findall(r'<tr><th scope="row">([^<]+)</th><td class="num">([^<]+)</td>', shown)
    assert ("Decision maker by job title", "15") in fit
    client.post("/console/language", data={"lang": "de", "csrf_token": token})
    german = client.get(f"/console/leads/{lead_id}").get_data(as_text=True)
    assert "Hat eine Seite angesehen (20 Punkte)" in german
    assert "Mail Opt-in-Bestätigung: wartet auf den Versand" in german


def test_console_lead_page_shows_causes_purposes_language_and_reasons_in_words(app):
    from scoring import handoff

    setup_sales(app)
    lead_id = qualify(app, contact_form(app), "lead.words@engines.example")
    with uow(app) as s:
        assert handoff.reject(s, handoff.open_handoff(s, lead_id), "no_budget")
    client, _user = factories.signed_in_client(app, "owner")
    page = client.get(f"/console/leads/{lead_id}").get_data(as_text=True)
    # Old output: "(page_view)", "salesperson:1: no_budget", "rejected, no_budget",
    # "newsletter", "sales_contact" and "Language en".
    activity = page[page.index('id="h-timeline"') :]  # the stage form's options hold ids
    assert "Stage New → MQL (Viewed a page)" in activity and "page_view" not in activity
    assert re.search(r"Stage MQL → Recycled \(salesperson:\d+: No budget\)", activity)
    assert "Handed to sales (dach): rejected, No budget" in activity and "no_budget" not in activity
    purposes = re.findall(r'<tr><th scope="row">([^<]+)</th><td>', page)
    assert purposes == ["Newsletter by email", "Contact by our sales team"]
    assert "<dt>Language</dt><dd>English</dd>" in page
    token = factories.csrf_token(client, f"/console/leads/{lead_id}")
    client.post("/console/language", data={"lang": "de", "csrf_token": token})
    german = client.get(f"/console/leads/{lead_id}").get_data(as_text=True)
    activity = german[german.index('id="h-timeline"') :]
    assert "(Hat eine Seite angesehen)" in activity and "page_view" not in activity
    assert re.search(r"\(salesperson:\d+: Kein Budget\)", activity)
    assert ": abgelehnt, Kein Budget" in activity and "no_budget" not in activity
    assert "Newsletter per E-Mail" in german and "sales_contact" not in german
    assert "<dd>Englisch</dd>" in german
