"""A salesperson's absences: whole UTC days routing skips them on (``routing.absent_on``).

Planned and deleted from the console, the admin API's ``/absences`` and recorded in
the audit trail like every other change to the sales team (``scoring.sales_team``).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import audit, clock
from leadvault.i18n import N_
from scoring import sales_team
from scoring.models import Absence
from scoring.routing import SalesError

MAX_ABSENCE_DAYS = 366
ABSENCE_ORDER = N_("The absence ends before it starts.")


def add_absence(
    session: Session,
    person_id: int,
    starts_on: dt.date,
    ends_on: dt.date,
    *,
    actor: str,
    ip: str | None = None,
) -> Absence:
    """Plan an absence; recorded as ``salesperson.absence_added`` with the absence's id
    (its days stay in its row, out of the trail, as every other value of staff data)."""
    found = sales_team.person(session, person_id)
    if ends_on < starts_on:
        raise SalesError(ABSENCE_ORDER, field="ends_on")
    if (ends_on - starts_on).days >= MAX_ABSENCE_DAYS:
        raise SalesError(
            N_("An absence lasts at most %(days)s days."), field="ends_on", days=MAX_ABSENCE_DAYS
        )
    if ends_on < sales_team.today():
        raise SalesError(N_("The absence is over already."), field="ends_on")
    absence = Absence(
        person_id=found.id, starts_on=starts_on, ends_on=ends_on, created_at=clock.now()
    )
    session.add(absence)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=audit.Action.SALESPERSON_ABSENCE_ADDED,
        object_type=audit.ObjectType.SALESPERSON,
        object_id=found.id,
        detail={"absence_id": absence.id},
        ip=ip,
    )
    return absence


def absences(session: Session, *, person_id: int | None = None, limit: int = 200) -> list[Absence]:
    """Absences not yet over, soonest first (bounded)."""
    query = (
        sa.select(Absence)
        .where(Absence.ends_on >= sales_team.today())
        .order_by(Absence.starts_on, Absence.id)
        .limit(max(1, min(limit, 500)))
    )
    if person_id is not None:
        query = query.where(Absence.person_id == person_id)
    return list(session.scalars(query))


def delete_absence(session: Session, absence_id: int, *, actor: str, ip: str | None = None) -> None:
    found = session.get(Absence, absence_id)
    if found is None:
        raise sales_team.NotFound(N_("There is no absence %(id)s."), id=absence_id)
    person_id = found.person_id
    session.delete(found)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=audit.Action.SALESPERSON_ABSENCE_DELETED,
        object_type=audit.ObjectType.SALESPERSON,
        object_id=person_id,
        detail={"absence_id": absence_id},
        ip=ip,
    )
