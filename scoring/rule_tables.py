"""The rule tables of a rules file: ``[[engagement]]``, ``[[fit]]`` and ``[[routing]]``
entries with their ``when`` conditions, and the ``[titles.<language>]`` tables that name
them, each checked into the rule model (``scoring.rule_model``).

``scoring.rules.parse`` reads the file's settings and calls these; a problem is the
checker's error (``scoring.rules.RulesError``) naming the entry's line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from leadvault import tomlfile
from leadvault.i18n import N_
from scoring.rule_model import (
    REGIONS,
    Condition,
    EngagementRule,
    FitRule,
    RoutingRule,
    Titles,
)

ROUTING_KEYS = frozenset({"country", "region", "company_size", "industry", "email_domain"})
_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,79}$")
EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
TITLE_MAX = 120


def _conditions(
    check: tomlfile.Checker, raw: Any, where: tuple[str, int | None], allowed: frozenset[str] | None
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
    check: tomlfile.Checker, entry: dict[str, Any], where: tuple[str, int | None], seen: set[str]
) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise check.fail(N_("name must be lower-case letters, digits, _ or -"), *where, "name")
    if name in seen:
        raise check.fail(N_("rule name '%(name)s' is used twice"), *where, "name", name=name)
    seen.add(name)
    return name


def _named_entries(
    check: tomlfile.Checker, data: dict[str, Any], table: str, seen: set[str]
) -> Iterator[tuple[tuple[str, int], str, dict[str, Any]]]:
    """Each table of the list ``table`` ([[engagement]] …): where it stands, its name
    (checked, and unique across the file's rules) and the table."""
    for i, entry in enumerate(check.list_of_tables(data, table)):
        where = (table, i)
        yield where, _name(check, entry, where, seen), entry


def titles(check: tomlfile.Checker, data: dict[str, Any], names: set[str]) -> dict[str, Titles]:
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


def engagement_rules(
    check: tomlfile.Checker, data: dict[str, Any], seen: set[str]
) -> list[EngagementRule]:
    engagement = []
    for where, name, entry in _named_entries(check, data, "engagement", seen):
        event = entry.get("event")
        if not isinstance(event, str) or not EVENT_NAME.match(event):
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


def fit_rules(check: tomlfile.Checker, data: dict[str, Any], seen: set[str]) -> list[FitRule]:
    fit = []
    for where, name, entry in _named_entries(check, data, "fit", seen):
        conditions = _conditions(check, entry.get("when"), where, None)
        if not conditions:
            raise check.fail(N_("fit rule '%(name)s' needs a when table"), *where, name=name)
        fit.append(FitRule(name, conditions, check.number(entry, "points", where)))
    return fit


def routing_rules(
    check: tomlfile.Checker, data: dict[str, Any], seen: set[str]
) -> list[RoutingRule]:
    routing = []
    for where, name, entry in _named_entries(check, data, "routing", seen):
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
