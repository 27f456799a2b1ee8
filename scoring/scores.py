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
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import clock
from leadvault.crypto import DataKey
from scoring.models import Event, LeadScore, RuleScore, Stage
from scoring.rule_model import EngagementRule, Rules, matches_all

_SCORES = LeadScore.__table__
_RULES = RuleScore.__table__
_EVENTS = Event.__table__
_COLUMNS = tuple(column.key for column in _SCORES.columns)


def decay(value: float, seconds: float, half_life_seconds: float) -> float:
    if seconds <= 0 or value == 0:
        return value
    return value * 0.5 ** (seconds / half_life_seconds)


def score_at(value: float, as_of: dt.datetime, at: dt.datetime, half_life_seconds: float) -> float:
    return decay(value, (at - as_of).total_seconds(), half_life_seconds)


@dataclasses.dataclass
class RuleState:
    value: float
    as_of: dt.datetime
    cap_day: dt.date | None
    cap_used: float
    new: bool = False
    dirty: bool = False


@dataclasses.dataclass
class ScoreState:
    lead_id: uuid.UUID
    score: float
    as_of: dt.datetime
    stage: str
    fit_grade: str
    suspect: bool
    rules: dict[str, RuleState]
    score_before: float = 0.0
    new: bool = False
    dirty: bool = False
    # A new state's other columns (fit, flags, first form …), inserted with it.
    row: dict[str, Any] | None = None


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


# --- loading and saving states in bulk -------------------------------------------


def _chunks(items: list[Any], size: int = 500) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_states(session: Session, lead_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, ScoreState]:
    ids = list(set(lead_ids))
    states: dict[uuid.UUID, ScoreState] = {}
    for chunk in _chunks(ids):
        for row in session.execute(
            sa.select(
                _SCORES.c.lead_id,
                _SCORES.c.score,
                _SCORES.c.as_of,
                _SCORES.c.stage,
                _SCORES.c.fit_grade,
                _SCORES.c.suspect,
            ).where(_SCORES.c.lead_id.in_(chunk))
        ):
            states[row.lead_id] = ScoreState(
                row.lead_id, row.score, row.as_of, row.stage, row.fit_grade, row.suspect, {}
            )
        for row in session.execute(sa.select(_RULES).where(_RULES.c.lead_id.in_(chunk))):
            state = states.get(row.lead_id)
            if state is not None:
                state.rules[row.rule] = RuleState(row.value, row.as_of, row.cap_day, row.cap_used)
    return states


def new_state(lead_id: uuid.UUID, at: dt.datetime) -> ScoreState:
    return ScoreState(lead_id, 0.0, at, Stage.NEW, "D", False, {}, new=True, dirty=True)


@dataclasses.dataclass(slots=True)
class NewState:
    """A lead's first scoring state built in memory (``stages.states_of(add=False)``):
    the columns of its row, which ``save_states`` inserts (no ORM object)."""

    lead_id: uuid.UUID
    score: float
    as_of: dt.datetime
    fit_points: float
    fit_grade: str
    suspect: bool
    flags: list[str]
    stage: str
    stage_changed_at: dt.datetime
    first_form: str | None
    utm_source: str | None
    utm_campaign: str | None
    enrichment_pending: bool
    enrichment_cost: float
    rules_version: int
    updated_at: dt.datetime


def fresh_state(state: NewState) -> ScoreState:
    """A scoring state not stored yet as a ScoreState that ``save_states`` inserts with
    every column it holds."""
    row = {name: getattr(state, name) for name in _COLUMNS}
    return ScoreState(
        state.lead_id,
        state.score,
        state.as_of,
        state.stage,
        state.fit_grade,
        state.suspect,
        {},
        new=True,
        row=row,
    )


def new_state_row(lead_id: uuid.UUID, now: dt.datetime, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "lead_id": lead_id,
        "score": 0.0,
        "as_of": now,
        "fit_points": 0.0,
        "fit_grade": "D",
        "suspect": False,
        "flags": [],
        "stage": Stage.NEW.value,
        "stage_changed_at": now,
        "first_form": None,
        "utm_source": None,
        "utm_campaign": None,
        "enrichment_pending": False,
        "enrichment_cost": 0.0,
        "rules_version": 0,
        "updated_at": now,
    }
    row.update(values)
    return row


def save_states(session: Session, states: Mapping[uuid.UUID, ScoreState], version: int) -> None:
    """Write changed states with one statement per kind (executemany)."""
    now = clock.now()
    inserts, updates, rule_inserts, rule_updates = [], [], [], []
    for state in states.values():
        if not state.dirty and state.row is None:
            continue
        if state.new:
            # A fresh state (``row``) takes the rules' version only where they gave points,
            # as one stored first and updated by its events would.
            changed = {"rules_version": version, "updated_at": now} if state.dirty else {}
            inserts.append(
                {
                    **new_state_row(state.lead_id, now),
                    **(state.row or {}),
                    "score": state.score,
                    "as_of": state.as_of,
                    **changed,
                }
            )
        else:
            updates.append(
                {"k": state.lead_id, "s": state.score, "a": state.as_of, "v": version, "u": now}
            )
        for name, share in state.rules.items():
            if not share.dirty:
                continue
            values = {
                "value": share.value,
                "as_of": share.as_of,
                "cap_day": share.cap_day,
                "cap_used": share.cap_used,
            }
            if share.new:
                rule_inserts.append({"lead_id": state.lead_id, "rule": name, **values})
            else:
                rule_updates.append(
                    {"k": state.lead_id, "r": name, **{f"n_{k}": v for k, v in values.items()}}
                )
            share.new = share.dirty = False
        state.new = state.dirty = False
        state.row = None
    if inserts:
        session.execute(sa.insert(_SCORES), inserts)
    if updates:
        session.execute(
            sa.update(_SCORES)
            .where(_SCORES.c.lead_id == sa.bindparam("k"))
            .values(
                score=sa.bindparam("s"),
                as_of=sa.bindparam("a"),
                rules_version=sa.bindparam("v"),
                updated_at=sa.bindparam("u"),
            ),
            updates,
        )
    if rule_inserts:
        session.execute(sa.insert(_RULES), rule_inserts)
    if rule_updates:
        session.execute(
            sa.update(_RULES)
            .where(_RULES.c.lead_id == sa.bindparam("k"), _RULES.c.rule == sa.bindparam("r"))
            .values(
                value=sa.bindparam("n_value"),
                as_of=sa.bindparam("n_as_of"),
                cap_day=sa.bindparam("n_cap_day"),
                cap_used=sa.bindparam("n_cap_used"),
            ),
            rule_updates,
        )
    expire_cached(session, set(states))


def expire_cached(session: Session, lead_ids: set[uuid.UUID]) -> None:
    """ORM objects of these leads loaded earlier in the session must not show stale values."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, LeadScore | RuleScore) and obj.lead_id in lead_ids:
            session.expire(obj)


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
    if rows:
        session.execute(sa.insert(_EVENTS), rows)
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
