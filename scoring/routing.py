"""Salespeople, teams and the routing decision.

Routing rules (from the rules file) are tried in order; the first whose
conditions match and whose target has someone available wins. Teams pick by
weighted round robin or least-loaded; absent people, people at their weekly
capacity and people already tried for this lead are skipped. Without a match
the fallback target is tried, then the lead waits in the queue.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import addresses, clock, i18n, untrusted
from leadvault.db import vault_of
from leadvault.i18n import N_
from leadvault.refusals import RefusedRequest
from leadvault.sealed import SealedPayload, seal, unseal
from scoring.models import Absence, Handoff, Salesperson, SalesTeam, TeamMember
from scoring.rule_model import REGIONS, Rules, matches_all
from scoring.sales_limits import CAPACITY_MAX, WEIGHT_MAX

STRATEGIES = ("round_robin", "least_loaded")


class SalesError(RefusedRequest):
    """A sales set-up request the service refuses; ``field`` is the input it is about
    (``name``, ``email``, ``weight`` …) or None."""


# Spelled from i18n.LANGUAGES when refused ("en or de"; "en, de or fr" once one is
# added), the "or" in the catalogues. LANGUAGES holds at least English and German.
LANGUAGE_REFUSED = N_("The language must be %(listed)s or %(last)s.")
WEIGHT_REFUSED = N_("The weight must be at least 1.")
CAPACITY_REFUSED = N_("The weekly capacity must be at least 0.")
WEIGHT_TOO_HIGH = N_("The weight must be at most %(max)s.")
CAPACITY_TOO_HIGH = N_("The weekly capacity must be at most %(max)s.")
STRATEGY_REFUSED = N_("The strategy must be one of %(strategies)s.")


# --- managing people and teams -----------------------------------------------------

NAME_MAX = 120


def contact_name(name: str) -> str:
    """A salesperson's name as the mails to them greet them: one line of at most
    NAME_MAX characters (trimmed); SalesError names what is wrong (CLI, console, API)."""
    # Before trimming: the API document's pattern judges the name as sent.
    char = untrusted.one_line_refused(name)
    if char is not None:
        raise SalesError(
            N_(
                "The name holds the control character U+%(code)s (a line break, tab or the "
                "like); please give it on one line."
            ),
            field="name",
            code=f"{ord(char):04X}",
        )
    name = name.strip()
    if not name:
        raise SalesError(N_("Please give a name."), field="name")
    if len(name) > NAME_MAX:
        raise SalesError(
            N_("The name is longer than %(max)s characters."), field="name", max=NAME_MAX
        )
    return name


def add_person(
    session: Session,
    *,
    email: str,
    name: str,
    language: str = i18n.DEFAULT_LANGUAGE,
    weight: int = 1,
    weekly_capacity: int = 50,
) -> Salesperson:
    name = contact_name(name)
    email = contact_address(email)
    check_routing_fields(language=language, weight=weight, weekly_capacity=weekly_capacity)
    if person_by_email(session, email) is not None:
        raise SalesError(N_("A salesperson with this address exists already."), field="email")
    person = Salesperson(
        language=language,
        weight=weight,
        weekly_capacity=weekly_capacity,
        absent=False,
        active=True,
        created_at=clock.now(),
    )
    seal_contact(session, person, email=email, name=name)
    session.add(person)
    session.flush()
    return person


def check_routing_fields(
    *, language: str | None = None, weight: int | None = None, weekly_capacity: int | None = None
) -> None:
    """Refuse a language, weight or weekly capacity routing cannot use (SalesError naming
    the field; None is "not given"): adding and changing a salesperson check here."""
    if language is not None and language not in i18n.LANGUAGES:
        *listed, last = i18n.LANGUAGES
        raise SalesError(LANGUAGE_REFUSED, field="language", listed=", ".join(listed), last=last)
    if weight is not None and weight < 1:
        raise SalesError(WEIGHT_REFUSED, field="weight")
    if weight is not None and weight > WEIGHT_MAX:
        raise SalesError(WEIGHT_TOO_HIGH, field="weight", max=WEIGHT_MAX)
    if weekly_capacity is not None and weekly_capacity < 0:
        raise SalesError(CAPACITY_REFUSED, field="weekly_capacity")
    if weekly_capacity is not None and weekly_capacity > CAPACITY_MAX:
        raise SalesError(CAPACITY_TOO_HIGH, field="weekly_capacity", max=CAPACITY_MAX)


def contact_address(email: str) -> str:
    """A salesperson's address as stored (trimmed, lower-cased); SalesError when it is
    none."""
    try:
        addresses.canonical(email)
    except addresses.InvalidAddress:
        raise SalesError(N_("This is not an email address."), field="email") from None
    return email.strip().lower()


def seal_contact(session: Session, person: Salesperson, *, email: str, name: str) -> None:
    """Store the (checked) name and address sealed under a new data key, the old payload
    and its key replaced, and the blind index of the address; mails read it from now on."""
    vault = vault_of(session)
    sealed = seal(vault, _CONTACT, {"email": email, "name": name})
    person.email_index = vault.blind_index(email)
    person.payload, person.payload_owner = sealed.payload, sealed.owner
    person.payload_key, person.payload_key_version = sealed.key, sealed.key_version
    _remember(session, person, Contact(email=email, name=name))


def person_by_email(session: Session, email: str) -> Salesperson | None:
    index = vault_of(session).blind_index(email)
    return session.scalars(
        sa.select(Salesperson).where(Salesperson.email_index == index)
    ).one_or_none()


@dataclasses.dataclass(frozen=True)
class Contact:
    email: str
    name: str


_CONTACT = "salesperson"
# session.info: person id -> (the sealed payload it was read from, its contact). An
# entry serves only while the person holds that payload, so neither a rollback (the
# person's row read again) nor a change made elsewhere (a new payload) leaves a stale
# name or address behind; routing a batch of leads still unseals each person once.
_CONTACT_CACHE = "scoring.contacts"


def _seal_of(person: Salesperson) -> tuple[str, bytes]:
    # A seal's owner is new every time (sealed.seal) and names its data key, which a
    # key rotation rewraps without changing: owner and ciphertext say what it holds.
    return person.payload_owner, person.payload


def _remember(session: Session, person: Salesperson, found: Contact) -> None:
    if person.id is not None:
        cache = session.info.setdefault(_CONTACT_CACHE, {})
        cache[person.id] = (_seal_of(person), found)


def contact(session: Session, person: Salesperson) -> Contact:
    """The salesperson's name and address, unsealed once per session while their sealed
    payload stays the same."""
    cache: dict[int, tuple[tuple[str, bytes], Contact]] = session.info.get(_CONTACT_CACHE, {})
    entry = cache.get(person.id)
    if entry is not None and entry[0] == _seal_of(person):
        return entry[1]
    data = unseal(
        vault_of(session),
        _CONTACT,
        SealedPayload(
            person.payload_owner, person.payload, person.payload_key, person.payload_key_version
        ),
    )
    found = Contact(email=data["email"], name=data["name"])
    _remember(session, person, found)
    return found


def _by_address(session: Session, rows: Iterable[Salesperson]) -> list[Salesperson]:
    return sorted(rows, key=lambda person: contact(session, person).email)


_NO_PERSON = N_("There is no salesperson with this address.")
TEAM_EXISTS = N_("A team “%(name)s” exists already.")


def named_person(session: Session, email: str) -> Salesperson:
    """The salesperson with this address (the command line names them so); SalesError
    when there is none."""
    person = person_by_email(session, email)
    if person is None:
        raise SalesError(_NO_PERSON, field="email")
    return person


def named_team(session: Session, name: str) -> SalesTeam:
    team = team_by_name(session, name)
    if team is None:
        raise SalesError(N_("There is no team “%(name)s”."), field="team", name=name)
    return team


def add_team(session: Session, name: str, strategy: str = "round_robin") -> SalesTeam:
    if strategy not in STRATEGIES:
        raise SalesError(STRATEGY_REFUSED, field="strategy", strategies=", ".join(STRATEGIES))
    if team_by_name(session, name) is not None:
        raise SalesError(TEAM_EXISTS, field="name", name=name)
    team = SalesTeam(name=name, strategy=strategy, created_at=clock.now())
    session.add(team)
    session.flush()
    return team


def team_by_name(session: Session, name: str) -> SalesTeam | None:
    return session.scalars(sa.select(SalesTeam).where(SalesTeam.name == name)).one_or_none()


def add_member(session: Session, team_name: str, email: str) -> None:
    """Unaudited (set-ups in tests); staff add members through ``sales_teams.add_member``."""
    team, person = named_team(session, team_name), named_person(session, email)
    if session.get(TeamMember, (team.id, person.id)) is None:
        session.add(TeamMember(team_id=team.id, person_id=person.id, credit=0))
        session.flush()


def people(session: Session) -> list[Salesperson]:
    return _by_address(session, session.scalars(sa.select(Salesperson)))


def teams(session: Session) -> list[tuple[SalesTeam, list[Salesperson]]]:
    result = []
    for team in session.scalars(sa.select(SalesTeam).order_by(SalesTeam.name)):
        members = session.scalars(
            sa.select(Salesperson)
            .join(TeamMember, TeamMember.person_id == Salesperson.id)
            .where(TeamMember.team_id == team.id)
        )
        result.append((team, _by_address(session, members)))
    return result


# --- choosing -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Choice:
    person: Salesperson | None
    team: SalesTeam | None
    rule: str  # routing rule name, "fallback" or "queue"


def routing_values(attributes: Mapping[str, str], email_domain: str) -> dict[str, str]:
    country = (attributes.get("country") or "").strip().upper()
    values = {
        "country": country,
        "company_size": attributes.get("company_size", ""),
        "industry": attributes.get("industry", ""),
        "email_domain": email_domain.lower(),
    }
    region = next((name for name, members in REGIONS.items() if country in members), "")
    if region:
        values["region"] = region
    return {k: v for k, v in values.items() if v}


def weekly_load(session: Session, person_id: int) -> int:
    since = clock.now() - dt.timedelta(days=7)
    return (
        session.scalar(
            sa.select(sa.func.count(Handoff.id)).where(
                Handoff.person_id == person_id, Handoff.offered_at >= since
            )
        )
        or 0
    )


def absent_on(session: Session, person_id: int, day: dt.date) -> bool:
    """Whether an absence (``absences.add_absence``) covers this UTC day."""
    return (
        session.scalar(
            sa.select(Absence.id)
            .where(Absence.person_id == person_id, Absence.starts_on <= day, Absence.ends_on >= day)
            .limit(1)
        )
        is not None
    )


def _available(session: Session, person: Salesperson, exclude: set[int]) -> bool:
    return (
        person.active
        and not person.absent
        and person.id not in exclude
        and not absent_on(session, person.id, clock.now().date())
        and weekly_load(session, person.id) < person.weekly_capacity
    )


def pick_from_team(session: Session, team: SalesTeam, exclude: set[int]) -> Salesperson | None:
    rows = session.execute(
        sa.select(TeamMember, Salesperson)
        .join(Salesperson, Salesperson.id == TeamMember.person_id)
        .where(TeamMember.team_id == team.id)
        .order_by(Salesperson.id)
        .with_for_update(of=TeamMember)
    ).all()
    candidates = [(m, p) for m, p in rows if _available(session, p, exclude)]
    if not candidates:
        return None
    if team.strategy == "least_loaded":
        _member, person = min(
            candidates, key=lambda mp: (weekly_load(session, mp[1].id) / mp[1].weight, mp[1].id)
        )
        return person
    # Smooth weighted round robin (as nginx does): fair and deterministic.
    total = sum(p.weight for _m, p in candidates)
    for member, person in candidates:
        member.credit += person.weight
    chosen_member, chosen = max(candidates, key=lambda mp: (mp[0].credit, -mp[1].id))
    chosen_member.credit -= total
    session.flush()
    return chosen


def _target(
    session: Session, person_email: str | None, team_name: str | None, exclude: set[int]
) -> tuple[Salesperson | None, SalesTeam | None]:
    if person_email:
        person = person_by_email(session, person_email)
        if person is not None and _available(session, person, exclude):
            return person, None
        return None, None
    team = team_by_name(session, team_name or "")
    if team is None:
        return None, None
    return pick_from_team(session, team, exclude), team


def choose(session: Session, rules: Rules, values: Mapping[str, str], exclude: set[int]) -> Choice:
    for rule in rules.routing:
        if matches_all(rule.conditions, values):
            person, team = _target(session, rule.salesperson, rule.team, exclude)
            if person is not None:
                return Choice(person, team, rule.name)
    if rules.fallback_salesperson or rules.fallback_team:
        person, team = _target(session, rules.fallback_salesperson, rules.fallback_team, exclude)
        if person is not None:
            return Choice(person, team, "fallback")
    return Choice(None, None, "queue")
