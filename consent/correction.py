"""Correction of a lead's own data in the preference center (Art. 16 GDPR).

Profile fields change at once. A new address changes only when a link mailed to
that address is confirmed: until then the old address stays the lead's (mails,
look-ups, the blind index), and the new one waits sealed under the lead's key
in ``email_changes``. Once the change is confirmed, the old address gets a notice
(the new one masked) with a link that changes it back: an ``email_changes`` row
for the old address, confirmed like any other, sealed as an undo (its own
encryption context), so it is not shown as the lead's request and a new request
does not replace it. Each step is one audit
entry with the actor ``subject``; entries name fields, never values. The consent
ledger is keyed by the lead's id, so its history stays the lead's across the change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session

from consent import rights, service
from consent.models import EmailChange
from leadvault import audit, branding, clock, i18n, leads, outbox, profile
from leadvault.branding import mail_parts
from leadvault.crypto import DecryptionError, TokenInvalid, payload_id, random_token
from leadvault.db import mail_context, settings_of, vault_of
from leadvault.i18n import N_
from leadvault.mail import MailContent
from leadvault.models import Lead

EMAIL_CHANGE = "email-change"
# What the lead may correct (the message stays as it was sent).
FIELDS = ("first_name", "last_name", "company", "job_title", "phone", "country", "company_size")
CORRECTED = audit.Action.LEAD_CORRECTED
EMAIL_CHANGE_REQUESTED = audit.Action.LEAD_EMAIL_CHANGE_REQUESTED
EMAIL_CHANGED = audit.Action.LEAD_EMAIL_CHANGED
NOTICE_TEMPLATE = "email_changed"  # the notice to the old address

INVALID_EMAIL = N_("Please enter a valid email address, like name@example.com.")
ADDRESS_TAKEN = N_(
    "This address cannot be used for your data. If it is yours, ask us by replying to one "
    "of our mails."
)


@dataclasses.dataclass(frozen=True)
class Outcome:
    changed: list[str]  # profile fields changed or removed
    email_pending: bool  # a confirmation mail went to the new address


def problems(values: Mapping[str, str], lang: str) -> dict[str, str]:
    """Field → message in ``lang`` for what the correction form may not take."""
    found: dict[str, str] = {}
    email = values.get("email", "")
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        found["email"] = i18n.translate(lang, INVALID_EMAIL)
    if len(email) > 254:
        found["email"] = i18n.translate(lang, profile.TOO_LONG, max=254)
    for name in FIELDS:
        value = values.get(name, "")
        problem = profile.field_problem(name, value) if value else None
        if problem is not None:
            message, params = problem
            found[name] = i18n.translate(lang, message, **params)
    return found


def cleaned(form: Mapping[str, str]) -> dict[str, str]:
    """The form's values, trimmed; a country code in capitals."""
    values = {name: (form.get(name) or "").strip() for name in ("email", *FIELDS)}
    if profile.country_ok(values["country"]):
        values["country"] = values["country"].upper()
    return values


def correct(
    session: Session, lead: Lead, values: Mapping[str, str], lang: str, *, ip: str | None
) -> Outcome:
    """Apply checked ``values`` (see :func:`problems`): profile fields now (empty removes),
    a different address through a confirmation mail to it."""
    changed = leads.correct_attributes(session, lead, {name: values[name] for name in FIELDS})
    if changed:
        audit.record_lead(
            session, lead.id, CORRECTED, actor="subject", detail={"fields": changed}, ip=ip
        )
    pending = changes_address(session, lead, values["email"])
    if pending:
        request_email_change(session, lead, values["email"], lang, ip=ip)
    return Outcome(changed=changed, email_pending=pending)


def changes_address(session: Session, lead: Lead, email: str) -> bool:
    return vault_of(session).blind_index(email) != lead.email_index


def _pending(session: Session, lead_id: uuid.UUID) -> list[EmailChange]:
    return list(session.scalars(sa.select(EmailChange).where(EmailChange.lead_id == lead_id)))


def _field(change_id: uuid.UUID, *, undo: bool) -> str:
    return f"email_change/{change_id}" + ("/undo" if undo else "")


def _opened(session: Session, lead: Lead, change: EmailChange) -> tuple[str, bool]:
    """The row's address, and whether it changes the address back (an undo)."""
    key = leads.data_key(session, lead)
    try:
        return key.decrypt(_field(change.id, undo=False), change.new_email), False
    except DecryptionError:
        return key.decrypt(_field(change.id, undo=True), change.new_email), True


def pending_email(session: Session, lead: Lead) -> str | None:
    """The new address waiting for its confirmation, if any (shown to the lead only)."""
    for change in _pending(session, lead.id):
        email, undo = _opened(session, lead, change)
        if not undo:
            return email
    return None


def is_undo(session: Session, lead: Lead, change: EmailChange) -> bool:
    """Whether an address link changes the address back (the notice's link)."""
    return _opened(session, lead, change)[1]


