"""Entering and leaving sequences: the triggers and exits, from the signals of lower packages.

A lead enters an active sequence when its trigger fires, it confirmed the
sequence's purpose, belongs to the audience, has not reached the exit stage,
is not suppressed, and is not in the sequence already (at most once at a time;
again after finishing only with ``reentry = true``). It leaves when the purpose
is withdrawn, it reaches the exit stage, sales takes it, a goal event happens,
its address hard-bounces or complains, or it is erased (rows cascade). The
steps themselves run in ``nurture.tick``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from consent import service as consent_service
from leadvault import clock, leads, outbox
from leadvault.db import dialect_of, vault_of
from leadvault.models import Lead
from nurture import mails, sequences
from nurture.definition import Sequence
from nurture.models import Enrollment, EnrollmentStatus, MailSuppression
from scoring import rules as scoring_rules
from scoring import scores, stages


def is_suppressed(session: Session, lead: Lead) -> bool:
    return session.get(MailSuppression, lead.email_index) is not None


def _lead_facts(session: Session, lead_id: uuid.UUID) -> tuple[str, float, str, str | None]:
    """Stage, decayed score, grade and first form of a lead (scoring's view of it)."""
    state = stages.state_of(session, lead_id)
    half_life = scoring_rules.active(session).half_life_seconds
    score = scores.score_at(state.score, state.as_of, clock.now(), half_life)
    return state.stage, score, state.fit_grade, state.first_form


def enter(
    session: Session, lead_id: uuid.UUID, sequence: Sequence, *, form: str | None = None
) -> Enrollment | None:
    """Put the lead into the sequence if it qualifies; None when it does not (or is in)."""
    lead = leads.get(session, lead_id)
    if lead is None or not consent_service.has_consent(session, lead_id, sequence.purpose):
        return None
    if is_suppressed(session, lead):
        return None
    stage, score, grade, first_form = _lead_facts(session, lead_id)
    if sequence.exit.on_stage(stage):
        return None
    forms = {f for f in (first_form, form) if f}
    admitted, _why = sequence.audience.admits(
        grade=grade, score=score, forms=forms, language=lead.language
    )
    if not admitted:
        return None
    earlier = sa.select(Enrollment.id).where(
        Enrollment.lead_id == lead_id, Enrollment.sequence_key == sequence.key
    )
    if not sequence.reentry and session.scalar(earlier.limit(1)) is not None:
        return None
    now = clock.now()
    insert = postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert
    statement = (
        insert(Enrollment)
        .values(
            lead_id=lead_id,
            sequence_key=sequence.key,
            version=sequence.version,
            active_key=sequence.key,
            status=EnrollmentStatus.ACTIVE,
            step=0,
            due_at=now,
            entered_at=now,
        )
        .on_conflict_do_nothing(index_elements=["lead_id", "active_key"])
        .execution_options(preserve_rowcount=True)
    )
    if session.execute(statement).rowcount != 1:
        return None  # already in it (also under a race)
    return session.scalars(
        sa.select(Enrollment).where(
            Enrollment.lead_id == lead_id, Enrollment.active_key == sequence.key
        )
    ).one()


def finish(session: Session, enrollment: Enrollment, status: str, reason: str | None) -> None:
    """End a run; its nurture mails still queued (not yet sent) are cancelled."""
    enrollment.status = status
    enrollment.active_key = None
    enrollment.due_at = None
    enrollment.held = None
    enrollment.finished_at = clock.now()
    enrollment.exit_reason = reason
    if status == EnrollmentStatus.EXITED:
        outbox.cancel_pending(
            session,
            lead_id=enrollment.lead_id,
            template=mails.outbox_template(enrollment.sequence_key),
        )
    session.flush()


def running(session: Session, lead_id: uuid.UUID) -> list[Enrollment]:
    return list(
        session.scalars(
            sa.select(Enrollment)
            .where(Enrollment.lead_id == lead_id, Enrollment.status == EnrollmentStatus.ACTIVE)
            .order_by(Enrollment.id)
        )
    )


def _definition(session: Session, enrollment: Enrollment) -> Sequence | None:
    try:
        return sequences.definition(session, enrollment.sequence_key, enrollment.version)
    except sequences.SequenceNotFound:
        return None


def leave_all(session: Session, lead_id: uuid.UUID, reason: str) -> int:
    """End every run of the lead (a hard bounce, a complaint)."""
    runs = running(session, lead_id)
    for enrollment in runs:
        finish(session, enrollment, EnrollmentStatus.EXITED, reason)
    return len(runs)


def _enter_matching(
    session: Session, lead_id: uuid.UUID, matches: Any, *, form: str | None = None
) -> None:
    for sequence in sequences.active(session).sequences:
        if matches(sequence):
            enter(session, lead_id, sequence, form=form)


# --- receivers of lower packages' signals ----------------------------------------------


def on_purpose_confirmed(session: Session, *, lead_id: uuid.UUID, purpose: str, **_: Any) -> None:
    lead = leads.get(session, lead_id)
    if lead is None:
        return
    # A fresh confirmation proves the mailbox takes mail again.
    session.execute(
        sa.delete(MailSuppression).where(MailSuppression.email_index == lead.email_index)
    )
    _enter_matching(
        session,
        lead_id,
        lambda s: s.trigger.on == "purpose_confirmed" and s.trigger.purpose == purpose,
    )


def on_purpose_withdrawn(session: Session, *, lead_id: uuid.UUID, purpose: str, **_: Any) -> None:
    for enrollment in running(session, lead_id):
        sequence = _definition(session, enrollment)
        if sequence is None or sequence.purpose == purpose:
            finish(session, enrollment, EnrollmentStatus.EXITED, "unsubscribed")


def on_form_submitted(session: Session, *, lead_id: uuid.UUID, form: Any, **_: Any) -> None:
    public_id = getattr(form, "public_id", None)
    _enter_matching(
        session,
        lead_id,
        lambda s: s.trigger.on == "form_submitted" and s.trigger.form in {None, public_id},
        form=public_id,
    )


def on_stage_changed(session: Session, *, lead_id: uuid.UUID, to_stage: str, **_: Any) -> None:
    for enrollment in running(session, lead_id):
        if to_stage == "mql" and enrollment.mql_at is None:
            enrollment.mql_at = clock.now()
            enrollment.mql_after = enrollment.last_mail
        sequence = _definition(session, enrollment)
        if sequence is not None and sequence.exit.on_stage(to_stage):
            finish(session, enrollment, EnrollmentStatus.EXITED, f"stage:{to_stage}")
    _enter_matching(
        session,
        lead_id,
        lambda s: s.trigger.on == "stage_entered" and s.trigger.stage == to_stage,
    )


def on_handoff_changed(session: Session, *, lead_id: uuid.UUID, status: str, **_: Any) -> None:
    for enrollment in running(session, lead_id):
        sequence = _definition(session, enrollment)
        if sequence is not None and sequence.exit.on_handoff(status):
            finish(session, enrollment, EnrollmentStatus.EXITED, f"handoff:{status}")


def on_events_recorded(
    session: Session,
    *,
    events: Iterable[tuple[uuid.UUID, str, Mapping[str, Any]]],
    **_: Any,
) -> None:
    """Goal events end runs; asset downloads and named events start them."""
    relevant = [event for event in events if event[1] != "mail_clicked"]
    if not relevant:
        return
    active = sequences.active(session)
    types = active.event_types
    for lead_id, event_type, properties in relevant:
        if event_type not in types:
            continue
        for enrollment in running(session, lead_id):
            sequence = _definition(session, enrollment)
            if sequence is not None and event_type in sequence.exit.goal_events:
                finish(session, enrollment, EnrollmentStatus.EXITED, f"goal:{event_type}")
        for sequence in active.sequences:
            trigger = sequence.trigger
            if event_type not in trigger.event_types:
                continue
            if trigger.on == "asset_downloaded" and trigger.asset not in {
                None,
                (properties or {}).get("asset"),
            }:
                continue
            enter(session, lead_id, sequence)


def suppress(
    session: Session, lead: Lead, *, status: str | None, reason: str = "hard_bounce"
) -> bool:
    """Stop marketing mail to the lead's address; False when it was suppressed already."""
    if session.get(MailSuppression, lead.email_index) is not None:
        return False
    session.add(
        MailSuppression(
            email_index=lead.email_index,
            lead_id=lead.id,
            reason=reason,
            status=(status or "")[:16] or None,
            created_at=clock.now(),
        )
    )
    session.flush()
    return True


def suppression_of(session: Session, lead: Lead) -> MailSuppression | None:
    return session.get(MailSuppression, lead.email_index)


def suppressed_indexes(session: Session, indexes: Iterable[bytes]) -> set[bytes]:
    wanted = list(set(indexes))
    found: set[bytes] = set()
    for start in range(0, len(wanted), 500):
        found.update(
            session.scalars(
                sa.select(MailSuppression.email_index).where(
                    MailSuppression.email_index.in_(wanted[start : start + 500])
                )
            )
        )
    return found


def suppressed_address(session: Session, email: str) -> bool:
    return session.get(MailSuppression, vault_of(session).blind_index(email)) is not None
