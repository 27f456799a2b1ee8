"""A branded instance and one real mail of each kind a lead or a salesperson gets.

Mails go through the real services, the outbox and real SMTP (aiosmtpd). Used
by the mail-layout, SpamAssassin and screenshot tests.
"""

from __future__ import annotations

import datetime as dt
import os
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from leadvault import clock
from tests import factories, nurture_helpers
from tests.conftest import SmtpSink, deliver, unique_email

REPO = Path(__file__).resolve().parent.parent
MONDAY = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real, solid-colour PNG (the logo a test configures)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


WEBSITE = "https://www.beispiel-maschinen.de"
IMPRINT = "https://www.beispiel-maschinen.de/impressum"
PRIVACY = "https://www.beispiel-maschinen.de/datenschutz"
SENDER = "Beispiel Maschinenbau <news@beispiel-maschinen.de>"
REPLY_TO = "vertrieb@beispiel-maschinen.de"
ADDRESS = "Beispiel Maschinenbau GmbH; Hauptstraße 1; 10115 Berlin; Deutschland"
SEQUENCE = f"""
[sequence]
key = "brand"
name = "Onboarding"
purpose = "newsletter"

[trigger]
on = "purpose_confirmed"

[[steps]]
name = "first"
mail = "one"

[mails.one.en]
subject = "Three ways to cut downtime"
markdown = \"\"\"
{{{{ greeting }}}}

thank you for your interest. Our [maintenance guide]({WEBSITE}/guide) shows
three ways to find worn bearings before they stop a line.
\"\"\"

[mails.one.de]
subject = "Drei Wege zu weniger Stillstand"
markdown = \"\"\"
{{{{ greeting }}}}

vielen Dank für Ihr Interesse. Unser [Wartungsleitfaden]({WEBSITE}/leitfaden)
zeigt drei Wege, verschlissene Lager zu finden, bevor sie eine Linie stoppen.
\"\"\"
"""
# The time zone each language's lead's browser sent (the instance's is Europe/Berlin):
# the English reader is in New York, so its dates and times read in New York's time.
LEAD_ZONES = {"de": "Europe/Berlin", "en": "America/New_York"}
# What the qualified lead did (two clicks qualify it under nurture_helpers.RULES).
JOURNEY = [
    ("page_view", {"category": "product"}),
    ("page_view", {"category": "pricing"}),
    ("mail_clicked", {}),
    ("mail_clicked", {}),
]
# Every kind of mail a lead or a salesperson receives.
MAIL_KINDS = (
    "optin",
    "optin_whitepaper",
    "welcome",
    "manage",
    "email_change",
    "email_changed",
    "asset",
    "repermission",
    "nurture",
    "handoff",
    "reminder",
)


def artifacts() -> Path:
    folder = Path(os.environ.get("LEADVAULT_ARTIFACTS") or REPO / "artifacts") / "branding"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def brand_settings(tmp_path: Path) -> dict[str, Any]:
    logo = tmp_path / "logo.png"
    logo.write_bytes(png(120, 40, (194, 65, 12)))
    return {
        "brand_name": "Beispiel Maschinenbau",
        "brand_logo": logo,
        "brand_accent_color": "#c2410c",
        "brand_text_color": "#1f2937",
        "brand_font": "Georgia, 'Times New Roman', serif",
        "brand_website_url": WEBSITE,
        "brand_postal_address": ADDRESS.replace("; ", "\n"),
        "mail_from": SENDER,
        "mail_reply_to": REPLY_TO,
        "imprint_url": IMPRINT,
        "privacy_url": PRIVACY,
        "nurture_quiet_hours": None,
        "time_zone": "Europe/Berlin",
    }


def _new(smtp: SmtpSink, before: int) -> list[EmailMessage]:
    return smtp.messages[before:]


def _one(smtp: SmtpSink, app: Any, to: str | None = None) -> EmailMessage:
    before = len(smtp.messages)
    deliver(app)
    new = [m for m in _new(smtp, before) if to is None or m["To"] == to]
    assert len(new) == 1, [str(m["Subject"]) for m in new]
    return new[0]


def whitepaper_form(app: Any, tmp_path: Path, origins: tuple[str, ...] = (WEBSITE,)) -> str:
    from capture import service as capture_service
    from capture.definitions import FieldSpec, PurposeSpec
    from widgets import service

    form_id = factories.form(
        app,
        name="Praxisleitfaden Predictive Maintenance",
        # What visitors see (the name is for staff only).
        title={"de": "Praxisleitfaden Predictive Maintenance"},
        kind="whitepaper",
        fields=[FieldSpec("first_name", False)],
        purposes=[PurposeSpec("whitepaper", True)],
        allowed_origins=list(origins),
        follow_up_fields=["company", "job_title"],  # the asset mail asks for them
    )
    source = tmp_path / "leitfaden.pdf"
    source.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n")
    with factories.uow(app) as s:
        asset = service.add_asset(s, source, title="Praxisleitfaden Predictive Maintenance")
        form = capture_service.get_form(s, form_id)
        assert form is not None
        service.attach(s, asset, form)
    return form_id


