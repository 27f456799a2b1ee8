"""Rules files: parse and validate the TOML, store it versioned, serve the active version.

Errors name the file and line (``leadvault.tomlfile``, shared with the nurture
sequences).
What a parsed file becomes, and how it is evaluated, is ``scoring.rule_model``.
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from leadvault import batch, clock, tomlfile
from leadvault.crypto import sha256_hex
from scoring.models import RuleSet
from scoring.rule_model import (
    GRADES,
    REGIONS,
    Condition,
    EngagementRule,
    FitRule,
    RoutingRule,
    Rules,
    Titles,
)

# Events the core and the domain packages send; always known.
BUILTIN_EVENT_TYPES = frozenset(
    {
        "form_submitted",
        "optin_confirmed",
        "asset_downloaded",
        "unsubscribed",
        "sales_feedback",
        "page_view",
        "mail_clicked",
    }
)
# Sent by Leadvault itself; refused (counted as unknown) from the API and the browser.
INTERNAL_ONLY = frozenset(
    {"form_submitted", "optin_confirmed", "unsubscribed", "sales_feedback", "mail_clicked"}
)
ROUTING_KEYS = frozenset({"country", "region", "company_size", "industry", "email_domain"})
_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,79}$")
_EVENT = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
TITLE_MAX = 120


class RulesError(tomlfile.SourceError):
    """A rules file the service refuses; the message names file and line."""


# --- parsing ------------------------------------------------------------------


class _Checker(tomlfile.Checker):
    def __init__(self, text: str, source: str) -> None:
        super().__init__(text, source, RulesError)


def _conditions(
    check: _Checker, raw: Any, where: tuple[str, int | None], allowed: frozenset[str] | None
) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise check.fail('when must be a table such as { category = "pricing" }', *where, "when")
    conditions = []
    for key, spec in raw.items():
        if allowed is not None and key not in allowed:
            raise check.fail(
                f"unknown condition {key!r}; use {', '.join(sorted(allowed))}", *where, "when"
            )
        if isinstance(spec, list):
            if not spec or not all(isinstance(v, str | int | float) for v in spec):
                raise check.fail(f"{key}: a list needs plain values", *where, "when")
            values = frozenset(str(v) for v in spec)
            if key == "region" and not values <= set(REGIONS):
                raise check.fail(
                    f"unknown region; regions are {', '.join(REGIONS)}", *where, "when"
                )
            conditions.append(Condition(key, "in", values))
        elif isinstance(spec, dict):
            unknown = set(spec) - {"matches", "min", "max"}
            if unknown or not spec:
                raise check.fail(f"{key}: use matches, min or max", *where, "when")
            if "matches" in spec:
                try:
                    conditions.append(Condition(key, "matches", re.compile(str(spec["matches"]))))
                except re.error as exc:
                    raise check.fail(
                        f"{key}: bad regular expression ({exc})", *where, "when"
                    ) from None
            for op in ("min", "max"):
                if op in spec:
                    if isinstance(spec[op], bool) or not isinstance(spec[op], int | float):
                        raise check.fail(f"{key}: {op} must be a number", *where, "when")
                    conditions.append(Condition(key, op, float(spec[op])))
        elif isinstance(spec, str | int | float | bool):
            if key == "region" and spec not in REGIONS:
                raise check.fail(
                    f"unknown region; regions are {', '.join(REGIONS)}", *where, "when"
                )
            conditions.append(Condition(key, "eq", spec))
        else:
            raise check.fail(f"{key}: unsupported condition", *where, "when")
    return tuple(conditions)


def _name(
    check: _Checker, entry: dict[str, Any], where: tuple[str, int | None], seen: set[str]
) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise check.fail("name must be lower-case letters, digits, _ or -", *where, "name")
    if name in seen:
        raise check.fail(f"rule name {name!r} is used twice", *where, "name")
    seen.add(name)
    return name


def _titles(check: _Checker, data: dict[str, Any], names: set[str]) -> dict[str, Titles]:
    """``[titles.<language>]`` tables: rule name = its title in that language."""
    raw = data.get("titles", {})
    if not isinstance(raw, dict):
        raise check.fail("titles must be written as [titles.en], [titles.de] … tables", "titles")
    found: dict[str, list[tuple[str, str]]] = {}
    for lang, table in raw.items():
        where = f"titles.{lang}"
        if not _LANGUAGE.match(lang) or not isinstance(table, dict):
            raise check.fail(
                f"{where}: write one [titles.<language>] table per language, such as [titles.de]",
                "titles",
            )
        for name, title in table.items():
            if name not in names:
                raise check.fail(
                    f"{where}: there is no engagement or fit rule {name!r}", where, None, name
                )
            if not isinstance(title, str) or not title.strip() or len(title) > TITLE_MAX:
                raise check.fail(
                    f"{where}: a title is a text of 1 to {TITLE_MAX} characters", where, None, name
                )
            found.setdefault(name, []).append((lang, " ".join(title.split())))
    return {name: tuple(pairs) for name, pairs in found.items()}


def parse(text: str, *, source: str = "rules.toml", version: int = 0) -> Rules:
    """Parse and validate; raises RulesError naming ``source`` and the line."""
    data = tomlfile.loads(text, source=source, error=RulesError)
    check = _Checker(text, source)
    known_top = {
        "scoring",
        "stages",
        "grades",
        "expected_value",
        "engagement",
        "fit",
        "routing",
        "routing_fallback",
        "titles",
    }
    for key in data:
        if key not in known_top:
            raise check.fail(f"unknown section {key!r}", key)
    scoring = data.get("scoring", {})
    stages = data.get("stages", {})
    half_life = check.number(scoring, "half_life_days", ("scoring", None), default=30, minimum=0.01)
    extra_types = scoring.get("event_types", [])
    if not isinstance(extra_types, list) or not all(
        isinstance(t, str) and _EVENT.match(t) for t in extra_types
    ):
        raise check.fail(
            "event_types must be a list of lower-case names", "scoring", None, "event_types"
        )
    mql_score = check.number(stages, "mql_score", ("stages", None), default=35)
    mql_min_grade = stages.get("mql_min_grade", "C")
    if mql_min_grade not in GRADES:
        raise check.fail("mql_min_grade must be A, B, C or D", "stages", None, "mql_min_grade")
    remind = check.number(stages, "remind_after_hours", ("stages", None), default=16, minimum=0)
    accept = check.number(stages, "accept_within_hours", ("stages", None), default=24, minimum=0.01)
    if remind >= accept:
        raise check.fail(
            "remind_after_hours must be less than accept_within_hours",
            "stages",
            None,
            "remind_after_hours",
        )

    raw_grades = data.get("grades", {"A": 40, "B": 25, "C": 10})
    grades = {g: check.number(raw_grades, g, ("grades", None)) for g in GRADES[:-1]}
    if not grades["A"] >= grades["B"] >= grades["C"]:
        raise check.fail("grades must satisfy A >= B >= C", "grades")
    raw_value = data.get("expected_value", {"A": 50, "B": 20, "C": 5, "D": 0.5})
    expected = {g: check.number(raw_value, g, ("expected_value", None), minimum=0) for g in GRADES}

    seen: set[str] = set()
    engagement = _engagement_rules(check, data, seen)
    fit = _fit_rules(check, data, seen)
    routing = _routing_rules(check, data, seen)
    fallback = data.get("routing_fallback", {})
    by_event: dict[str, list[EngagementRule]] = {}
    for rule in engagement:
        by_event.setdefault(rule.event, []).append(rule)
    return Rules(
        version=version,
        half_life_days=half_life,
        mql_score=mql_score,
        mql_min_grade=mql_min_grade,
        remind_after_hours=remind,
        accept_within_hours=accept,
        grades=grades,
        expected_value=expected,
        engagement=tuple(engagement),
        fit=tuple(fit),
        routing=tuple(routing),
        fallback_team=fallback.get("team"),
        fallback_salesperson=fallback.get("salesperson"),
        event_types=BUILTIN_EVENT_TYPES | frozenset(extra_types) | frozenset(by_event),
        by_event={event: tuple(rules) for event, rules in by_event.items()},
        titles=_titles(check, data, {rule.name for rule in (*engagement, *fit)}),
    )


def _engagement_rules(
    check: _Checker, data: dict[str, Any], seen: set[str]
) -> list[EngagementRule]:
    engagement = []
    for i, entry in enumerate(check.list_of_tables(data, "engagement")):
        where = ("engagement", i)
        name = _name(check, entry, where, seen)
        event = entry.get("event")
        if not isinstance(event, str) or not _EVENT.match(event):
            raise check.fail(f"rule {name!r}: event must be an event type name", *where, "event")
        cap = entry.get("cap_per_day")
        if cap is not None:
            cap = check.number(entry, "cap_per_day", where, minimum=0)
        unknown = set(entry) - {"name", "event", "when", "points", "cap_per_day"}
        if unknown:
            raise check.fail(
                f"rule {name!r}: unknown key {sorted(unknown)[0]!r}", *where, sorted(unknown)[0]
            )
        engagement.append(
            EngagementRule(
                name=name,
                event=event,
                conditions=_conditions(check, entry.get("when"), where, None),
                points=check.number(entry, "points", where),
                cap_per_day=cap,
            )
        )
    return engagement


def _fit_rules(check: _Checker, data: dict[str, Any], seen: set[str]) -> list[FitRule]:
    fit = []
    for i, entry in enumerate(check.list_of_tables(data, "fit")):
        where = ("fit", i)
        name = _name(check, entry, where, seen)
        conditions = _conditions(check, entry.get("when"), where, None)
        if not conditions:
            raise check.fail(f"fit rule {name!r} needs a when table", *where)
        fit.append(FitRule(name, conditions, check.number(entry, "points", where)))
    return fit


def _routing_rules(check: _Checker, data: dict[str, Any], seen: set[str]) -> list[RoutingRule]:
    routing = []
    for i, entry in enumerate(check.list_of_tables(data, "routing")):
        where = ("routing", i)
        name = _name(check, entry, where, seen)
        person, team = entry.get("salesperson"), entry.get("team")
        if (person is None) == (team is None):
            raise check.fail(f"routing rule {name!r} needs a salesperson or a team", *where)
        routing.append(
            RoutingRule(
                name,
                _conditions(check, entry.get("when"), where, ROUTING_KEYS),
                str(person) if person else None,
                str(team) if team else None,
            )
        )
    return routing


# --- storage ------------------------------------------------------------------

_cache: dict[tuple[int, str], Rules] = {}
_LOAD_ATTEMPTS = 5


def example_text() -> str:
    return files("scoring").joinpath("rules.example.toml").read_text(encoding="utf-8")


def load(session: Session, text: str, *, source: str) -> RuleSet:
    """Validate and store a new active version; older versions stay for the record."""
    parse(text, source=source, version=1)  # refuse a bad file before touching anything
    for _attempt in range(_LOAD_ATTEMPTS):
        latest = session.scalar(sa.select(sa.func.max(RuleSet.version))) or 0
        row = RuleSet(
            version=latest + 1,
            source=source[-255:],
            raw_text=text,
            sha256=sha256_hex(text),
            loaded_at=clock.now(),
            active=True,
        )
        try:
            # Two loads at once both read the same latest version; the unique index
            # lets one in and the other takes the next number (READ COMMITTED sees it).
            with session.begin_nested():
                session.execute(
                    sa.update(RuleSet).where(RuleSet.active.is_(True)).values(active=False)
                )
                session.add(row)
        except IntegrityError:
            continue
        return row
    raise RulesError(f"{source}: the rules changed too often at once; please load them again")


def active(session: Session) -> Rules:
    """The active rules (parsed once per version); the shipped example before any load.
    Read once per worker batch."""
    return batch.cached(session, "scoring.rules", lambda: _active(session))


def _active(session: Session) -> Rules:
    row = session.execute(
        sa.select(RuleSet.version, RuleSet.sha256).where(RuleSet.active.is_(True))
    ).first()
    if row is None:
        key = (0, "example")
        if key not in _cache:
            _cache[key] = parse(example_text(), source="rules.example.toml", version=0)
        return _cache[key]
    key = (row.version, row.sha256)
    if key not in _cache:
        text = session.scalar(sa.select(RuleSet.raw_text).where(RuleSet.version == row.version))
        _cache[key] = parse(text or "", source=f"rules v{row.version}", version=row.version)
    return _cache[key]


def versions(session: Session) -> list[RuleSet]:
    return list(session.scalars(sa.select(RuleSet).order_by(RuleSet.version)))
