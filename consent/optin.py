"""The double opt-in: the request and its mail, the confirmation token, confirming and resending.

Plain functions taking a session; they flush, never commit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from consent import ledger
from consent.ledger import RequestMeta
from consent.models import (
    Consent,
    ConsentStatus,
    ConsentText,
    LedgerEvent,
    OptInRequest,
)
from consent.service import ConsentError, purpose_label, states
from leadvault import batch, batch_mail, branding, clock, i18n, leads, outbox, signals
from leadvault.crypto import TokenExpired, payload_id
from leadvault.db import mail_context, settings_of, vault_of
from leadvault.i18n import N_
from leadvault.mail import MailContent
from leadvault.models import Lead

OPTIN_TOKEN = "optin"


@dataclasses.dataclass(frozen=True)
class OptInMail:
    """Another wording of the opt-in mail (templates ``NAME.txt`` and ``NAME.html``
    and a subject message id), e.g. an import's re-permission request."""

    template: str
    subject: str


@dataclasses.dataclass(frozen=True)
class FormRef:
    """What the consent module needs to know about the form that asked."""

    public_id: str
    text_ids: dict[str, int]  # purpose -> ConsentText id shown in the lead's language
    # The whitepaper asked for, as the form showed it in the lead's language: the opt-in
    # mail's subject names it (and names nothing else: no advertising, BGH VI ZR 134/15).
    whitepaper: str | None = None


def request_consent(
    session: Session,
    *,
    lead: Lead,
    purposes_asked: Sequence[str],
    form: FormRef,
    language: str,
    meta: RequestMeta,
    mail: OptInMail | None = None,
) -> OptInRequest | QueuedRequest | None:
    """Record the request and queue one opt-in mail, unless none is needed (in a worker's
    batch the request is a queued row, returned as its values).

    Purposes already granted are skipped; a purpose whose opt-in mail went out
    within the resend window is not mailed again (many rapid submissions of
    one address yield one mail).
    """
    now = clock.now()
    resend_after = dt.timedelta(minutes=settings_of(session).optin_resend_minutes)
    fresh = leads.created_here(session, lead.id)
    current = {} if fresh else states(session, lead.id)
    # A new lead's states in a worker's batch: rows written with the batch's others (a
    # later item of the batch reading them writes them first, leadvault.batch).
    queue = fresh and batch.insertable(session)
    needed: list[str] = []
    for purpose in purposes_asked:
        state = current.get(purpose)
        if state is not None and state.status == ConsentStatus.GRANTED:
            continue
        if (
            state is not None
            and state.status == ConsentStatus.PENDING
            and state.requested_at is not None
            and now - state.requested_at < resend_after
        ):
            continue
        needed.append(purpose)
    if not needed:
        return None

    texts: list[ConsentText] = []
    for purpose in needed:
        text_id = form.text_ids[purpose]
        text = batch.cached(
            session,
            f"consent.text.{text_id}",
            lambda text_id=text_id: session.get(ConsentText, text_id),
        )
        if text is None:
            raise ConsentError(
                N_("The form has no consent text for “%(purpose)s”."), purpose=purpose
            )
        texts.append(text)
        ledger.append(
            session,
            event=LedgerEvent.REQUESTED,
            subject=str(lead.id),
            purpose=purpose,
            form_ref=form.public_id,
            text=text,
            meta=meta,
        )
        state = current.get(purpose)
        if queue:
            batch.insert(session, _CONSENTS, _pending_row(lead.id, purpose, text.id, now))
            continue
        if state is None:
            state = Consent(lead_id=lead.id, purpose=purpose)
            session.add(state)
        state.status = ConsentStatus.PENDING
        state.text_id = text.id
        state.requested_at = now
    values = {
        "id": uuid.uuid4(),
        "lead_id": lead.id,
        "purposes": needed,
        "text_ids": [t.id for t in texts],
        "form_ref": form.public_id,
        "language": language,
        "created_at": now,
    }
    # In a worker's batch written with the batch's other requests at its end (no ORM
    # object: the mail needs only its values).
    request = batch.add(session, OptInRequest, values) or QueuedRequest(**values)
    _queue_optin_mail(session, lead, request, texts, mail, whitepaper=form.whitepaper)
    return request


@dataclasses.dataclass(frozen=True, slots=True)
class QueuedRequest:
    """An opt-in request a worker's batch writes with its other rows: the row's values."""

    id: uuid.UUID
    lead_id: uuid.UUID
    purposes: list[str]
    text_ids: list[int]
    form_ref: str
    language: str
    created_at: dt.datetime


_CONSENTS = Consent.__table__


def _pending_row(
    lead_id: uuid.UUID, purpose: str, text_id: int, now: dt.datetime
) -> dict[str, object]:
    """A new consent state waiting for the opt-in (as ``request_consent`` sets one)."""
    return {
        "lead_id": lead_id,
        "purpose": purpose,
        "status": ConsentStatus.PENDING,
        "text_id": text_id,
        "requested_at": now,
        "granted_at": None,
        "withdrawn_at": None,
    }


def optin_url(session: Session, request: OptInRequest | QueuedRequest) -> str:
    token = vault_of(session).sign(OPTIN_TOKEN, {"r": request.id.hex})
    return f"{settings_of(session).base_url}/c/{token}"