def mails(app: Any, smtp: SmtpSink, lang: str, tmp_path: Path) -> dict[str, EmailMessage]:
    """One delivered mail of each kind in ``MAIL_KINDS``, in ``lang``."""
    from consent import rights
    from scoring import events, handoff, rules

    clock.freeze(MONDAY)
    found: dict[str, EmailMessage] = {}
    profile = {"first_name": "Julia", "last_name": "Beispiel"}

    # Opt-in, then the welcome mail once confirmed.
    email = unique_email("julia")
    lead_id = factories.lead(
        app, email, profile=profile, confirmed=False, language=lang, purposes=("newsletter",)
    )
    found["optin"] = _one(smtp, app)
    confirm(app, lead_id)
    found["welcome"] = _one(smtp, app)

    # Art. 16: a new address is confirmed from that address.
    from consent import correction
    from leadvault import leads

    with factories.uow(app) as s:
        lead = leads.find_by_email(s, email)
        assert lead is not None
        correction.request_email_change(s, lead, unique_email("julia-neu"), lang, ip=None)
    found["email_change"] = _one(smtp, app)
    # Once a change is confirmed, the old address is told (another lead: the link above
    # stays open for the pages' walk).
    import sqlalchemy as sa

    from consent.models import EmailChange

    moved = unique_email("julia-alt")
    factories.lead(app, moved, profile=profile, language=lang, purposes=("newsletter",))
    deliver(app)
    with factories.uow(app) as s:
        lead = leads.find_by_email(s, moved)
        assert lead is not None
        correction.request_email_change(s, lead, unique_email("julia-umzug"), lang, ip=None)
    deliver(app)
    with factories.uow(app) as s:
        lead = leads.find_by_email(s, moved)
        assert lead is not None
        [change] = s.scalars(sa.select(EmailChange).where(EmailChange.lead_id == lead.id))
        correction.confirm_email_change(s, lead, change, ip=None)
    found["email_changed"] = _one(smtp, app, moved)

    form_id = whitepaper_form(app, tmp_path)
    paper = unique_email("paper")
    factories.lead(
        app,
        paper,
        form_id=form_id,
        profile=profile,
        language=lang,
        purposes=("whitepaper",),
        # Sent by the widget on the company's page: where, and the browser's time zone.
        source={"page_url": f"{WEBSITE}/praxisleitfaden", "time_zone": LEAD_ZONES[lang]},
    )
    before = len(smtp.messages)
    deliver(app)
    to_paper = [m for m in _new(smtp, before) if m["To"] == paper]
    [found["optin_whitepaper"]] = [m for m in to_paper if "/c/" in _text(m)]
    [found["asset"]] = [m for m in to_paper if "/d/" in _text(m)]

    # The whitepaper's reader asks for its preference center.
    with factories.uow(app) as s:
        rights.request_manage_link(s, paper, lang)
    found["manage"] = _one(smtp, app)

    # An imported contact without proof of consent is asked once (re-permission).
    import io

    from export import imports
    from leadvault.app import runtime

    imported = unique_email("imported")
    csv = f"email,first_name\r\n{imported},Julia\r\n".encode()
    with app.app_context():
        imports.run(
            runtime(app).session_factory,
            io.BytesIO(csv),
            purposes=["newsletter"],
            actor="cli:test",
            language=lang,
        )
    with factories.uow(app) as s:
        assert imports.send_repermissions(s) == 1
    found["repermission"] = _one(smtp, app, imported)

    # A nurture sequence and a sales handoff for a qualified lead.
    nurture_helpers.load_rules(app)
    nurture_helpers.load_sequence(app, SEQUENCE)
    factories.salesperson(app, "anna@sales.example", "Anna", language=lang)
    qualified = unique_email("lead")
    qualified_id = nurture_helpers.lead(
        app,
        nurture_helpers.form(app),
        qualified,
        purposes=("newsletter", "sales_contact"),
        language=lang,
    )
    deliver(app)
    with factories.uow(app) as s:
        for type_, props in JOURNEY:
            events.record_event(s, qualified_id, type_, props, clock.now())
    with nurture_helpers.uow(app) as s:
        from nurture import tick

        tick.run(s)
    before = len(smtp.messages)
    deliver(app)
    new = _new(smtp, before)
    [found["nurture"]] = [m for m in new if m["To"] == qualified]
    handoffs = [m for m in smtp.messages if m["To"] == "anna@sales.example"]
    assert len(handoffs) == 1, [str(m["Subject"]) for m in handoffs]
    found["handoff"] = handoffs[0]

    with nurture_helpers.uow(app) as s:
        hours = rules.active(s).remind_after_hours
    clock.freeze(MONDAY + dt.timedelta(hours=hours, minutes=5))
    with nurture_helpers.uow(app) as s:
        assert handoff.sla_job(s)["reminded"] == 1
    found["reminder"] = _one(smtp, app, "anna@sales.example")
    return found


def confirm(app: Any, lead_id: Any) -> None:
    import sqlalchemy as sa

    from consent import optin
    from consent.ledger import RequestMeta
    from consent.models import OptInRequest

    with factories.uow(app) as s:
        request = s.scalars(
            sa.select(OptInRequest).where(
                OptInRequest.lead_id == lead_id, OptInRequest.confirmed_at.is_(None)
            )
        ).first()
        assert request is not None
        optin.confirm(s, request, meta=RequestMeta(ip="203.0.113.7", user_agent="t"))


def _text(mail: EmailMessage) -> str:
    return text_of(mail)


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    return body.get_content()


def html_of(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("html",))
    assert body is not None
    return body.get_content()
