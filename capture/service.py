"""Forms and submissions: look forms up, store a submission (the worker's inbox handler).

Form definitions are ``capture.definitions`` (what one is), ``capture.definition_service``
(creating, updating, archiving) and ``capture.origins`` (allowed origins); import them
from there.

The endpoint's write (one sealed inbox row) is ``capture.queueing``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading
import time
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from capture import bots, definition_service
from capture.definitions import FormError
from capture.models import Form, FormKind, Submission
from capture.origins import normalise_origin, page_on_owner_site
from capture.queueing import ValidSubmission
from capture.signals import form_snippets, form_submitted
from consent import optin
from consent import service as consent_service
from consent.ledger import RequestMeta
from leadvault import batch, clock, i18n, leads, profile

SOURCE_KEYS = (
    "page_url",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "time_zone",  # the visitor's browser time zone (the widget sends it)
)
COMPANY_SIZES = profile.COMPANY_SIZES
_LABEL = re.compile(r"^[A-Za-z0-9._\-]{1,100}$")


def get_form(session: Session, public_id: str) -> Form | None:
    if len(public_id) > 32:
        return None
    return session.scalars(
        sa.select(Form).where(Form.public_id == public_id, Form.active.is_(True))
    ).one_or_none()


class FormCache:
    """Forms by public id for a few seconds: the hot submission path then reads
    nothing before its one INSERT (and on SQLite holds the write lock briefly)."""

    ttl_seconds = 5.0

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, Form | None]] = {}
        self._lock = threading.Lock()
        # An edit in this process shows at once (other processes: within ttl_seconds).
        definition_service.on_change(self.forget)

    def forget(self, public_id: str) -> None:
        with self._lock:
            self._items.pop(public_id, None)

    def peek(self, public_id: str) -> tuple[bool, Form | None]:
        """(True, the form or None) when the cache knows the id, else (False, None)."""
        hit = self._items.get(public_id)
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def get(self, session: Session, public_id: str) -> Form | None:
        now = time.monotonic()
        hit = self._items.get(public_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        form = get_form(session, public_id)
        if form is not None:
            session.expunge(form)  # read-only snapshot that outlives the session
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[public_id] = (now + self.ttl_seconds, form)
        return form


def list_forms(session: Session) -> list[Form]:
    return list(session.scalars(sa.select(Form).order_by(Form.id)))


def embed_snippets(session: Session, form: Form, base_url: str) -> list[tuple[str, str]]:
    """(kind, code) of every way to embed the form: the hosted page's link and an iframe
    here; the JavaScript loader and the HTML form from the packages that serve them
    (``form_snippets`` signal)."""
    hosted = f"{base_url}/f/{form.public_id}"
    shown = [
        ("hosted", hosted),
        (
            "iframe",
            # Size attributes, not a style attribute: a strict host CSP blocks inline styles.
            f'<iframe src="{hosted}" title="Leadvault form" loading="lazy" '
            'width="100%" height="512"></iframe>',
        ),
    ]
    for _receiver, extra in form_snippets.send(session, form=form):
        shown.extend(extra or [])
    return shown


def consent_texts_for(session: Session, form: Form, lang: str) -> list[dict[str, Any]]:
    """The exact texts the form shows in ``lang``, with their purposes and versions."""
    shown = []
    for spec in form.purposes:
        text = consent_service.text_by_id(session, form.consent_texts[lang][spec["purpose"]])
        if text is not None:
            shown.append({"purpose": spec["purpose"], "required": spec["required"], "text": text})
    return shown


def bot_report(
    session: Session, since: dt.date, until: dt.date | None = None
) -> list[bots.BotCount]:
    """Bot verdicts per day, form and reason with their outcome (``leadvault report bots``;
    the admin console shows the same)."""
    return bots.report(session, since, until)


def origin_allowed(form: Form, origin: str | None, own_origin: str) -> bool:
    """No Origin (server-to-server, old browsers) or our own pages are always fine."""
    if not origin or origin == "null":
        return origin is None
    try:
        normalised = normalise_origin(origin)
    except FormError:
        return False
    return normalised == own_origin or normalised in form.allowed_origins


def store_submission(session: Session, payload: dict[str, Any]) -> None:
    """Inbox handler: one submission in one transaction (lead, ledger, opt-in mail)."""
    form_id = payload["form_id"]
    form = batch.cached(session, f"capture.form.{form_id}", lambda: session.get(Form, form_id))
    if form is None:
        return  # the form was deleted meanwhile: nothing to attach the submission to
    submit(
        session,
        form,
        ValidSubmission(
            email=payload["email"],
            profile=payload["profile"],
            message=payload["message"],
            purposes=payload["purposes"],
            source=payload["source"],
        ),
        language=payload["language"],
        meta=RequestMeta(ip=payload["ip"], user_agent=payload["user_agent"]),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class QueuedSubmission:
    """A submission a worker's batch writes with its other rows: the row's values."""

    id: uuid.UUID
    lead_id: uuid.UUID
    form_id: int
    language: str
    data: bytes
    utm_source: str | None
    utm_campaign: str | None
    created_at: dt.datetime


def submit(
    session: Session,
    form: Form,
    data: ValidSubmission,
    *,
    language: str,
    meta: RequestMeta,
) -> Submission | QueuedSubmission:
    """Store the lead and submission encrypted, request consent, queue the opt-in mail.

    Lead, submission, ledger entries and the opt-in mail's outbox row are
    written in the caller's one transaction (in a worker's batch the submission is a
    queued row, returned as its values).
    """
    # A visitor asking again after erasure starts from nothing, with fresh consent.
    consent_service.lift_suppression(session, data.email)
    lead, created = leads.get_or_create(session, data.email, language=language)
    zone = data.source.get("time_zone")
    profile_values = {**data.profile, **({"time_zone": zone} if leads.known_zone(zone) else {})}
    leads.set_attributes(session, lead, profile_values)
    if not created:
        leads.touch(lead)
    key = leads.data_key(session, lead)
    submission_id = uuid.uuid4()
    sealed = {**data.source, **({"message": data.message} if data.message else {})}
    values = {
        "id": submission_id,
        "lead_id": lead.id,
        "form_id": form.id,
        "language": language,
        "data": key.encrypt_json(f"submission/{submission_id}", sealed),
        "utm_source": _label(data.source.get("utm_source")),
        "utm_campaign": _label(data.source.get("utm_campaign")),
        "created_at": clock.now(),
    }
    # The signal's receivers read it; a worker's batch writes the row with the others
    # (no ORM object: its values are what the receivers read).
    submission = batch.add(session, Submission, values) or QueuedSubmission(**values)
    optin.request_consent(
        session,
        lead=lead,
        purposes_asked=data.purposes,
        form=optin.FormRef(
            form.public_id,
            form.consent_texts[language],
            whitepaper=form.public_title(language) if form.kind == FormKind.WHITEPAPER else None,
        ),
        language=language,
        meta=meta,
    )
    form_submitted.send(session, lead_id=lead.id, form=form, submission=submission)
    return submission


def _label(value: str | None) -> str | None:
    return value if value and _LABEL.match(value) else None


def read_submission(session: Session, submission: Submission) -> dict[str, str]:
    lead = leads.get(session, submission.lead_id)
    if lead is None:
        return {}
    return leads.data_key(session, lead).decrypt_json(
        f"submission/{submission.id}", submission.data
    )


def submissions_of(session: Session, lead_id: uuid.UUID) -> list[Submission]:
    return list(
        session.scalars(
            sa.select(Submission)
            .where(Submission.lead_id == lead_id)
            .order_by(Submission.created_at)
        )
    )


def describe_sources(
    session: Session, *, lead_id: uuid.UUID, lang: str, **_: Any
) -> list[tuple[Any, str]]:
    """Each submission as (when, "Whitepaper “X” on www.example.com") (signal receiver);
    the site only when the page was on one of the form's allowed origins."""
    forms = {form.id: form for form in list_forms(session)}
    found = []
    for submission in submissions_of(session, lead_id):
        form = forms.get(submission.form_id)
        if form is None:
            continue
        data = read_submission(session, submission)
        site = None
        for candidate in (data.get("page_url"), data.get("referrer")):
            parts = page_on_owner_site(form, candidate) if candidate else None
            if parts is not None:
                site = parts.hostname
                break
        text = _source_text(form, lang, site)
        found.append((submission.created_at, text))
    return found


