"""The sales team as the owner manages it: salespeople, teams, capacity and absences.

Adding a person, a team or a member is ``scoring.routing`` (the command line
uses it too); this module edits and lists them for the console and the admin
API. Salespeople are deactivated, never deleted: their handoffs stay on record.
Absences are whole UTC days; routing skips a person on every day of one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import audit, clock
from leadvault.i18n import N_
from scoring import routing
from scoring import rules as rules_module
from scoring.models import Absence, Handoff, Salesperson, SalesTeam, TeamMember
from scoring.routing import SalesError

MAX_ABSENCE_DAYS = 366
MAX_PEOPLE = 500  # a page of the roster; a sales team is far smaller
ABSENCE_ORDER = N_("The absence ends before it starts.")
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


def team(session: Session, team_id: int) -> SalesTeam:
    found = session.get(SalesTeam, team_id)
    if found is None:
        raise NotFound(N_("There is no team %(id)s."), id=team_id)
    return found


def today() -> dt.date:
    return clock.now().date()


def roster(session: Session) -> list[PersonRow]:
    """Every salesperson with their load this week, today's absence and teams
    (one query each, not one per person)."""
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
    for found in session.scalars(sa.select(Salesperson).limit(MAX_PEOPLE)):
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
    for row in roster(session):
        if row.id == person_id:
            return row
    raise NotFound(N_("There is no salesperson %(id)s."), id=person_id)


def add_person(
    session: Session,
    *,
    email: str,
    name: str,
    language: str = "en",
    weight: int = 1,
    weekly_capacity: int = 50,
    team_ids: tuple[int, ...] = (),
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
    for team_id in team_ids:
        add_member(session, team_id, added.id)
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
) -> Salesperson:
    """Change a salesperson: their name and address (checked as when adding them, sealed
    anew, recorded in the audit trail by ``actor``) and what routing reads.

    Their handoffs stay theirs: the next mail about an open one (its reminder) goes to
    the new address; mails already queued keep the address they were written to."""
    found = person(session, person_id)
    changed = _change_contact(session, found, name=name, email=email)
    if language is not None:
        if language not in {"en", "de"}:
            raise SalesError(routing.LANGUAGE_REFUSED, field="language")
        found.language = language
    if weight is not None:
        if weight < 1:
            raise SalesError(routing.WEIGHT_REFUSED, field="weight")
        found.weight = weight
    if weekly_capacity is not None:
        if weekly_capacity < 0:
            raise SalesError(routing.CAPACITY_REFUSED, field="weekly_capacity")
        found.weekly_capacity = weekly_capacity
    if active is not None:
        found.active = active
    session.flush()
    if changed:
        # Which fields, never their values: the trail is pseudonymous.
        audit.record(
            session,
            actor=actor,
            action=audit.Action.SALESPERSON_CHANGED,
            object_type=audit.ObjectType.SALESPERSON,
            object_id=found.id,
            detail={"fields": changed},
            ip=ip,
        )
    return found


def _change_contact(
    session: Session, found: Salesperson, *, name: str | None, email: str | None
) -> list[str]:
    """Check and seal a new name and/or address; the fields that changed, by name."""
    if name is None and email is None:
        return []
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
    if changed:
        routing.seal_contact(session, found, email=new_email, name=new_name)
    return changed


def rules_without_person(session: Session) -> list[str]:
    """The routing rules of the active rules file that send leads to an address no
    salesperson has (``fallback`` for the fallback), e.g. the old one after a change of
    address: routing skips them until the file names the new one."""
    active = rules_module.active(session)
    named = [(rule.name, rule.salesperson) for rule in active.routing]
    named.append(("fallback", active.fallback_salesperson))
    return [
        name for name, email in named if email and routing.person_by_email(session, email) is None
    ]


# --- teams --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MemberRef:
    id: int
    name: str


@dataclasses.dataclass(frozen=True)
class TeamRow:
    id: int
    name: str
    strategy: str
    members: tuple[MemberRef, ...]


def team_rows(session: Session) -> list[TeamRow]:
    return [
        TeamRow(
            id=found.id,
            name=found.name,
            strategy=found.strategy,
            members=tuple(MemberRef(m.id, routing.contact(session, m).name) for m in members),
        )
        for found, members in routing.teams(session)
    ]


def team_row(session: Session, team_id: int) -> TeamRow:
    for row in team_rows(session):
        if row.id == team_id:
            return row
    raise NotFound(N_("There is no team %(id)s."), id=team_id)


def add_team(session: Session, name: str, strategy: str = "round_robin") -> SalesTeam:
    if routing.team_by_name(session, name) is not None:
        raise Conflict(routing.TEAM_EXISTS, field="name", name=name)
    return routing.add_team(session, name, strategy)


def update_team(session: Session, team_id: int, *, strategy: str) -> SalesTeam:
    found = team(session, team_id)
    if strategy not in routing.STRATEGIES:
        raise SalesError(
            routing.STRATEGY_REFUSED, field="strategy", strategies=", ".join(routing.STRATEGIES)
        )
    found.strategy = strategy
    session.flush()
    return found


def delete_team(session: Session, team_id: int) -> None:
    """Delete a team nobody was ever offered a lead through (its handoffs name it)."""
    found = team(session, team_id)
    used = session.scalar(sa.select(sa.func.count(Handoff.id)).where(Handoff.team_id == team_id))
    if used:
        raise Conflict(
            N_(
                "The team “%(name)s” has handed off leads; remove it from the routing rules "
                "instead."
            ),
            name=found.name,
        )
    session.delete(found)
    session.flush()


def add_member(session: Session, team_id: int, person_id: int) -> None:
    found_team, found_person = team(session, team_id), person(session, person_id)
    if session.get(TeamMember, (found_team.id, found_person.id)) is None:
        session.add(TeamMember(team_id=found_team.id, person_id=found_person.id, credit=0))
        session.flush()


def remove_member(session: Session, team_id: int, person_id: int) -> None:
    member = session.get(TeamMember, (team(session, team_id).id, person_id))
    if member is None:
        raise NotFound(
            N_("Salesperson %(id)s is not in this team."), field="person_id", id=person_id
        )
    session.delete(member)
    session.flush()


# --- absences -----------------------------------------------------------------------


def add_absence(session: Session, person_id: int, starts_on: dt.date, ends_on: dt.date) -> Absence:
    found = person(session, person_id)
    if ends_on < starts_on:
        raise SalesError(ABSENCE_ORDER, field="ends_on")
    if (ends_on - starts_on).days >= MAX_ABSENCE_DAYS:
        raise SalesError(
            N_("An absence lasts at most %(days)s days."), field="ends_on", days=MAX_ABSENCE_DAYS
        )
    if ends_on < today():
        raise SalesError(N_("The absence is over already."), field="ends_on")
    absence = Absence(
        person_id=found.id, starts_on=starts_on, ends_on=ends_on, created_at=clock.now()
    )
    session.add(absence)
    session.flush()
    return absence


def absences(session: Session, *, person_id: int | None = None, limit: int = 200) -> list[Absence]:
    """Absences not yet over, soonest first (bounded)."""
    query = (
        sa.select(Absence)
        .where(Absence.ends_on >= today())
        .order_by(Absence.starts_on, Absence.id)
        .limit(max(1, min(limit, 500)))
    )
    if person_id is not None:
        query = query.where(Absence.person_id == person_id)
    return list(session.scalars(query))


def delete_absence(session: Session, absence_id: int) -> None:
    found = session.get(Absence, absence_id)
    if found is None:
        raise NotFound(N_("There is no absence %(id)s."), id=absence_id)
    session.delete(found)
    session.flush()
