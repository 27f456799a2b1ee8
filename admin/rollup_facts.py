"""What a lead adds to the dashboard's daily aggregates (:class:`LeadFacts`), read for a
set of leads (``admin.rollup`` settles them): from the source tables (:func:`facts`) and
from what it stored when last settled (:func:`stored`).

The statements are built once per dialect (:class:`Statements`), and a set of leads is
one parameter (``leadvault.id_sets``: a JSON array through ``json_each``; PostgreSQL an
array), so no id is coerced, rendered and bound one by one while SQLite's write lock
is held (issue 13.3).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
import uuid
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from admin import reports
from admin.models import ReportLead, ReportStep
from leadvault import id_sets
from leadvault.db import dialect_of
from leadvault.models import Lead
from scoring.models import Handoff, HandoffStatus, LeadScore, Stage, StageChange

_LEAD_ROWS = Lead.__table__
_SCORES = LeadScore.__table__
_CHANGES = StageChange.__table__
_HANDOFFS = Handoff.__table__

_LEADS = ReportLead.__table__
_STEPS = ReportStep.__table__
STEPS = tuple(str(s) for s in reports.FUNNEL[1:])  # mql, sal, sql, won
NONE = reports.NONE_LABEL


@dataclasses.dataclass(frozen=True)
class LeadFacts:
    """What one lead adds to the aggregates."""

    day: dt.date
    form: str
    source: str
    suspect: bool
    reached: frozenset[str]
    rejected: frozenset[str]
    steps: tuple[tuple[str, float], ...]  # (stage, seconds from the stage before)

    def day_key(self) -> tuple[dt.date, str, str]:
        return (self.day, self.form, self.source)

    def day_values(self) -> tuple[int, int, int, int]:
        return (1, int(self.suspect), int("mql" in self.reached), int("sal" in self.reached))


def parameters(ids: list[uuid.UUID], dialect: str) -> dict[str, Any]:
    """The parameters of a statement of :class:`Statements` for these leads."""
    return {id_sets.NAME: id_sets.value(ids, dialect)}


@dataclasses.dataclass(frozen=True)
class Statements:
    """The statements that settle a set of leads (one parameter ``ids``: ``id_sets``),
    built once per dialect: Core on the tables (the rollup loads no objects)."""

    entered: sa.Select[Any]  # the funnel stages the leads entered, and when
    rejected: sa.Select[Any]  # sales' reasons for rejecting them
    leads: sa.Select[Any]  # creation time, first form, UTM source, suspect flag
    stored_steps: sa.Select[Any]  # what they added when last settled
    stored_leads: sa.Select[Any]
    delete_steps: sa.Delete
    delete_leads: sa.Delete

    @classmethod
    @functools.cache
    def of(cls, dialect: str) -> Statements:
        return cls(
            entered=sa.select(_CHANGES.c.lead_id, _CHANGES.c.to_stage, _CHANGES.c.at).where(
                id_sets.one_of(_CHANGES.c.lead_id, dialect), _CHANGES.c.to_stage.in_(STEPS)
            ),
            rejected=sa.select(_HANDOFFS.c.lead_id, _HANDOFFS.c.reject_reason).where(
                id_sets.one_of(_HANDOFFS.c.lead_id, dialect),
                _HANDOFFS.c.status == HandoffStatus.REJECTED.value,
                _HANDOFFS.c.reject_reason.is_not(None),
            ),
            leads=sa.select(
                _LEAD_ROWS.c.id,
                _LEAD_ROWS.c.created_at,
                _SCORES.c.first_form,
                _SCORES.c.utm_source,
                _SCORES.c.suspect,
            )
            .select_from(_LEAD_ROWS.outerjoin(_SCORES, _SCORES.c.lead_id == _LEAD_ROWS.c.id))
            .where(id_sets.one_of(_LEAD_ROWS.c.id, dialect)),
            stored_steps=sa.select(_STEPS.c.lead_id, _STEPS.c.stage, _STEPS.c.seconds).where(
                id_sets.one_of(_STEPS.c.lead_id, dialect)
            ),
            stored_leads=sa.select(
                _LEADS.c.lead_id,
                _LEADS.c.day,
                _LEADS.c.form,
                _LEADS.c.source,
                _LEADS.c.suspect,
                _LEADS.c.reached,
                _LEADS.c.rejected,
            ).where(id_sets.one_of(_LEADS.c.lead_id, dialect)),
            delete_steps=sa.delete(_STEPS).where(id_sets.one_of(_STEPS.c.lead_id, dialect)),
            delete_leads=sa.delete(_LEADS).where(id_sets.one_of(_LEADS.c.lead_id, dialect)),
        )


def facts(session: Session, ids: list[uuid.UUID], zone: ZoneInfo) -> dict[uuid.UUID, LeadFacts]:
    """What the leads add now, from the source tables (erased leads are missing)."""
    dialect = dialect_of(session)
    statements, params = Statements.of(dialect), parameters(ids, dialect)
    connection = session.connection()
    entered: dict[uuid.UUID, dict[str, dt.datetime]] = defaultdict(dict)
    for lead_id, stage, at in connection.execute(statements.entered, params):
        first = entered[lead_id].get(stage)
        entered[lead_id][stage] = at if first is None else min(first, at)
    rejected: dict[uuid.UUID, set[str]] = defaultdict(set)
    for lead_id, reason in connection.execute(statements.rejected, params):
        rejected[lead_id].add(reason)
    facts = {}
    for lead_id, created, form, source, suspect in connection.execute(statements.leads, params):
        stages = entered.get(lead_id)
        facts[lead_id] = LeadFacts(
            day=created.astimezone(zone).date(),
            form=form or NONE,
            source=source or NONE,
            suspect=bool(suspect),
            reached=frozenset(stages) if stages else _NOTHING,
            rejected=frozenset(rejected[lead_id]) if lead_id in rejected else _NOTHING,
            steps=_steps(created, stages) if stages else (),  # none before a stage entered
        )
    return facts


_NOTHING: frozenset[str] = frozenset()


def _steps(created: dt.datetime, entered: dict[str, dt.datetime]) -> tuple[tuple[str, float], ...]:
    """Each funnel step the lead took: (stage, seconds from the stage before)."""
    times = {str(Stage.NEW): created, **entered}
    return tuple(
        (after, (times[after] - times[before]).total_seconds())
        for before, after in itertools.pairwise((str(Stage.NEW), *STEPS))
        if before in times and after in times
    )


def stored(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, LeadFacts]:
    """What the leads added when last settled."""
    dialect = dialect_of(session)
    statements, params = Statements.of(dialect), parameters(ids, dialect)
    connection = session.connection()
    steps: dict[uuid.UUID, list[tuple[str, float]]] = defaultdict(list)
    for lead_id, stage, seconds in connection.execute(statements.stored_steps, params):
        steps[lead_id].append((stage, seconds))
    order = {stage: i for i, stage in enumerate(STEPS)}
    return {
        row.lead_id: LeadFacts(
            day=row.day,
            form=row.form,
            source=row.source,
            suspect=row.suspect,
            reached=_set(row.reached),
            rejected=_set(row.rejected),
            steps=tuple(sorted(steps.get(row.lead_id, ()), key=lambda s: order[s[0]])),
        )
        for row in connection.execute(statements.stored_leads, params)
    }


def _set(text: str) -> frozenset[str]:
    return frozenset(text.split(",")) if text else _NOTHING