def _source_text(form: Form, lang: str, site: str | None) -> str:
    """How the preference center names a submission's form: by the title visitors saw,
    never by the name (staff only)."""
    name = form.public_title(lang)
    whitepaper = form.kind == FormKind.WHITEPAPER
    if name is None:
        if whitepaper:
            return (
                i18n.translate(lang, "A whitepaper on %(site)s", site=site)
                if site
                else i18n.translate(lang, "A whitepaper")
            )
        return (
            i18n.translate(lang, "A form on %(site)s", site=site)
            if site
            else i18n.translate(lang, "A form")
        )
    if whitepaper:
        return (
            i18n.translate(lang, "Whitepaper “%(name)s” on %(site)s", name=name, site=site)
            if site
            else i18n.translate(lang, "Whitepaper “%(name)s”", name=name)
        )
    return (
        i18n.translate(lang, "Form “%(name)s” on %(site)s", name=name, site=site)
        if site
        else i18n.translate(lang, "Form “%(name)s”", name=name)
    )


def access_section(session: Session, *, lead_id: uuid.UUID, **_: Any) -> tuple[str, list[Any]]:
    """The lead's submissions for the access export (signal receiver)."""
    forms = {form.id: form.public_id for form in list_forms(session)}
    items = []
    for submission in submissions_of(session, lead_id):
        data = read_submission(session, submission)
        message = data.pop("message", None)
        item: dict[str, Any] = {
            "id": str(submission.id),
            "form": forms.get(submission.form_id, ""),
            "created_at": submission.created_at.isoformat(),
            "language": submission.language,
            "source": data,
        }
        if message:
            item["message"] = message
        items.append(item)
    return "submissions", items
