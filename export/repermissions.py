"""The worker's job for imported contacts without proof of consent: re-permission mails.

An import queues each such contact in ``import_repermissions``
(``export.import_consent``); this job asks them by a double opt-in mail, at most
LEADVAULT_IMPORT_REPERMISSION_PER_HOUR in any hour and spread over it.
"""

from __future__ import annotations

import datetime as dt
import math

import sqlalchemy as sa
from sqlalchemy.orm import Session

from consent import optin
from consent import service as consent_service
from consent.models import ConsentStatus, ConsentText
from export.models import ImportPermission
from leadvault import clock, i18n, leads
from leadvault.db import dialect_of, settings_of
from leadvault.web import RequestMeta

REPERMISSION_JOB_SECONDS = 60.0
REPERMISSION_MAIL = optin.OptInMail(
    template="export/mail/repermission", subject=i18n.N_("Do you still want to hear from us?")
)
# Requested rows are kept this long (the hourly count needs the last hour only).
_KEEP_REQUESTED = dt.timedelta(days=1)


def ask_text(session: Session, purpose: str, language: str) -> ConsentText | None:
    """The text a re-permission mail asks with: the lead's language, else any current one."""
    for lang in (language, i18n.DEFAULT_LANGUAGE, *i18n.LANGUAGES):
        text = consent_service.latest_text(session, purpose, lang)
        if text is not None:
            return text
    return None


def send_repermissions(session: Session) -> int:
    """Queue the next re-permission mails, at most LEADVAULT_IMPORT_REPERMISSION_PER_HOUR
    in any hour and spread over it (one run a minute); returns how many were queued."""
    per_hour = settings_of(session).import_repermission_per_hour
    now = clock.now()
    session.execute(
        sa.delete(ImportPermission).where(ImportPermission.requested_at < now - _KEEP_REQUESTED)
    )
    sent = session.scalar(
        sa.select(sa.func.count()).where(
            ImportPermission.requested_at >= now - dt.timedelta(hours=1)
        )
    )
    share = math.ceil(per_hour * REPERMISSION_JOB_SECONDS / 3600)
    allowance = min(per_hour - (sent or 0), share)
    if allowance <= 0:
        return 0
    query = (
        sa.select(ImportPermission)
        .where(ImportPermission.requested_at.is_(None))
        .order_by(ImportPermission.queued_at, ImportPermission.lead_id)
        .limit(allowance)
    )
    if dialect_of(session) == "postgresql":
        query = query.with_for_update(skip_locked=True)
    queued = 0
    for row in session.scalars(query).all():
        if _ask(session, row):
            row.requested_at = now
            queued += 1
        else:
            session.delete(row)
    session.flush()
    return queued


def _ask(session: Session, row: ImportPermission) -> bool:
    lead = leads.get(session, row.lead_id, for_update=True)
    if lead is None:
        return False
    current = consent_service.states(session, lead.id)
    asked = [p for p in row.purposes if p not in current or current[p].status == ConsentStatus.NONE]
    texts = {p: ask_text(session, p, row.language) for p in asked}
    text_ids = {p: t.id for p, t in texts.items() if t is not None}
    if not text_ids:
        return False
    request = optin.request_consent(
        session,
        lead=lead,
        purposes_asked=list(text_ids),
        form=optin.FormRef(public_id=f"import:{row.batch}", text_ids=text_ids),
        language=row.language,
        meta=RequestMeta(),
        mail=REPERMISSION_MAIL,
    )
    return request is not None
