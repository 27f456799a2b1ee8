"""A lead who typed markup, a refresh to another site and a URL into every field.

Shared by the escaping tests (pages and mails) and the browser test. The
values either pass validation (markup is a legitimate, if odd, name) and go
through the public endpoint, or are stored through the service layer, as a
contact imported before validation got stricter would be.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from typing import Any

import sqlalchemy as sa

from capture import definition_service, definitions, queueing
from capture import service as capture_service
from consent import optin
from consent.ledger import RequestMeta
from consent.models import OptInRequest
from leadvault import clock
from leadvault.app import runtime
from leadvault.db import unit_of_work
from scoring import events, routing

META = RequestMeta(ip="127.0.0.1", user_agent="pytest")
# The acceptance's example: markup that a browser would act on if unescaped.
MARKUP_NAME = '<b>x</b><meta http-equiv="refresh">'
SALES = "anna@sales.example"
SEED = [
    ("qr_scan", {}),
    ("product_image_click", {}),
    ("page_view", {"category": "product"}),
    ("page_view", {"category": "pricing"}),
]


def refresh_to(url: str) -> str:
    return f'<meta http-equiv="refresh" content="0;url={url}">'


@dataclasses.dataclass
class HostileLead:
    lead_id: uuid.UUID
    email: str
    form_id: str
    profile: dict[str, str]


def uow(app: Any) -> Any:
    class _Ctx:
        def __enter__(self) -> Any:
            self.ctx = app.app_context()
            self.ctx.__enter__()
            self.uow = unit_of_work(runtime(app).session_factory)
            return self.uow.__enter__()

        def __exit__(self, *exc: Any) -> Any:
            try:
                return self.uow.__exit__(*exc)
            finally:
                self.ctx.__exit__(*exc)

    return _Ctx()


def contact_form(app: Any) -> str:
    with uow(app) as s:
        form = definition_service.create_form(
            s,
            name="Contact",
            kind="contact",
            fields=[definitions.FieldSpec(n, False) for n in definitions.FIELD_NAMES],
            purposes=[
                definitions.PurposeSpec(p, False)
                for p in ("newsletter", "sales_contact", "tracking")
            ],
            allowed_origins=["https://www.example.com"],
        )
        return form.public_id


def setup_sales(app: Any) -> None:
    with uow(app) as s:
        routing.add_team(s, "dach", "round_robin")
        routing.add_person(s, email=SALES, name="Anna", language="en")
        routing.add_member(s, "dach", SALES)


def stored_lead(app: Any, form_id: str, profile: dict[str, str], source: dict[str, str]) -> Any:
    """Stored through the service layer (no input validation), confirmed, qualified."""
    email = f"hostile.{uuid.uuid4().hex[:8]}@engines.example"
    with uow(app) as s:
        form = capture_service.get_form(s, form_id)
        valid = queueing.ValidSubmission(
            email=email,
            profile=profile,
            message=profile.get("message"),
            purposes=["newsletter", "sales_contact", "tracking"],
            source=source,
        )
        lead_id = capture_service.submit(s, form, valid, language="en", meta=META).lead_id
    with uow(app) as s:
        request = s.scalars(sa.select(OptInRequest).where(OptInRequest.lead_id == lead_id)).first()
        optin.confirm(s, request, meta=META)
    qualify(app, lead_id)
    return HostileLead(lead_id, email, form_id, profile)


def qualify(app: Any, lead_id: uuid.UUID) -> None:
    with uow(app) as s:
        for type_, props in SEED:
            events.record_event(s, lead_id, type_, props, clock.now())


def handoff_link(mail_text: str) -> str:
    return re.findall(r"http://\S+/h/\S+", mail_text)[0]


def count_rows(app: Any, model: Any) -> int:
    """Rows of a table, seen through the app's own sessions (the test's transaction)."""
    with runtime(app).session_factory() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model)) or 0


class Statements:
    """The SQL statements sent to any database while the block runs, in order."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.seen.append(re.sub(r"\s+", " ", statement).strip())

    def __enter__(self) -> Statements:
        sa.event.listen(sa.Engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: Any) -> None:
        sa.event.remove(sa.Engine, "before_cursor_execute", self._record)

    def kinds(self) -> list[str]:
        """``INSERT table`` / ``SELECT`` … for each statement (savepoints left out)."""
        shown = []
        for statement in self.seen:
            words = statement.split()
            verb = words[0].upper()
            if verb in {"SAVEPOINT", "RELEASE", "ROLLBACK"}:
                continue
            table = words[2].strip('"') if verb in {"INSERT", "DELETE"} else ""
            shown.append(f"{verb} {table}".strip())
        return shown
