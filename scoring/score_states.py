"""Scoring states in memory and in bulk: a lead's score and rule shares as the event
code folds points into them (``ScoreState``), read and written for many leads with one
statement per kind; a new lead's first state built without an ORM object
(``NewState``). ``scoring.scores`` re-exports these names."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import batch, clock
from scoring.models import LeadScore, RuleScore, Stage

_SCORES = LeadScore.__table__
_RULES = RuleScore.__table__
_COLUMNS = tuple(column.key for column in _SCORES.columns)


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
        batch.write_rows(session, _SCORES, inserts)
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
        batch.write_rows(session, _RULES, rule_inserts)
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
