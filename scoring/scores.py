"""Incremental, explainable engagement scores with exponential decay.

A lead's score is stored with the time it is valid for (``as_of``). An event
at time t adds its points after decaying the stored value to t:
``new = old * 0.5 ** ((t - as_of) / half_life) + points`` — O(1) per event.
Each rule keeps its own share the same way, so the shares decayed to a common
time sum to the score (up to floating point rounding).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import batch, clock
from leadvault.crypto import DataKey
from scoring.models import Event, LeadScore, RuleScore
from scoring.rule_model import EngagementRule, Rules, matches_all

# States in memory and in bulk moved to scoring.score_states; callers keep importing
# them from here.
from scoring.score_states import (  # noqa: F401 (re-exported)
    NewState,
    RuleState,
    ScoreState,
    expire_cached,
    fresh_state,
    load_states,
    new_state,
    new_state_row,
    save_states,
)

_EVENTS = Event.__table__


def decay(value: float, seconds: float, half_life_seconds: float) -> float:
    if seconds <= 0 or value == 0:
        return value
    return value * 0.5 ** (seconds / half_life_seconds)


def score_at(value: float, as_of: dt.datetime, at: dt.datetime, half_life_seconds: float) -> float:
    return decay(value, (at - as_of).total_seconds(), half_life_seconds)


def _add(
    value: float, as_of: dt.datetime, points: float, at: dt.datetime, hl: float
) -> tuple[float, dt.datetime]:
    """Add points earned at ``at`` to a value valid at ``as_of``."""
    if at >= as_of:
        return decay(value, (at - as_of).total_seconds(), hl) + points, at
    return value + decay(points, (as_of - at).total_seconds(), hl), as_of


UsedLookup = Callable[[uuid.UUID, str, dt.date], float]


def award(
    state: ScoreState, rule: EngagementRule, at: dt.datetime, hl: float, used_on: UsedLookup
) -> float:
    """Apply one rule's points (capped per UTC day) to the state; returns the points given."""
    share = state.rules.get(rule.name)
    if share is None:
        share = state.rules[rule.name] = RuleState(0.0, at, None, 0.0, new=True)
    day = at.date()
    points = rule.points
    if rule.cap_per_day is not None:
        if share.cap_day is None or day > share.cap_day:
            used = 0.0
        elif day == share.cap_day:
            used = share.cap_used
        else:  # an older day, sent late: ask what that day holds already
            used = used_on(state.lead_id, rule.name, day)
        room = rule.cap_per_day - abs(used)
        if room <= 0:
            return 0.0
        points = math.copysign(min(abs(points), room), points)
    share.value, share.as_of = _add(share.value, share.as_of, points, at, hl)
    state.score, state.as_of = _add(state.score, state.as_of, points, at, hl)
    if share.cap_day is None or day > share.cap_day:
        share.cap_day, share.cap_used = day, points
    elif day == share.cap_day:
        share.cap_used += points
    share.dirty = state.dirty = True
    return points


# --- applying events --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Incoming:
    lead_id: uuid.UUID
    type: str
    properties: Mapping[str, Any]
    occurred_at: dt.datetime
    source: str


def _used_lookup(
    session: Session, pending: dict[tuple[uuid.UUID, str, dt.date], float]
) -> UsedLookup:
    def used_on(lead_id: uuid.UUID, rule: str, day: dt.date) -> float:
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        rows = session.scalars(
            sa.select(_EVENTS.c.awards).where(
                _EVENTS.c.lead_id == lead_id,
                _EVENTS.c.occurred_at >= start,
                _EVENTS.c.occurred_at < start + dt.timedelta(days=1),
            )
        )
        return sum(float((awards or {}).get(rule, 0.0)) for awards in rows) + pending.get(
            (lead_id, rule, day), 0.0
        )

    return used_on


def apply_events(
    session: Session,
    rules: Rules,
    events: list[Incoming],
    keys: Mapping[uuid.UUID, DataKey],
    *,
    fresh: Mapping[uuid.UUID, NewState] | None = None,
) -> dict[uuid.UUID, ScoreState]:
    """Store events (properties sealed) and fold their points into the scores.

    ``fresh``: states not stored yet (a worker's batch's new leads, in memory): not
    read, inserted with the events' points."""
    now = clock.now()
    fresh = fresh or {}
    stored = {e.lead_id for e in events if e.lead_id not in fresh}
    states: dict[uuid.UUID, ScoreState] = {}
    if stored:
        session.flush()
        states = load_states(session, stored)
    for lead_id, new in fresh.items():
        states[lead_id] = fresh_state(new)
    for state in states.values():
        state.score_before = score_at(state.score, state.as_of, now, rules.half_life_seconds)
    pending: dict[tuple[uuid.UUID, str, dt.date], float] = {}
    used_on = _used_lookup(session, pending)
    hl = rules.half_life_seconds
    rows = []
    for event in sorted(events, key=lambda e: e.occurred_at):
        at = min(event.occurred_at, now)
        state = states.get(event.lead_id)
        if state is None:
            state = states[event.lead_id] = new_state(event.lead_id, at)
        awards: dict[str, float] = {}
        for rule in rules.by_event.get(event.type, ()):
            if matches_all(rule.conditions, event.properties):
                share = state.rules.get(rule.name)
                older = (
                    share is not None and share.cap_day is not None and at.date() < share.cap_day
                )
                points = award(state, rule, at, hl, used_on)
                if points:
                    awards[rule.name] = points
                    if older:
                        key = (event.lead_id, rule.name, at.date())
                        pending[key] = pending.get(key, 0.0) + points
        event_id = uuid.uuid4()
        sealed = (
            keys[event.lead_id].encrypt_json(f"event/{event_id}", dict(event.properties))
            if event.properties
            else None
        )
        rows.append(
            {
                "id": event_id,
                "lead_id": event.lead_id,
                "type": event.type,
                "source": event.source,
                "occurred_at": at,
                "received_at": now,
                "properties": sealed,
                "awards": awards,
                "rules_version": rules.version,
            }
        )
    batch.write_rows(session, _EVENTS, rows)
    save_states(session, states, rules.version)
    return states


# --- reading --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Explanation:
    score: float
    at: dt.datetime
    breakdown: dict[str, float]  # rule -> share of the score at ``at``


def explain(
    session: Session, lead_id: uuid.UUID, rules: Rules, at: dt.datetime | None = None
) -> Explanation:
    at = at or clock.now()
    hl = rules.half_life_seconds
    state = session.get(LeadScore, lead_id)
    if state is None:
        return Explanation(0.0, at, {})
    shares = session.scalars(sa.select(RuleScore).where(RuleScore.lead_id == lead_id))
    breakdown = {
        share.rule: score_at(share.value, share.as_of, at, hl) for share in shares if share.value
    }
    return Explanation(score_at(state.score, state.as_of, at, hl), at, breakdown)