def _queue_optin_mail(
    session: Session,
    lead: Lead,
    request: OptInRequest | QueuedRequest,
    texts: list[ConsentText],
    mail: OptInMail | None = None,
    *,
    whitepaper: str | None = None,
) -> None:
    settings = settings_of(session)
    lang = request.language
    first_name = leads.attributes_of(session, lead).get("first_name")

    def translated() -> str:
        if mail is not None:
            return i18n.translate(lang, mail.subject)
        if whitepaper:
            return i18n.translate(
                lang, "Please confirm your request for “%(title)s”", title=whitepaper
            )
        return i18n.translate(lang, "Please confirm your email address")

    # In a worker's batch once per language and subject (a catalogue look-up costs more
    # than the rest of the subject).
    subject = mail.subject if mail is not None else None
    title: str = batch.cached(
        session, f"consent.optin.title:{lang}:{subject!r}:{whitepaper!r}", translated
    )

    def context() -> dict[str, Any]:
        # In a worker's batch made only when the template is rendered (once per batch).
        made = mail_context(
            session,
            lang,
            purposes=[purpose_label(p, lang) for p in request.purposes],
            texts=texts,
            max_age_days=settings.optin_max_age_days,
        )
        made["title"] = title
        made["no_advertising"] = True  # not even the website behind the logo
        return made

    template = mail.template if mail is not None else "consent/mail/optin"
    content = MailContent(
        to=leads.email_of(session, lead),
        subject=branding.subject(settings, title),
        **batch_mail.mail_parts(
            session,
            template,
            context,
            shared=(tuple(request.purposes), tuple(text.id for text in texts), title),
            lead_values={"first_name": first_name, "confirm_url": optin_url(session, request)},
            lang=lang,
            # The context is the settings', the language's and `shared`'s (consent
            # texts are immutable rows): the same render serves the next batches.
            lasting=True,
        ),
        language=lang,
    )
    # Transactional: no purpose (withdrawal must not cancel it) and no unsubscribe header.
    outbox.queue_mail(session, content, template="optin", lead=lead)


@dataclasses.dataclass(frozen=True)
class TokenCheck:
    request: OptInRequest | None
    expired: bool = False


def read_optin_token(session: Session, token: str) -> TokenCheck:
    """Resolve a confirmation token; raises TokenInvalid when tampered or cross-purpose."""
    max_age = settings_of(session).optin_max_age_days * 86400
    try:
        payload = vault_of(session).unsign(OPTIN_TOKEN, token, max_age)
    except TokenExpired as exc:
        request = _request_from_payload(session, exc.payload)
        return TokenCheck(request, expired=True)
    request = _request_from_payload(session, payload)
    return TokenCheck(request, expired=request is None)


def _request_from_payload(session: Session, payload: object) -> OptInRequest | None:
    return session.get(OptInRequest, payload_id(payload, "r"))


class Confirmation(enum.Enum):
    """What :func:`confirm` did."""

    CONFIRMED = "confirmed"
    ALREADY = "already"  # confirmed before (a second click)
    # The request or its lead is gone (erased meanwhile): nothing was confirmed or written.
    GONE = "gone"


def confirm(session: Session, request: OptInRequest, *, meta: RequestMeta) -> Confirmation:
    """Confirm every purpose of the request (once: a second call is ``ALREADY``)."""
    lead = leads.get(session, request.lead_id, for_update=True)
    if lead is None:
        return Confirmation.GONE
    # Re-read under the lead's lock so two clicks at once confirm once (and a request
    # deleted meanwhile, by erasure or a resend, confirms nothing).
    found = session.get(OptInRequest, request.id, populate_existing=True)
    if found is None:
        return Confirmation.GONE
    request = found
    if request.confirmed_at is not None:
        return Confirmation.ALREADY
    now = clock.now()
    request.confirmed_at = now
    current = states(session, lead.id)
    for purpose, text_id in zip(request.purposes, request.text_ids, strict=True):
        state = current.get(purpose)
        if state is None:
            state = Consent(lead_id=lead.id, purpose=purpose)
            session.add(state)
        if state.status == ConsentStatus.GRANTED:
            continue
        text = session.get(ConsentText, text_id)
        state.status = ConsentStatus.GRANTED
        state.text_id = text_id
        state.granted_at = now
        state.withdrawn_at = None
        ledger.append(
            session,
            event=LedgerEvent.CONFIRMED,
            subject=str(lead.id),
            purpose=purpose,
            form_ref=request.form_ref,
            text=text,
            meta=meta,
        )
    leads.touch(lead)
    session.flush()
    for purpose in request.purposes:
        signals.purpose_confirmed.send(
            session, lead_id=lead.id, purpose=purpose, form_ref=request.form_ref, at=now
        )
    return Confirmation.CONFIRMED


def resend_optin(session: Session, request: OptInRequest) -> bool:
    """Queue a fresh opt-in mail for an expired request's purposes."""
    lead = leads.get(session, request.lead_id, for_update=True)
    if lead is None or request.confirmed_at is not None:
        return False
    texts = [t for t in (session.get(ConsentText, i) for i in request.text_ids) if t is not None]
    fresh = OptInRequest(
        id=uuid.uuid4(),
        lead_id=lead.id,
        purposes=list(request.purposes),
        text_ids=list(request.text_ids),
        form_ref=request.form_ref,
        language=request.language,
        created_at=clock.now(),
    )
    session.add(fresh)
    session.delete(request)
    session.flush()
    _queue_optin_mail(session, lead, fresh, texts)
    return True
