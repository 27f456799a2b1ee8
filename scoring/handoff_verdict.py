"""A handoff's verdict: the salesperson accepts or rejects the lead, answers the BANT
questions and marks it SQL, won or lost; a withdrawn sales contact ends open offers.
Each step moves the lead's stage and records sales feedback (``scoring.handoff`` offers).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import clock
from leadvault.i18n import N_
from scoring import signals, stages
from scoring.models import Handoff, HandoffStatus, Stage
from scoring.signals import handoff_changed


class HandoffError(Exception):
    """A handoff action that is not possible now; the message is safe to show staff."""


class BantIncomplete(HandoffError):
    """SQL asked for while a BANT point is not answered yes (``bant_missing`` says which)."""


# The consent a handoff needs: a lead is offered only with it (``scoring.handoff``) and
# its withdrawal ends the open offers (:func:`withdraw_open`).
SALES_PURPOSE = "sales_contact"

NOT_OPEN = N_(
    "This lead is no longer waiting for a decision (it was decided or passed to a colleague)."
)


def _feedback(session: Session, lead_id: uuid.UUID, properties: dict[str, Any]) -> None:
    from scoring import events

    events.record_event(session, lead_id, "sales_feedback", properties, clock.now())


def person_label(handoff: Handoff) -> str:
    # An id, not the address: the stage history is part of the lead's access export.
    return f"salesperson:{handoff.person_id}" if handoff.person_id else "sales"


def accept(session: Session, handoff: Handoff) -> None:
    if handoff.status != HandoffStatus.OFFERED:
        raise HandoffError(NOT_OPEN)
    state = stages.state_of(session, handoff.lead_id, for_update=True)
    handoff.status = HandoffStatus.ACCEPTED
    handoff.decided_at = clock.now()
    stages.transition(session, state, Stage.SAL, cause_kind="person", cause=person_label(handoff))
    handoff_changed.send(session, lead_id=handoff.lead_id, status=HandoffStatus.ACCEPTED.value)
    _feedback(session, handoff.lead_id, {"action": "accepted"})
    signals.handoff_accepted.send(
        session, lead_id=handoff.lead_id, handoff_id=handoff.id, person_id=handoff.person_id
    )


def reject(session: Session, handoff: Handoff, reason: str) -> str:
    if reason not in stages.REJECT_REASONS:
        raise HandoffError(N_("Please choose a reason."))
    if handoff.status not in {HandoffStatus.OFFERED, HandoffStatus.ACCEPTED}:
        raise HandoffError(NOT_OPEN)
    state = stages.state_of(session, handoff.lead_id, for_update=True)
    handoff.status = HandoffStatus.REJECTED
    handoff.decided_at = clock.now()
    handoff.reject_reason = reason
    to = stages.REJECT_REASONS[reason]
    stages.transition(
        session,
        state,
        to,
        cause_kind="person",
        cause=f"{person_label(handoff)}: {reason}",
    )
    _feedback(session, handoff.lead_id, {"action": "rejected", "reason": reason})
    return to


ANSWER_THIS = N_("Please answer this question.")


def read_bant(form: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The answers of the BANT form (``yes``, ``no`` or ``unknown`` per point), and
    point → message id for each question left open or answered with something else."""
    answers: dict[str, str] = {}
    problems: dict[str, str] = {}
    for point in stages.BANT:
        value = form.get(point, "")
        if value in stages.BANT_ANSWERS:
            answers[point] = value
        else:
            problems[point] = ANSWER_THIS
    return answers, problems


def bant_answer(bant: Mapping[str, Any], point: str) -> str | None:
    """A stored answer; handoffs recorded before the questions held True/False."""
    value = bant.get(point)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value if value in stages.BANT_ANSWERS else None


def bant_missing(handoff: Handoff) -> list[str]:
    """The BANT points not answered yes (SQL needs all four)."""
    return [p for p in stages.BANT if bant_answer(handoff.bant or {}, p) != "yes"]


def record_bant(session: Session, handoff: Handoff, answers: Mapping[str, str]) -> None:
    """Store a complete set of answers (see :func:`read_bant`)."""
    if handoff.status != HandoffStatus.ACCEPTED:
        raise HandoffError(N_("Accept the lead first."))
    if set(answers) != set(stages.BANT) or not set(answers.values()) <= set(stages.BANT_ANSWERS):
        raise HandoffError(ANSWER_THIS)
    handoff.bant = {point: answers[point] for point in stages.BANT}
    session.flush()


def mark(session: Session, handoff: Handoff, outcome: str) -> None:
    """Move an accepted lead to SQL, won or lost; SQL needs all four BANT points."""
    if handoff.status != HandoffStatus.ACCEPTED:
        raise HandoffError(N_("Accept the lead first."))
    if outcome not in {Stage.SQL, Stage.WON, Stage.LOST}:
        raise HandoffError(N_("The request could not be understood."))
    if outcome == Stage.SQL and bant_missing(handoff):
        raise BantIncomplete(
            N_("SQL needs all four BANT points: project/need, budget, authority and timeline.")
        )
    state = stages.state_of(session, handoff.lead_id, for_update=True)
    try:
        stages.transition(session, state, outcome, cause_kind="person", cause=person_label(handoff))
    except stages.StageError:
        raise HandoffError(N_("The lead cannot move to that stage from where it is.")) from None
    _feedback(session, handoff.lead_id, {"action": outcome})


def withdraw_open(session: Session, lead_id: uuid.UUID) -> None:
    """Sales contact withdrawn: open offers end (their queued mails are cancelled by consent)."""
    for handoff in session.scalars(
        sa.select(Handoff).where(
            Handoff.lead_id == lead_id,
            Handoff.status.in_([HandoffStatus.QUEUED.value, HandoffStatus.OFFERED.value]),
        )
    ):
        handoff.status = HandoffStatus.WITHDRAWN
        handoff.decided_at = clock.now()
    session.flush()
