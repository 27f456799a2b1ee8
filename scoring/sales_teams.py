"""Teams of salespeople as the owner manages them: a team's strategy, its members,
deleting it. What the console, the admin API and ``leadvault sales team …`` call;
every write is recorded in the audit trail by its ``actor`` like the other sales
team changes (``scoring.sales_team``: ids and field names, never a name).
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import audit
from leadvault.i18n import N_
from scoring import routing, sales_team
from scoring.models import Handoff, SalesTeam, TeamMember
from scoring.routing import SalesError
from scoring.sales_team import Conflict, NotFound


def team(session: Session, team_id: int) -> SalesTeam:
    found = session.get(SalesTeam, team_id)
    if found is None:
        raise NotFound(N_("There is no team %(id)s."), id=team_id)
    return found


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


def add_team(
    session: Session,
    name: str,
    strategy: str = "round_robin",
    *,
    actor: str,
    ip: str | None = None,
) -> SalesTeam:
    if routing.team_by_name(session, name) is not None:
        raise Conflict(routing.TEAM_EXISTS, field="name", name=name)
    added = routing.add_team(session, name, strategy)
    audit.record(
        session,
        actor=actor,
        action=audit.Action.SALES_TEAM_ADDED,
        object_type=audit.ObjectType.SALES_TEAM,
        object_id=added.id,
        ip=ip,
    )
    return added


def update_team(
    session: Session, team_id: int, *, strategy: str, actor: str, ip: str | None = None
) -> SalesTeam:
    found = team(session, team_id)
    if strategy not in routing.STRATEGIES:
        raise SalesError(
            routing.STRATEGY_REFUSED, field="strategy", strategies=", ".join(routing.STRATEGIES)
        )
    if found.strategy != strategy:
        found.strategy = strategy
        session.flush()
        audit.record(
            session,
            actor=actor,
            action=audit.Action.SALES_TEAM_CHANGED,
            object_type=audit.ObjectType.SALES_TEAM,
            object_id=found.id,
            detail={"fields": ["strategy"]},
            ip=ip,
        )
    return found


def delete_team(session: Session, team_id: int, *, actor: str, ip: str | None = None) -> None:
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
    audit.record(
        session,
        actor=actor,
        action=audit.Action.SALES_TEAM_DELETED,
        object_type=audit.ObjectType.SALES_TEAM,
        object_id=team_id,
        ip=ip,
    )


def add_member(
    session: Session, team_id: int, person_id: int, *, actor: str, ip: str | None = None
) -> None:
    """Put a salesperson in a team (already in it: nothing changes, nothing recorded)."""
    found_team, found_person = team(session, team_id), sales_team.person(session, person_id)
    if session.get(TeamMember, (found_team.id, found_person.id)) is None:
        session.add(TeamMember(team_id=found_team.id, person_id=found_person.id, credit=0))
        session.flush()
        audit.record(
            session,
            actor=actor,
            action=audit.Action.SALES_TEAM_MEMBER_ADDED,
            object_type=audit.ObjectType.SALES_TEAM,
            object_id=found_team.id,
            detail={"person_id": found_person.id},
            ip=ip,
        )


def remove_member(
    session: Session, team_id: int, person_id: int, *, actor: str, ip: str | None = None
) -> None:
    member = session.get(TeamMember, (team(session, team_id).id, person_id))
    if member is None:
        raise NotFound(
            N_("Salesperson %(id)s is not in this team."), field="person_id", id=person_id
        )
    session.delete(member)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=audit.Action.SALES_TEAM_MEMBER_REMOVED,
        object_type=audit.ObjectType.SALES_TEAM,
        object_id=team_id,
        detail={"person_id": person_id},
        ip=ip,
    )