def _open_request(
    session: Session, lead: Lead, email: str, *, undo: bool
) -> tuple[str, dt.datetime]:
    """Seal ``email`` as a pending address of the lead (an older request of the lead is
    replaced, its link stops working; an undo stays); its link and when that expires."""
    for older in _pending(session, lead.id):
        if not is_undo(session, lead, older):
            session.delete(older)
    change = EmailChange(id=uuid.uuid4(), lead_id=lead.id, new_email=b"", created_at=clock.now())
    field = _field(change.id, undo=undo)
    change.new_email = leads.data_key(session, lead).encrypt(field, email)
    session.add(change)
    session.flush()
    settings = settings_of(session)
    token = vault_of(session).sign(
        EMAIL_CHANGE, {"c": change.id.hex, "l": lead.id.hex, "n": random_token(8)}
    )
    until = change.created_at + dt.timedelta(hours=settings.prefs_link_hours)
    return f"{settings.base_url}/address/{token}", until


def request_email_change(
    session: Session, lead: Lead, email: str, lang: str, *, ip: str | None
) -> str:
    """Seal the new address, mail it a confirmation link (returned); an older request is
    replaced (its link stops working), the link of a notice to an old address is not."""
    confirm_url, until = _open_request(session, lead, email, undo=False)
    settings = settings_of(session)
    attributes = leads.attributes_of(session, lead)
    context = mail_context(
        session,
        lang,
        time_zone=leads.zone_in(attributes, settings.zone),
        confirm_url=confirm_url,
        hours=settings.prefs_link_hours,
        until=until,
        first_name=attributes.get("first_name"),
    )
    content = MailContent(
        to=email,
        subject=branding.subject(settings, i18n.translate(lang, "Please confirm your new address")),
        **mail_parts("consent/mail/email_change", context),
        language=lang,
    )
    outbox.enqueue_mail(session, content, template="email_change", lead=lead)
    audit.record_lead(session, lead.id, EMAIL_CHANGE_REQUESTED, actor="subject", ip=ip)
    return confirm_url


def read_email_change(
    session: Session, token: str, *, for_update: bool = False
) -> tuple[Lead, EmailChange]:
    """Raises TokenInvalid, TokenExpired, rights.LeadErased (the lead is gone) or
    rights.LinkGone (confirmed already, or replaced by a newer request). Lock the lead
    (``for_update``) only to change it: a GET runs in a read-only transaction."""
    max_age = settings_of(session).prefs_link_hours * 3600
    payload = vault_of(session).unsign(EMAIL_CHANGE, token, max_age_seconds=max_age)
    if not isinstance(payload, dict):
        raise TokenInvalid("malformed token")
    lead = leads.get(session, payload_id(payload, "l"), for_update=for_update)
    if lead is None:
        raise rights.LeadErased("erased")
    change = session.get(EmailChange, payload_id(payload, "c"))
    if change is None or change.lead_id != lead.id:
        raise rights.LinkGone("confirmed or replaced")
    return lead, change


def confirm_email_change(
    session: Session, lead: Lead, change: EmailChange, *, ip: str | None
) -> None:
    """The new address is the lead's from now on (sealed value and blind index), and the
    old address gets a notice in the same transaction; raises leads.AddressTaken when
    another lead has it (the request then stays open)."""
    old = leads.email_of(session, lead)
    email, _undo = _opened(session, lead, change)
    leads.change_email(session, lead, email)
    # Confirmed by its owner, like a new submission: an old erasure's block lifts.
    service.lift_suppression(session, email)
    # This request and any other of the lead (an older undo included) end here.
    for done in _pending(session, lead.id):
        session.delete(done)
    session.flush()
    audit.record_lead(session, lead.id, EMAIL_CHANGED, actor="subject", ip=ip)
    if vault_of(session).blind_index(old) != lead.email_index:
        _notify_old_address(session, lead, old, email)


def masked(email: str) -> str:
    """``o***@example.com``: enough for its owner to recognise, not to write to."""
    local, _at, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _notify_old_address(session: Session, lead: Lead, old: str, new: str) -> None:
    """Tell the old address that the lead's address changed (the new one masked), with a
    link that changes it back (a request for the old address, confirmed from it)."""
    undo_url, until = _open_request(session, lead, old, undo=True)
    settings = settings_of(session)
    lang = lead.language if lead.language in i18n.LANGUAGES else i18n.DEFAULT_LANGUAGE
    attributes = leads.attributes_of(session, lead)
    context = mail_context(
        session,
        lang,
        time_zone=leads.zone_in(attributes, settings.zone),
        new_address=masked(new),
        changed_at=clock.now(),
        undo_url=undo_url,
        hours=settings.prefs_link_hours,
        until=until,
        reply=bool(settings.mail_reply_to),
        first_name=attributes.get("first_name"),
    )
    content = MailContent(
        to=old,
        subject=branding.subject(settings, i18n.translate(lang, "Your email address was changed")),
        **mail_parts(f"consent/mail/{NOTICE_TEMPLATE}", context),
        language=lang,
    )
    outbox.enqueue_mail(session, content, template=NOTICE_TEMPLATE, lead=lead)


def expire_before(session: Session, moment: dt.datetime) -> int:
    """Drop requests older than ``moment`` (their links have expired)."""
    result = session.execute(sa.delete(EmailChange).where(EmailChange.created_at < moment))
    return int(getattr(result, "rowcount", 0) or 0)
