"""Shared set-up of the nurture tests: forms, leads through the real opt-in, sequences."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import sqlalchemy as sa

from capture import definition_service, definitions, queueing
from capture import service as capture_service
from consent import optin
from consent.ledger import RequestMeta
from consent.models import OptInRequest
from leadvault.app import runtime
from leadvault.db import unit_of_work
from nurture import sequences
from scoring import rules

META = RequestMeta(ip="127.0.0.1", user_agent="pytest")
PROFILE = {
    "first_name": "Julia",
    "last_name": "Example",
    "company": "Analytical Engines GmbH",
    "job_title": "Head of Engineering",
    "country": "DE",
    "company_size": "250-999",
}
# Scoring for the tests: a click is worth 15, MQL at 35, handoffs to Anna.
RULES = """
[scoring]
half_life_days = 30
event_types = ["demo_booked", "webinar"]

[stages]
mql_score = 35
mql_min_grade = "C"

[[engagement]]
name = "newsletter_signup"
event = "optin_confirmed"
when = { purpose = "newsletter" }
points = 7

[[engagement]]
name = "mail_click"
event = "mail_clicked"
points = 15
cap_per_day = 30

[[fit]]
name = "company_size"
when = { company_size = ["250-999"] }
points = 30

[routing_fallback]
salesperson = "anna@sales.example"
"""

THREE_STEPS = """
[sequence]
key = "{key}"
name = "Three steps"
purpose = "newsletter"

[trigger]
on = "purpose_confirmed"

[exit]
handoff = "offered"

[[steps]]
name = "first"
mail = "one"

[[steps]]
name = "pause-1"
wait = {{ days = 2 }}

[[steps]]
name = "second"
mail = "two"

[[steps]]
name = "pause-2"
wait = {{ days = 2 }}

[[steps]]
name = "third"
mail = "three"

[mails.one.en]
subject = "{key} one"
markdown = \"\"\"
{{{{ greeting }}}}

Read [the guide](https://www.example.com/guide) or [the FAQ](https://www.example.com/faq).
\"\"\"

[mails.one.de]
subject = "{key} eins"
markdown = \"\"\"
{{{{ greeting }}}}

Lesen Sie [den Leitfaden](https://www.example.com/de/leitfaden).
\"\"\"

[mails.two.en]
subject = "{key} two"
markdown = "{{{{ greeting }}}} [The case study](https://www.example.com/case)"

[mails.two.de]
subject = "{key} zwei"
markdown = "{{{{ greeting }}}} [Die Fallstudie](https://www.example.com/de/fall)"

[mails.three.en]
subject = "{key} three"
markdown = "{{{{ greeting }}}} Last one."

[mails.three.de]
subject = "{key} drei"
markdown = "{{{{ greeting }}}} Die letzte."
"""


class uow:  # noqa: N801 - reads like the context manager it is
    """An app context and a unit of work, committed on leaving."""

    def __init__(self, app) -> None:
        self.app = app

    def __enter__(self):
        self.ctx = self.app.app_context()
        self.ctx.__enter__()
        self.work = unit_of_work(runtime(self.app).session_factory)
        return self.work.__enter__()

    def __exit__(self, *exc):
        try:
            return self.work.__exit__(*exc)
        finally:
            self.ctx.__exit__(*exc)


def form(app, purposes=("newsletter", "tracking", "sales_contact")) -> str:
    with uow(app) as s:
        fields = [definitions.FieldSpec(n, False) for n in definitions.PROFILE_FIELDS]
        spec = [definitions.PurposeSpec(p, False) for p in purposes]
        return definition_service.create_form(
            s, name="Newsletter", kind="newsletter", fields=fields, purposes=spec
        ).public_id


def lead(app, form_id, email, *, purposes=("newsletter",), profile=None, language="en"):
    """A lead that submitted the form and confirmed ``purposes`` (the real services)."""
    with uow(app) as s:
        valid = queueing.ValidSubmission(
            email=email,
            profile=dict(PROFILE if profile is None else profile),
            message=None,
            purposes=list(purposes),
            source={},
        )
        form_row = capture_service.get_form(s, form_id)
        lead_id = capture_service.submit(s, form_row, valid, language=language, meta=META).lead_id
    with uow(app) as s:
        request = s.scalars(
            sa.select(OptInRequest).where(
                OptInRequest.lead_id == lead_id, OptInRequest.confirmed_at.is_(None)
            )
        ).first()
        optin.confirm(s, request, meta=META)
    return lead_id


def load_rules(app, text: str = RULES) -> None:
    with uow(app) as s:
        rules.load(s, text, source="rules.toml")


def load_sequence(app, text: str, files=None) -> int:
    with uow(app) as s:
        return sequences.load(s, text, source="seq.toml", files=files).version


def text_of(mail) -> str:
    return mail.get_body(preferencelist=("plain",)).get_content()


def html_of(mail) -> str:
    return mail.get_body(preferencelist=("html",)).get_content()


def path_of(link: str) -> str:
    parts = urlsplit(link)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def links(mail, kind: str = "n") -> list[str]:
    return re.findall(rf"http://\S+?/{kind}/[^\s)]+", text_of(mail))
