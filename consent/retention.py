"""Retention: nothing is kept longer than it may be. Run by `leadvault purge` and the worker."""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from consent import correction, ledger, rights
from consent.models import Consent, ConsentStatus, LedgerEntry, LedgerEvent, OptInRequest
from leadvault import clock, inbox, leads, links, outbox
from leadvault.db import settings_of
from leadvault.models import Lead

log = logging.getLogger("leadvault.retention")


def _has_granted(session: Session, lead_id: object) -> bool:
    return (
        session.scalar(
            sa.select(sa.func.count()).where(
                Consent.lead_id == lead_id, Consent.status == ConsentStatus.GRANTED
            )
        )
        or 0
    ) > 0


def _open_purposes(session: Session, lead_id: object, cutoff: dt.datetime) -> set[str]:
    """Purposes of the lead's unconfirmed requests that have not expired yet."""
    rows = session.scalars(
        sa.select(OptInRequest.purposes).where(
            OptInRequest.lead_id == lead_id,
            OptInRequest.confirmed_at.is_(None),
            OptInRequest.created_at >= cutoff,
        )
    )
    return {purpose for purposes in rows for purpose in purposes}


def _purge_old_proof(session: Session, now: dt.datetime, keep_days: int) -> int:
    """Proof of a withdrawn consent, or of an erased lead, is kept for legal claims
    (default three years), then purged; the chain keeps verifying (ledger.prune)."""
    cutoff = now - dt.timedelta(days=keep_days)
    live = LedgerEntry.pruned_at.is_(None)
    entry_ids: list[int] = []
    withdrawn = list(
        session.scalars(
            sa.select(Consent).where(
                Consent.status == ConsentStatus.WITHDRAWN, Consent.withdrawn_at < cutoff
            )
        )
    )
    for consent in withdrawn:
        entry_ids += session.scalars(
            sa.select(LedgerEntry.id).where(
                LedgerEntry.subject == str(consent.lead_id),
                LedgerEntry.purpose == consent.purpose,
                live,
            )
        )
        session.delete(consent)  # the purpose is simply "not given" from now on
    erased_subjects = session.scalars(
        sa.select(LedgerEntry.subject).where(
            LedgerEntry.event == LedgerEvent.ERASED, LedgerEntry.created_at < cutoff, live
        )
    )
    for subject in list(erased_subjects):
        entry_ids += session.scalars(
            sa.select(LedgerEntry.id).where(LedgerEntry.subject == subject, live)
        )
    return ledger.prune(session, sorted(set(entry_ids)))


def purge(session: Session) -> dict[str, int]:
    """Erase expired opt-in requests and idle leads without consent; counts only."""
    settings = settings_of(session)
    now = clock.now()
    counts = {"requests_expired": 0, "leads_erased_unconfirmed": 0, "leads_erased_inactive": 0}

    cutoff = now - dt.timedelta(days=settings.optin_max_age_days)
    expired = list(
        session.scalars(
            sa.select(OptInRequest).where(
                OptInRequest.confirmed_at.is_(None), OptInRequest.created_at < cutoff
            )
        )
    )
    for request in expired:
        lead = leads.get(session, request.lead_id, for_update=True)
        counts["requests_expired"] += 1
        if lead is None:
            continue
        for purpose in request.purposes:
            ledger.append(session, event=LedgerEvent.EXPIRED, subject=str(lead.id), purpose=purpose)
        still_open = _open_purposes(session, lead.id, cutoff)
        if _has_granted(session, lead.id) or still_open:
            # The lead stays for what it did confirm or asked for again since;
            # only this request goes.
            session.execute(
                sa.update(Consent)
                .where(
                    Consent.lead_id == lead.id,
                    Consent.purpose.in_(sorted(set(request.purposes) - still_open)),
                    Consent.status == ConsentStatus.PENDING,
                )
                .values(status=ConsentStatus.NONE)
            )
            session.delete(request)
            # Its opt-in mail, if still queued, would only lead to an expired page.
            outbox.cancel_pending(session, lead_id=lead.id, template="optin", before=cutoff)
        else:
            rights.erase(session, lead)
            counts["leads_erased_unconfirmed"] += 1
        session.flush()

    idle_cutoff = now - dt.timedelta(days=settings.inactive_lead_days)
    granted = sa.select(Consent.lead_id).where(Consent.status == ConsentStatus.GRANTED)
    pending = sa.select(OptInRequest.lead_id).where(OptInRequest.confirmed_at.is_(None))
    idle = list(
        session.scalars(
            sa.select(Lead).where(
                Lead.last_activity_at < idle_cutoff,
                Lead.id.not_in(granted),
                Lead.id.not_in(pending),
            )
        )
    )
    for lead in idle:
        rights.erase(session, lead)
        counts["leads_erased_inactive"] += 1

    counts["proofs_purged"] = _purge_old_proof(session, now, settings.proof_retention_days)
    # Submissions the worker could never store are unconfirmed requests too.
    counts["failed_submissions_forgotten"] = inbox.forget_failed(session, cutoff)
    # Sent mails keep what the access export lists, not their bodies.
    sent_cutoff = now - dt.timedelta(days=settings.sent_mail_retention_days)
    counts["sent_mail_bodies_forgotten"] = outbox.forget_sent_bodies(session, sent_cutoff)

    # Spent single-use keys (links, render tokens, ALTCHA solutions) matter only
    # while their tokens could still be valid.
    counts["spent_links_forgotten"] = links.forget_expired(session, now)
    # An address change nobody confirmed while its link was valid: the new address goes.
    counts["email_changes_expired"] = correction.expire_before(
        session, now - dt.timedelta(hours=settings.prefs_link_hours)
    )
    session.flush()
    log.info("purge: %s", ", ".join(f"{k}={v}" for k, v in counts.items()))
    return counts
