"""Rules files: parse and validate the TOML, store it versioned, serve the active version.

Errors name the file and line (``leadvault.tomlfile``, shared with the nurture
sequences).
What a parsed file becomes, and how it is evaluated, is ``scoring.rule_model``.
"""

from __future__ import annotations

import re
import tomllib
from importlib.resources import files
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from leadvault import batch, clock, tomlfile
from leadvault.crypto import sha256_hex
from leadvault.i18n import N_
from leadvault.refusals import RefusedRequest
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


class RulesError(tomlfile.SourceError, RefusedRequest):
    """A rules file the service refuses: a message id with values (``translated`` for
    the console and the API), the file and its line; ``str`` is the English
    ``source:line: reason`` (the command line)."""

    def __init__(
        self, message: str, *, source: str, line: int | None = None, **values: object
    ) -> None:
        RefusedRequest.__init__(self, message, field="text", **values)
        self.source, self.line = source, line

    def __str__(self) -> str:
        reason = self.message % self.values if self.values else self.message
        return f"{self.source}:{self.line}: {reason}" if self.line else f"{self.source}: {reason}"


# --- parsing ------------------------------------------------------------------


class _Checker(tomlfile.Checker):
    def __init__(self, text: str, source: str) -> None:
        super().__init__(text, source, RulesError)

    def fail_at(self, line: int, message: str, **values: object) -> Exception:
        return RulesError(message, source=self.source, line=line, **values)


