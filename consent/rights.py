"""Data-subject rights: unsubscribe, preference-center links, access export, erasure.

Every token names a purpose (its salt) and holds ids and nonces only, never
personal data. Access and erasure links are single-use.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from email.utils import parseaddr
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from consent import ledger, optin, service
from consent.ledger import RequestMeta
from consent.models import ConsentText, Purpose
from leadvault import branding, clock, i18n, inbox_queueing, leads, links, mail, outbox, signals
from leadvault.branding import mail_parts
from leadvault.crypto import TokenExpired, TokenInvalid, payload_id, random_token
from leadvault.db import mail_context, settings_of, vault_of
from leadvault.i18n import N_
from leadvault.mail import MailContent
from leadvault.models import Lead, OutboxMessage, OutboxStatus

UNSUBSCRIBE = "unsubscribe"
PREFS = "prefs"
ACCESS = "access"
ERASE = "erase"
EXPORT_SCHEMA_VERSION = 1


class LinkGone(Exception):
    """A genuine link whose lead was erased or whose single use is spent."""


class LeadErased(LinkGone):
    """A genuine link whose lead no longer exists: its data was erased."""


def _lead_from(session: Session, payload: Any) -> Lead | None:
    return leads.get(session, payload_id(payload, "l"))


# --- one-click unsubscribe (RFC 8058) -----------------------------------------


def unsubscribe_url(session: Session, lead_id: uuid.UUID, purpose: str) -> str:
    token = vault_of(session).sign(UNSUBSCRIBE, {"l": lead_id.hex, "p": purpose})
    return f"{settings_of(session).base_url}/u/{token}"


def read_unsubscribe(session: Session, token: str) -> tuple[uuid.UUID, str]:
    """Unsubscribe links never expire: a lead must always be able to leave."""
    payload = vault_of(session).unsign(UNSUBSCRIBE, token, max_age_seconds=None)
    if not isinstance(payload, dict) or not isinstance(payload.get("p"), str):
        raise TokenInvalid("malformed token")
    return payload_id(payload, "l"), payload["p"]


def marketing_headers(
    session: Session,
    lead_id: uuid.UUID,
    purpose: str,
    *,
    list_key: str | None = None,
    list_name: str | None = None,
) -> dict[str, str]:
    """One-click unsubscribe from ``purpose`` and the List-Id (by default one list per
    purpose; nurture names one per sequence), through ``leadvault.mail``."""
    settings = settings_of(session)
    targets = [unsubscribe_url(session, lead_id, purpose)]
    if settings.unsubscribe_mailto:
        _name, address = parseaddr(settings.unsubscribe_mailto)
        targets.append(f"mailto:{address}?subject=unsubscribe")
    return mail.marketing_headers(
        settings.mail_from,
        unsubscribe=targets,
        list_key=list_key or purpose,
        list_name=list_name or purpose.replace("_", " ").capitalize(),
    )


def queue_marketing_mail(
    session: Session, lead: Lead, purpose: str, *, template: str, subject: str, text: str, html: str
) -> OutboxMessage:
    """A mail under a marketing purpose: only with consent, always with one-click unsubscribe."""
    if not service.has_consent(session, lead.id, purpose):
        raise service.ConsentError(N_("There is no consent for “%(purpose)s”."), purpose=purpose)
    content = MailContent(
        to=leads.email_of(session, lead),
        subject=subject,
        text=text,
        html=html,
        headers=marketing_headers(session, lead.id, purpose),
        language=lead.language,
    )
    return outbox.enqueue_mail(session, content, template=template, lead=lead, purpose=purpose)


def _send_welcome(session: Session, *, lead_id: uuid.UUID, purpose: str, **_: Any) -> None:
    """Newsletter confirmed: a welcome mail that already carries the unsubscribe headers."""
    if purpose != "newsletter":
        return
    lead = leads.get(session, lead_id)
    if lead is None:
        return
    lang = lead.language
    context = mail_context(
        session,
        lang,
        unsubscribe=unsubscribe_url(session, lead_id, purpose),
        first_name=leads.attributes_of(session, lead).get("first_name"),
    )
    queue_marketing_mail(
        session,
        lead,
        purpose,
        template="welcome",
        subject=branding.subject(
            settings_of(session), i18n.translate(lang, "Welcome to our newsletter")
        ),
        **mail_parts("consent/mail/welcome", context),
    )


# --- manage-my-data and the preference center --------------------------------


def prefs_url(session: Session, lead_id: uuid.UUID) -> str:
    token = vault_of(session).sign(PREFS, {"l": lead_id.hex, "n": random_token(8)})
    return f"{settings_of(session).base_url}/p/{token}"


MANAGE_REQUEST = "consent.manage"


def queue_manage_request(session: Session, email: str, lang: str) -> None:
    """The request path of /manage: seal the address into the inbox and nothing else.

    The same work for every address, so the answer's timing tells nobody whether
    it belongs to a lead; the worker decides (:func:`handle_manage_request`).
    The inbox row carries the address's blind index: erasure drops it too.
    """
    inbox_queueing.enqueue(
        session, MANAGE_REQUEST, {"email": email, "language": lang}, subject_email=email
    )


def handle_manage_request(session: Session, payload: dict[str, Any]) -> None:
    """Inbox handler: the preference-center link, if the address is a lead."""
    request_manage_link(session, payload["email"], payload["language"])


def request_manage_link(session: Session, email: str, lang: str) -> None:
    """Mail a preference-center link if the address is a lead; silently nothing otherwise."""
    lead = leads.find_by_email(session, email)
    if lead is None:
        return
    settings = settings_of(session)
    attributes = leads.attributes_of(session, lead)
    hours = settings.prefs_link_hours
    context = mail_context(
        session,
        lang,
        time_zone=leads.zone_in(attributes, settings.zone),
        prefs_url=prefs_url(session, lead.id),
        hours=hours,
        until=clock.now() + dt.timedelta(hours=hours),
        first_name=attributes.get("first_name"),
    )
    content = MailContent(
        to=leads.email_of(session, lead),
        subject=branding.subject(settings, i18n.translate(lang, "Your link to manage your data")),
        **mail_parts("consent/mail/manage", context),
        language=lang,
    )
    outbox.enqueue_mail(session, content, template="manage", lead=lead)


def read_prefs(session: Session, token: str) -> Lead:
    """Raises TokenInvalid, TokenExpired or LinkGone."""
    max_age = settings_of(session).prefs_link_hours * 3600
    payload = vault_of(session).unsign(PREFS, token, max_age_seconds=max_age)
    lead = _lead_from(session, payload)
    if lead is None:
        raise LeadErased("lead erased")
    return lead


def single_use_token(session: Session, purpose: str, lead_id: uuid.UUID) -> str:
    return vault_of(session).sign(purpose, {"l": lead_id.hex, "n": random_token(16)})


def use_single_use(session: Session, purpose: str, token: str, *, spend: bool) -> Lead:
    """Resolve an access/erase token; with ``spend`` it cannot be used again."""
    max_age = settings_of(session).prefs_link_hours * 3600
    payload = vault_of(session).unsign(purpose, token, max_age_seconds=max_age)
    lead = _lead_from(session, payload)
    nonce = f"{purpose}:{payload.get('n')}"
    if lead is None:
        raise LeadErased("erased")
    if links.is_spent(session, nonce):
        raise LinkGone("used or erased")
    expires_at = clock.now() + dt.timedelta(seconds=max_age)
    if spend and not links.spend(session, nonce, expires_at=expires_at):
        raise LinkGone("used at the same moment")
    return lead


@dataclasses.dataclass(frozen=True)
class PurposeView:
    purpose: str
    status: str
    text: ConsentText | None
    changed_at: Any


def purpose_views(session: Session, lead: Lead) -> list[PurposeView]:
    current = service.states(session, lead.id)
    views = []
    for purpose in session.scalars(sa.select(Purpose).order_by(Purpose.key)):
        state = current.get(purpose.key)
        text = session.get(ConsentText, state.text_id) if state and state.text_id else None
        changed = None
        if state is not None:
            changed = state.withdrawn_at or state.granted_at or state.requested_at
        views.append(PurposeView(purpose.key, state.status if state else "none", text, changed))
    return views


def grant(session: Session, lead: Lead, purpose: str, lang: str, meta: RequestMeta) -> None:
    """Asking for a purpose from the preference center goes through double opt-in again."""
    text = service.latest_text(session, purpose, lang)
    if text is None:
        raise service.ConsentError(
            N_("There is no consent text for “%(purpose)s” yet."),
            purpose=service.purpose_label(purpose, lang),
        )
    optin.request_consent(
        session,
        lead=lead,
        purposes_asked=[purpose],
        form=optin.FormRef("preference-center", {purpose: text.id}),
        language=lang,
        meta=meta,
    )


# --- access and portability (Art. 15/20) --------------------------------------


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def access_export(session: Session, lead: Lead) -> dict[str, Any]:
    """Everything held about the lead, as one JSON document (schema: access-export.v1)."""
    settings = settings_of(session)
    document: dict[str, Any] = {
        "schema": f"{settings.base_url}/schemas/access-export.v{EXPORT_SCHEMA_VERSION}.json",
        "schema_version": EXPORT_SCHEMA_VERSION,
        "generated_at": _iso(clock.now()),
        "lead": {
            "id": str(lead.id),
            "email": leads.email_of(session, lead),
            "language": lead.language,
            "created_at": _iso(lead.created_at),
            "last_activity_at": _iso(lead.last_activity_at),
            "profile": leads.attributes_of(session, lead),
        },
        "consents": [
            {
                "purpose": view.purpose,
                "status": view.status,
                "text_version": view.text.version if view.text else None,
                "text": view.text.text if view.text else None,
                "changed_at": _iso(view.changed_at),
            }
            for view in purpose_views(session, lead)
        ],
        "consent_ledger": [
            {
                "id": entry.id,
                "created_at": _iso(entry.created_at),
                "event": entry.event,
                "purpose": entry.purpose,
                "form": entry.form_ref,
                "text_version": entry.text_version,
                "text_sha256": entry.text_sha256,
                "ip_prefix": entry.ip_prefix,
                "entry_hash": entry.entry_hash,
            }
            for entry in ledger.history(session, str(lead.id))
        ],
        "submissions": [],
        "events": [],
        "scores": [],
        "stage_history": [],
        "mails": [
            {
                "template": row.template,
                "subject": outbox.read_subject(session, row),
                "status": row.status,
                "created_at": _iso(row.created_at),
                "sent_at": _iso(row.sent_at),
            }
            for row in session.scalars(
                sa.select(OutboxMessage)
                .where(OutboxMessage.lead_id == lead.id)
                .order_by(OutboxMessage.id)
            )
            if row.status != OutboxStatus.CANCELLED
        ],
    }
    # Higher packages (capture, scoring) add their sections.
    for _receiver, section in signals.collect_access_data.send(session, lead_id=lead.id):
        if section:
            name, value = section
            document[name] = value
    return document


# --- erasure (Art. 17) -------------------------------------------------------


def erase(
    session: Session,
    lead: Lead,
    *,
    actor: str = "system",
    reason: str = "retention",
    ip: str | None = None,
) -> None:
    """Crypto-shred and delete; a suppression entry and an ``erased`` ledger entry remain
    (and one audit entry naming ``actor``, see ``leadvault.leads.erase``)."""
    leads.erase(session, lead, actor=actor, reason=reason, ip=ip)


def erase_by_email(
    session: Session, email: str, *, actor: str = "system", reason: str = "request"
) -> bool:
    lead = leads.find_by_email(session, email, for_update=True)
    if lead is None:
        return False
    erase(session, lead, actor=actor, reason=reason)
    return True


def connect_signals() -> None:
    signals.purpose_confirmed.connect(_send_welcome)


__all__ = ["TokenExpired", "TokenInvalid"]
