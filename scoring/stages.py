"""Lifecycle stages: new → MQL → SAL → SQL → won / lost, recycled, disqualified.

Every transition is recorded with its cause (a rule, an event, a person, the
system) and its time.
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import clock, leads
from leadvault.i18n import N_
from leadvault.refusals import RefusedRequest
from scoring import scores, signals
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
# How late an event may be scored and still count at its own moment (the
# score's decay over an hour is about 0.1 % of it).
EVENT_MOMENT = dt.timedelta(hours=1)

# What the salesperson's page calls reasons, BANT points and outcomes.
REASON_LABELS = {
    "not_reachable": N_("Not reachable"),
    "fake_data": N_("Fake data"),
    "no_need": N_("No need"),
    "no_budget": N_("No budget"),
    "duplicate": N_("Duplicate"),
    "wrong_person": N_("Wrong person"),
}
BANT_LABELS = {
    "need": N_("Project / need"),
    "budget": N_("Budget"),
    "authority": N_("Authority"),
    "timeline": N_("Timeline"),
}
# BANT as the salesperson is asked it: one question per point, each answered.
BANT_QUESTIONS = {
    "need": N_("Is there a project or a need we can meet?"),
    "budget": N_("Is there a budget for it?"),
    "authority": N_("Does your contact decide, or know who does?"),
    "timeline": N_("Is there a date by which they want to decide or start?"),
}
BANT_ANSWERS = {"yes": N_("Yes"), "no": N_("No"), "unknown": N_("Not known yet")}
STAGE_LABELS = {
    "new": N_("New"),
    "mql": N_("MQL"),
    "sal": N_("SAL"),
    "sql": N_("SQL"),
    "won": N_("Won"),
    "lost": N_("Lost"),
    "recycled": N_("Recycled"),
    "disqualified": N_("Disqualified"),
}
OUTCOME_LABELS = {
    Stage.SQL: N_("Mark as sales-qualified (SQL)"),
    Stage.WON: N_("Mark as won"),
    Stage.LOST: N_("Mark as lost"),
}


class StageError(RefusedRequest):
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


def states_of(
    session: Session, lead_ids: list[uuid.UUID], *, add: bool = True
) -> dict[uuid.UUID, LeadScore | scores.NewState]:
    """Scoring states of many leads in one read; new ones are added (inserted at the next
    flush, together), or with ``add=False`` built in memory (``scores.NewState``) for
    the caller to insert (``scores.apply_events``'s ``fresh``)."""
    states: dict[uuid.UUID, LeadScore | scores.NewState] = {}
    stored = [lead_id for lead_id in lead_ids if not leads.created_here(session, lead_id)]
    for start in range(0, len(stored), 500):
        chunk = stored[start : start + 500]
        for state in session.scalars(sa.select(LeadScore).where(LeadScore.lead_id.in_(chunk))):
            states[state.lead_id] = state
    now = clock.now()
    for lead_id in lead_ids:
        if lead_id not in states:
            row = scores.new_state_row(lead_id, now)
            if add:
                session.add(state := LeadScore(**row))
                states[lead_id] = state
            else:
                states[lead_id] = scores.NewState(**row)
    return states


def transition(
    session: Session, state: LeadScore, to: str, *, cause_kind: str, cause: str
) -> StageChange:
    if to not in ALLOWED[state.stage]:
        raise StageError(
            N_("a lead in stage %(stage)s cannot move to %(to)s"),
            field="stage",
            stage=state.stage,
            to=to,
        )
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
    signals.stage_changed.send(
        session,
        lead_id=state.lead_id,
        from_stage=change.from_stage,
        to_stage=to,
        cause_kind=cause_kind,
        at=now,
    )
    return change


# Scores are sums of decayed floats; a share of this much is rounding, not a point.
_ROUNDING = 1e-9


def reaches(score: float, threshold: float) -> bool:
    """The MQL threshold means "at least" (up to floating-point rounding)."""
    return score >= threshold - _ROUNDING * max(1.0, abs(threshold))


def qualifies(
    state: LeadScore | scores.ScoreState,
    rules: Rules,
    score_before: float | None = None,
    *,
    at_event: bool = False,
) -> bool:
    """New (or recycled, crossing the threshold again) with enough score and fit.

    With ``at_event`` the score is taken at the moment of the lead's latest
    event (its stored ``as_of``): a score that reaches the threshold exactly
    then qualifies, although it decays below it a moment later. Events sent
    in long after they happened (a backfill) and everything else (enrichment,
    recompute) take the score now, so old activity does not qualify a lead.
    """
    if state.stage not in {Stage.NEW, Stage.RECYCLED} or state.suspect:
        return False
    now = clock.now()
    at = state.as_of if at_event and now - state.as_of <= EVENT_MOMENT else now
    score = scores.score_at(state.score, state.as_of, at, rules.half_life_seconds)
    if not reaches(score, rules.mql_score):
        return False
    if not grade_at_least(state.fit_grade, rules.mql_min_grade):
        return False
    return not (state.stage == Stage.RECYCLED and reaches(score_before or 0.0, rules.mql_score))


def history(session: Session, lead_id: uuid.UUID) -> list[StageChange]:
    return list(
        session.scalars(
            sa.select(StageChange)
            .where(StageChange.lead_id == lead_id)
            .order_by(StageChange.at, StageChange.id)
        )
    )