def _loads(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, reason = tomlfile.syntax_problem(text, exc)
        # tomllib's reason is the message id when it is one of the marked ones; the
        # others name a key or character and are shown as they are.
        if reason in tomlfile.SYNTAX_REASONS:
            raise RulesError(reason, source=source, line=line) from None
        raise RulesError("%(reason)s", source=source, line=line, reason=reason) from None


def _conditions(
    check: _Checker, raw: Any, where: tuple[str, int | None], allowed: frozenset[str] | None
) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise check.fail(
            N_('when must be a table such as { category = "pricing" }'), *where, "when"
        )
    conditions = []
    for key, spec in raw.items():
        if allowed is not None and key not in allowed:
            raise check.fail(
                N_("unknown condition '%(name)s'; use %(allowed)s"),
                *where,
                "when",
                name=key,
                allowed=", ".join(sorted(allowed)),
            )
        if isinstance(spec, list):
            if not spec or not all(isinstance(v, str | int | float) for v in spec):
                raise check.fail(
                    N_("%(name)s: a list needs plain values"), *where, "when", name=key
                )
            values = frozenset(str(v) for v in spec)
            if key == "region" and not values <= set(REGIONS):
                raise check.fail(
                    N_("unknown region; regions are %(known)s"),
                    *where,
                    "when",
                    known=", ".join(REGIONS),
                )
            conditions.append(Condition(key, "in", values))
        elif isinstance(spec, dict):
            unknown = set(spec) - {"matches", "min", "max"}
            if unknown or not spec:
                raise check.fail(N_("%(name)s: use matches, min or max"), *where, "when", name=key)
            if "matches" in spec:
                try:
                    conditions.append(Condition(key, "matches", re.compile(str(spec["matches"]))))
                except re.error as exc:
                    raise check.fail(
                        N_("%(name)s: bad regular expression (%(reason)s)"),
                        *where,
                        "when",
                        name=key,
                        reason=str(exc),
                    ) from None
            for op in ("min", "max"):
                if op in spec:
                    if isinstance(spec[op], bool) or not isinstance(spec[op], int | float):
                        raise check.fail(
                            N_("%(name)s: %(op)s must be a number"), *where, "when", name=key, op=op
                        )
                    conditions.append(Condition(key, op, float(spec[op])))
        elif isinstance(spec, str | int | float | bool):
            if key == "region" and spec not in REGIONS:
                raise check.fail(
                    N_("unknown region; regions are %(known)s"),
                    *where,
                    "when",
                    known=", ".join(REGIONS),
                )
            conditions.append(Condition(key, "eq", spec))
        else:
            raise check.fail(N_("%(name)s: unsupported condition"), *where, "when", name=key)
    return tuple(conditions)


def _name(
    check: _Checker, entry: dict[str, Any], where: tuple[str, int | None], seen: set[str]
) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise check.fail(N_("name must be lower-case letters, digits, _ or -"), *where, "name")
    if name in seen:
        raise check.fail(N_("rule name '%(name)s' is used twice"), *where, "name", name=name)
    seen.add(name)
    return name


def _titles(check: _Checker, data: dict[str, Any], names: set[str]) -> dict[str, Titles]:
    """``[titles.<language>]`` tables: rule name = its title in that language."""
    raw = data.get("titles", {})
    if not isinstance(raw, dict):
        raise check.fail(
            N_("titles must be written as [titles.en], [titles.de] … tables"), "titles"
        )
    found: dict[str, list[tuple[str, str]]] = {}
    for lang, table in raw.items():
        where = f"titles.{lang}"
        if not _LANGUAGE.match(lang) or not isinstance(table, dict):
            raise check.fail(
                N_(
                    "%(where)s: write one [titles.<language>] table per language, "
                    "such as [titles.de]"
                ),
                "titles",
                where=where,
            )
        for name, title in table.items():
            if name not in names:
                raise check.fail(
                    N_("%(where)s: there is no engagement or fit rule '%(name)s'"),
                    where,
                    None,
                    name,
                    where=where,
                    name=name,
                )
            if not isinstance(title, str) or not title.strip() or len(title) > TITLE_MAX:
                raise check.fail(
                    N_("%(where)s: a title is a text of 1 to %(max)s characters"),
                    where,
                    None,
                    name,
                    where=where,
                    max=TITLE_MAX,
                )
            found.setdefault(name, []).append((lang, " ".join(title.split())))
    return {name: tuple(pairs) for name, pairs in found.items()}


def parse(text: str, *, source: str = "rules.toml", version: int = 0) -> Rules:
    """Parse and validate; raises RulesError naming ``source`` and the line."""
    data = _loads(text, source)
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
            raise check.fail(N_("unknown section '%(name)s'"), key, name=key)
    scoring = data.get("scoring", {})
    stages = data.get("stages", {})
    half_life = check.number(scoring, "half_life_days", ("scoring", None), default=30, minimum=0.01)
    extra_types = scoring.get("event_types", [])
    if not isinstance(extra_types, list) or not all(
        isinstance(t, str) and _EVENT.match(t) for t in extra_types
    ):
        raise check.fail(
            N_("event_types must be a list of lower-case names"), "scoring", None, "event_types"
        )
    mql_score = check.number(stages, "mql_score", ("stages", None), default=35)
    mql_min_grade = stages.get("mql_min_grade", "C")
    if mql_min_grade not in GRADES:
        raise check.fail(N_("mql_min_grade must be A, B, C or D"), "stages", None, "mql_min_grade")
    remind = check.number(stages, "remind_after_hours", ("stages", None), default=16, minimum=0)
    accept = check.number(stages, "accept_within_hours", ("stages", None), default=24, minimum=0.01)
    if remind >= accept:
        raise check.fail(
            N_("remind_after_hours must be less than accept_within_hours"),
            "stages",
            None,
            "remind_after_hours",
        )

    raw_grades = data.get("grades", {"A": 40, "B": 25, "C": 10})
    grades = {g: check.number(raw_grades, g, ("grades", None)) for g in GRADES[:-1]}
    if not grades["A"] >= grades["B"] >= grades["C"]:
        raise check.fail(N_("grades must satisfy A >= B >= C"), "grades")
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
            raise check.fail(
                N_("rule '%(name)s': event must be an event type name"), *where, "event", name=name
            )
        cap = entry.get("cap_per_day")
        if cap is not None:
            cap = check.number(entry, "cap_per_day", where, minimum=0)
        unknown = set(entry) - {"name", "event", "when", "points", "cap_per_day"}
        if unknown:
            raise check.fail(
                N_("rule '%(name)s': unknown key '%(key_name)s'"),
                *where,
                sorted(unknown)[0],
                name=name,
                key_name=sorted(unknown)[0],
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
            raise check.fail(N_("fit rule '%(name)s' needs a when table"), *where, name=name)
        fit.append(FitRule(name, conditions, check.number(entry, "points", where)))
    return fit


def _routing_rules(check: _Checker, data: dict[str, Any], seen: set[str]) -> list[RoutingRule]:
    routing = []
    for i, entry in enumerate(check.list_of_tables(data, "routing")):
        where = ("routing", i)
        name = _name(check, entry, where, seen)
        person, team = entry.get("salesperson"), entry.get("team")
        if (person is None) == (team is None):
            raise check.fail(
                N_("routing rule '%(name)s' needs a salesperson or a team"), *where, name=name
            )
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
    raise RulesError(
        N_("the rules changed too often at once; please load them again"), source=source
    )


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
