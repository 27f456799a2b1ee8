"""The lead's scoring data in the access export (a right of access): its events with
their properties and points, its score with the breakdown, its stage history.

Connected to ``signals.collect_access_data``; each function answers one section.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import leads
from scoring import rules as rules_module
from scoring import scores
from scoring.models import Event, LeadScore, RuleScore, StageChange


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def events_section(session: Session, *, lead_id: uuid.UUID, **_: Any) -> tuple[str, list[Any]]:
    lead = leads.get(session, lead_id)
    if lead is None:
        return "events", []
    key = leads.data_key(session, lead)
    items = []
    for event in session.scalars(
        sa.select(Event).where(Event.lead_id == lead_id).order_by(Event.occurred_at)
    ):
        items.append(
            {
                "type": event.type,
                "source": event.source,
                "occurred_at": _iso(event.occurred_at),
                "properties": (
                    key.decrypt_json(f"event/{event.id}", event.properties)
                    if event.properties is not None
                    else {}
                ),
                "points": event.awards or {},
            }
        )
    return "events", items


def scores_section(session: Session, *, lead_id: uuid.UUID, **_: Any) -> tuple[str, list[Any]]:
    state = session.get(LeadScore, lead_id)
    if state is None:
        return "scores", []
    rules = rules_module.active(session)
    explanation = scores.explain(session, lead_id, rules)
    shares = session.scalars(sa.select(RuleScore).where(RuleScore.lead_id == lead_id))
    return "scores", [
        {
            "score": explanation.score,
            "at": _iso(explanation.at),
            "breakdown": explanation.breakdown,
            "fit_grade": state.fit_grade,
            "fit_points": state.fit_points,
            "suspect": state.suspect,
            "flags": list(state.flags or []),
            "stage": state.stage,
            "rule_shares": [
                {"rule": s.rule, "value": s.value, "as_of": _iso(s.as_of)} for s in shares
            ],
        }
    ]


def stages_section(session: Session, *, lead_id: uuid.UUID, **_: Any) -> tuple[str, list[Any]]:
    rows = session.scalars(
        sa.select(StageChange).where(StageChange.lead_id == lead_id).order_by(StageChange.id)
    )
    return "stage_history", [
        {
            "from": row.from_stage,
            "to": row.to_stage,
            "at": _iso(row.at),
            "cause_kind": row.cause_kind,
            "cause": row.cause,
        }
        for row in rows
    ]
