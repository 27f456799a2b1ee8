"""Bulk recompute after a rules change: replay every lead's events under the active rules."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import clock
from leadvault.crypto import DataKey, WrappedKey
from leadvault.db import vault_of
from leadvault.models import Lead, LeadAttribute
from scoring import enrichment, handoff, scores, stages
from scoring import rules as rules_module
from scoring.models import Event, LeadScore, RuleScore, Stage
from scoring.rule_model import Rules, matches_all

_SCORES = LeadScore.__table__
_RULES = RuleScore.__table__


def lead_ids(session: Session) -> list[uuid.UUID]:
    return list(session.scalars(sa.select(Lead.id).order_by(Lead.id)))


def _no_lookup(_lead: uuid.UUID, _rule: str, _day: Any) -> float:
    return 0.0  # events replay in time order, so a past day is never revisited


@dataclasses.dataclass(frozen=True)
class Replayed:
    """A lead's scoring state recomputed under some rules, beside what is stored."""

    lead_id: uuid.UUID
    state: scores.ScoreState
    fit_points: float
    fit_grade: str
    stored: Any  # the stored row (flags, suspect, stage, score, as_of, fit_grade) or None


def replay(session: Session, ids: list[uuid.UUID], rules: Rules) -> list[Replayed]:
    """Each lead's score, shares and fit under ``rules``, from its events and
    profile; reads only (the activation writes it, the dry run compares it)."""
    vault = vault_of(session)
    hl = rules.half_life_seconds
    now = clock.now()
    keys: dict[uuid.UUID, DataKey] = {}
    for row in session.execute(
        sa.select(Lead.id, Lead.wrapped_key, Lead.key_version).where(Lead.id.in_(ids))
    ):
        keys[row.id] = vault.unwrap(WrappedKey(row.wrapped_key, row.key_version), row.id)
    attributes: dict[uuid.UUID, dict[str, str]] = defaultdict(dict)
    for row in session.execute(
        sa.select(LeadAttribute.lead_id, LeadAttribute.name, LeadAttribute.value).where(
            LeadAttribute.lead_id.in_(ids)
        )
    ):
        attributes[row.lead_id][row.name] = keys[row.lead_id].decrypt(f"attr/{row.name}", row.value)
    existing = {
        row.lead_id: row
        for row in session.execute(
            sa.select(
                _SCORES.c.lead_id,
                _SCORES.c.flags,
                _SCORES.c.suspect,
                _SCORES.c.stage,
                _SCORES.c.score,
                _SCORES.c.as_of,
                _SCORES.c.fit_grade,
            ).where(_SCORES.c.lead_id.in_(ids))
        )
    }
    states = {lead_id: scores.new_state(lead_id, now) for lead_id in keys}
    started: set[uuid.UUID] = set()
    needs_props = {
        event: any(r.conditions for r in group) for event, group in rules.by_event.items()
    }
    for event in session.execute(
        sa.select(Event.id, Event.lead_id, Event.type, Event.occurred_at, Event.properties)
        .where(Event.lead_id.in_(ids))
        .order_by(Event.lead_id, Event.occurred_at)
    ):
        group = rules.by_event.get(event.type)
        if not group:
            continue
        state = states[event.lead_id]
        if event.lead_id not in started:
            state.as_of = event.occurred_at
            started.add(event.lead_id)
        props: dict[str, Any] = {}
        if needs_props[event.type] and event.properties is not None:
            props = keys[event.lead_id].decrypt_json(f"event/{event.id}", event.properties)
        for rule in group:
            if matches_all(rule.conditions, props):
                scores.award(state, rule, event.occurred_at, hl, _no_lookup)
    replayed = []
    for lead_id, state in states.items():
        old = existing.get(lead_id)
        flags = list(old.flags or []) if old is not None else []
        suspect = bool(old.suspect) if old is not None else False
        fit_points, grade, _m = enrichment.fit_of(
            rules, attributes.get(lead_id, {}), flags, suspect
        )
        replayed.append(Replayed(lead_id, state, fit_points, grade, old))
    return replayed


def recompute_chunk(session: Session, ids: list[uuid.UUID], rules: Rules | None = None) -> int:
    """Recompute score, breakdown and fit of these leads; promote those now qualified."""
    rules = rules or rules_module.active(session)
    session.flush()
    now = clock.now()
    outcomes = replay(session, ids, rules)
    inserts, updates, shares = [], [], []
    for outcome in outcomes:
        lead_id, state, old = outcome.lead_id, outcome.state, outcome.stored
        values = {
            "score": state.score,
            "as_of": state.as_of,
            "fit_points": outcome.fit_points,
            "fit_grade": outcome.fit_grade,
            "rules_version": rules.version,
            "updated_at": now,
        }
        if old is None:
            inserts.append(scores.new_state_row(lead_id, now, **values))
        else:
            updates.append({"k": lead_id, **{f"n_{k}": v for k, v in values.items()}})
        shares.extend(
            {
                "lead_id": lead_id,
                "rule": name,
                "value": s.value,
                "as_of": s.as_of,
                "cap_day": s.cap_day,
                "cap_used": s.cap_used,
            }
            for name, s in state.rules.items()
        )
    session.execute(sa.delete(_RULES).where(_RULES.c.lead_id.in_(ids)))
    if inserts:
        session.execute(sa.insert(_SCORES), inserts)
    if updates:
        session.execute(
            sa.update(_SCORES)
            .where(_SCORES.c.lead_id == sa.bindparam("k"))
            .values(
                {
                    k: sa.bindparam(f"n_{k}")
                    for k in (
                        "score",
                        "as_of",
                        "fit_points",
                        "fit_grade",
                        "rules_version",
                        "updated_at",
                    )
                }
            ),
            updates,
        )
    if shares:
        session.execute(sa.insert(_RULES), shares)
    scores.expire_cached(session, set(ids))
    for outcome in outcomes:
        if would_qualify(outcome, rules, now):
            handoff.promote_if_qualified(
                session,
                outcome.lead_id,
                rules,
                cause_kind="rule",
                cause=f"rules v{rules.version}",
                score_before=_score_before(outcome, rules, now),
            )
    return len(ids)


def _score_before(outcome: Replayed, rules: Rules, now: dt.datetime) -> float:
    old = outcome.stored
    if old is None:
        return 0.0
    return scores.score_at(old.score, old.as_of, now, rules.half_life_seconds)


def would_qualify(outcome: Replayed, rules: Rules, now: dt.datetime) -> bool:
    """Whether the replayed lead becomes an MQL under ``rules`` (the recompute
    promotes it; the dry run counts it): its stored stage and suspicion, its
    replayed score and grade."""
    old = outcome.stored
    stage = old.stage if old is not None else Stage.NEW
    if stage not in {Stage.NEW, Stage.RECYCLED}:
        return False
    candidate = dataclasses.replace(
        outcome.state,
        stage=stage,
        fit_grade=outcome.fit_grade,
        suspect=bool(old.suspect) if old is not None else False,
    )
    return stages.qualifies(candidate, rules, _score_before(outcome, rules, now))
