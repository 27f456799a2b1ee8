"""Lifecycle stages: new → MQL → SAL → SQL → won / lost, recycled, disqualified.

Every transition is recorded with its cause (a rule, an event, a person, the
system) and its time.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import clock
from scoring import scores
from scoring.models import LeadScore, Stage, StageChange
from scoring.rule_model import Rules, grade_at_least

ALLOWED: dict[str, frozenset[str]] = {
    Stage.NEW: frozenset({Stage.MQL, Stage.DISQUALIFIED}),
    Stage.MQL: frozenset({Stage.SAL, Stage.RECYCLED, Stage.DISQUALIFIED}),
    Stage.SAL: frozenset({Stage.SQL, Stage.RECYCLED, Stage.DISQUALIFIED, Stage.LOST}),
    Stage.SQL: frozenset({Stage.WON, Stage.LOST, Stage.RECYCLED}),
    Stage.RECYCLED: frozenset({Stage.MQL, Stage.DISQUALIFIED}),
    Stage.LOST: frozenset({Stage.RECYCLED}),
    Stage.WON: frozenset(),
    Stage.DISQUALIFIED: frozenset(),
}
# Reject reasons and where they send the lead.
REJECT_REASONS: dict[str, str] = {
    "not_reachable": Stage.RECYCLED,
    "fake_data": Stage.DISQUALIFIED,
    "no_need": Stage.RECYCLED,
    "no_budget": Stage.RECYCLED,
    "duplicate": Stage.DISQUALIFIED,
    "wrong_person": Stage.RECYCLED,
}
BANT = ("need", "budget", "authority", "timeline")


class StageError(Exception):
    """A transition the lifecycle does not allow; the message says which."""


def state_of(session: Session, lead_id: uuid.UUID, *, for_update: bool = False) -> LeadScore:
    """The lead's scoring state, created on first use."""
    query = sa.select(LeadScore).where(LeadScore.lead_id == lead_id)
    if for_update:
        query = query.with_for_update()
    state = session.scalars(query).one_or_none()
    if state is None:
        session.execute(
            sa.insert(LeadScore.__table__), [scores.new_state_row(lead_id, clock.now())]
        )
        state = session.scalars(query).one()
    return state


def transition(
    session: Session, state: LeadScore, to: str, *, cause_kind: str, cause: str
) -> StageChange:
    if to not in ALLOWED[state.stage]:
        raise StageError(f"a lead in stage {state.stage} cannot move to {to}")
    now = clock.now()
    change = StageChange(
        lead_id=state.lead_id,
        from_stage=state.stage,
        to_stage=to,
        at=now,
        cause_kind=cause_kind,
        cause=cause[:120],
    )
    state.stage = to
    state.stage_changed_at = now
    session.add(change)
    session.flush()
    return change


def qualifies(
    state: LeadScore | scores.ScoreState, rules: Rules, score_before: float | None = None
) -> bool:
    """New (or recycled, crossing the threshold again) with enough score and fit."""
    if state.stage not in {Stage.NEW, Stage.RECYCLED} or state.suspect:
        return False
    now = clock.now()
    score = scores.score_at(state.score, state.as_of, now, rules.half_life_seconds)
    if score < rules.mql_score or not grade_at_least(state.fit_grade, rules.mql_min_grade):
        return False
    return not (state.stage == Stage.RECYCLED and (score_before or 0.0) >= rules.mql_score)


def history(session: Session, lead_id: uuid.UUID) -> list[StageChange]:
    return list(
        session.scalars(
            sa.select(StageChange)
            .where(StageChange.lead_id == lead_id)
            .order_by(StageChange.at, StageChange.id)
        )
    )
