"""The sales team's people as the owner manages them: salespeople, their capacity,
language, weight and whether they are active.

Adding a person is checked in ``scoring.routing``; this module is what the console,
the admin API and ``leadvault sales …`` call: every write here is recorded in the
audit trail by its ``actor`` (staff data: which fields changed, never their values).
Salespeople are deactivated, never deleted: their handoffs stay on record. Teams and
their members are ``scoring.sales_teams``, absences ``scoring.absences``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import audit, clock, i18n
from leadvault.i18n import N_
from scoring import routing
from scoring.models import Absence, Handoff, Salesperson, SalesTeam, TeamMember
from scoring.routing import SalesError

MAX_PEOPLE = 500  # a page of the roster; a sales team is far smaller
ADDRESS_TAKEN = N_("A salesperson with this address exists already.")


class NotFound(SalesError):
    """No such salesperson, team or absence."""


class Conflict(SalesError):
    """The request clashes with what is stored (an address or team name in use)."""


@dataclasses.dataclass(frozen=True)
class PersonRow:
    id: int
    email: str
    name: str
    language: str
    weight: int
    weekly_capacity: int
    load_this_week: int
    absent_today: bool
    active: bool
    teams: tuple[str, ...]


def person(session: Session, person_id: int) -> Salesperson:
    found = session.get(Salesperson, person_id)
    if found is None:
        raise NotFound(N_("There is no salesperson %(id)s."), id=person_id)
    return found


def today() -> dt.date:
    return clock.now().date()


def roster(session: Session, only: int | None = None) -> list[PersonRow]:
    """Every salesperson (or only the one with id ``only``) with their load this week,
    today's absence and teams (one query each, not one per person)."""
    since = clock.now() - dt.timedelta(days=7)
    loads = dict(
        session.execute(
            sa.select(Handoff.person_id, sa.func.count(Handoff.id))
            .where(Handoff.offered_at >= since, Handoff.person_id.is_not(None))
            .group_by(Handoff.person_id)
        ).all()
    )
    day = today()
    away = set(
        session.scalars(
            sa.select(Absence.person_id).where(Absence.starts_on <= day, Absence.ends_on >= day)
        )
    )
    team_names: dict[int, list[str]] = defaultdict(list)
    for person_id, name in session.execute(
        sa.select(TeamMember.person_id, SalesTeam.name)
        .join(SalesTeam, SalesTeam.id == TeamMember.team_id)
        .order_by(SalesTeam.name)
    ):
        team_names[person_id].append(name)
    rows = []
    people = sa.select(Salesperson).limit(MAX_PEOPLE)
    if only is not None:
        people = people.where(Salesperson.id == only)
    for found in session.scalars(people):
        who = routing.contact(session, found)
        rows.append(
            PersonRow(
                id=found.id,
                email=who.email,
                name=who.name,
                language=found.language,
                weight=found.weight,
                weekly_capacity=found.weekly_capacity,
                load_this_week=loads.get(found.id, 0),
                absent_today=found.absent or found.id in away,
                active=found.active,
                teams=tuple(team_names.get(found.id, ())),
            )
        )
    return sorted(rows, key=lambda row: (not row.active, row.email))


def row_of(session: Session, person_id: int) -> PersonRow:
    # Only this person's contact is unsealed (the roster unseals everyone's).
    for row in roster(session, only=person_id):
        return row
    raise NotFound(N_("There is no salesperson %(id)s."), id=person_id)


def add_person(
    session: Session,
    *,
    actor: str,
    ip: str | None = None,
    email: str,
    name: str,
    language: str = i18n.DEFAULT_LANGUAGE,
    weight: int = 1,
    weekly_capacity: int = 50,
) -> Salesperson:
    if "@" in email and routing.person_by_email(session, email) is not None:
        raise Conflict(ADDRESS_TAKEN, field="email")
    added = routing.add_person(
        session,
        email=email,
        name=name,
        language=language,
        weight=weight,
        weekly_capacity=weekly_capacity,
    )
    audit.record(
        session,
        actor=actor,
        action=audit.Action.SALESPERSON_ADDED,
        object_type=audit.ObjectType.SALESPERSON,
        object_id=added.id,
        ip=ip,
    )
    return added


def update_person(
    session: Session,
    person_id: int,
    *,
    actor: str,
    ip: str | None = None,
    name: str | None = None,
    email: str | None = None,
    language: str | None = None,
    weight: int | None = None,
    weekly_capacity: int | None = None,
    active: bool | None = None,
    absent: bool | None = None,
) -> Salesperson:
    """Change a salesperson: their name and address (checked as when adding them, sealed
    anew), what routing reads (language, weight, weekly capacity, ``absent``) and whether
    they are active. Recorded in the audit trail by ``actor``: ``salesperson.changed``
    with the names of the fields that changed, ``salesperson.deactivated`` /
    ``…activated``; nothing when nothing changed. A refusal (SalesError) changes
    nothing: every field is checked before any is set.

    Their handoffs stay theirs: the next mail about an open one (its reminder) goes to
    the new address; mails already queued keep the address they were written to."""
    found = person(session, person_id)
    # Not left to the caller's rollback: one that catches the refusal and commits
    # must not keep a half change (a new name with a refused weight).
    new_contact, changed = _checked_contact(session, found, name=name, email=email)
    routing.check_routing_fields(language=language, weight=weight, weekly_capacity=weekly_capacity)
    if new_contact is not None:
        routing.seal_contact(session, found, email=new_contact.email, name=new_contact.name)
    given = {
        "language": language,
        "weight": weight,
        "weekly_capacity": weekly_capacity,
        "absent": absent,
    }
    for field, value in given.items():
        if value is not None and getattr(found, field) != value:
            setattr(found, field, value)
            changed.append(field)
    was_active = found.active
    if active is not None:
        found.active = active
    session.flush()
    if changed:
        audit.record(
            session,
            actor=actor,
            action=audit.Action.SALESPERSON_CHANGED,
            object_type=audit.ObjectType.SALESPERSON,
            object_id=found.id,
            detail={"fields": sorted(changed)},
            ip=ip,
        )
    if found.active != was_active:
        audit.record(
            session,
            actor=actor,
            action=audit.Action.SALESPERSON_ACTIVATED
            if found.active
            else audit.Action.SALESPERSON_DEACTIVATED,
            object_type=audit.ObjectType.SALESPERSON,
            object_id=found.id,
            ip=ip,
        )
    return found


def _checked_contact(
    session: Session, found: Salesperson, *, name: str | None, email: str | None
) -> tuple[routing.Contact | None, list[str]]:
    """Check a new name and/or address (nothing is changed here): the contact to seal,
    None when it stays as it is, and the fields that change, by name."""
    if name is None and email is None:
        return None, []
    before = routing.contact(session, found)
    new_name = routing.contact_name(name) if name is not None else before.name
    new_email = routing.contact_address(email) if email is not None else before.email
    if new_email != before.email:
        other = routing.person_by_email(session, new_email)
        if other is not None and other.id != found.id:
            raise Conflict(ADDRESS_TAKEN, field="email")
    changed = [
        field
        for field, old, new in (("email", before.email, new_email), ("name", before.name, new_name))
        if old != new
    ]
    if not changed:
        return None, []
    return routing.Contact(email=new_email, name=new_name), changed
