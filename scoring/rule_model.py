"""The rule model: validated scoring rules in memory and how their conditions are tested.

Built by ``scoring.rules.parse``; the stored, versioned rules files are
``scoring.models.RuleSet`` rows. Kept free of TOML and the database so scoring,
fit and routing can evaluate rules without depending on how rules are loaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from leadvault import i18n

GRADES = ("A", "B", "C", "D")
REGIONS: dict[str, frozenset[str]] = {
    "DACH": frozenset({"DE", "AT", "CH"}),
    "UK": frozenset({"GB"}),
    "NA": frozenset({"US", "CA"}),
    "EU": frozenset(
        "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()  # noqa: SIM905 - a country list reads best as one line
    ),
}


@dataclasses.dataclass(frozen=True)
class Condition:
    key: str
    op: str  # eq, in, matches, min, max
    value: Any

    def test(self, actual: Any) -> bool:
        if actual is None:
            return False
        if self.op == "eq":
            if isinstance(self.value, bool) or isinstance(actual, bool):
                return actual is self.value or str(actual).lower() == str(self.value).lower()
            return str(actual) == str(self.value)
        if self.op == "in":
            return str(actual) in self.value
        if self.op == "matches":
            return bool(self.value.search(str(actual)))
        try:
            number = float(actual)
        except (TypeError, ValueError):
            return False
        return number >= self.value if self.op == "min" else number <= self.value


def matches_all(conditions: tuple[Condition, ...], values: Mapping[str, Any]) -> bool:
    return all(condition.test(values.get(condition.key)) for condition in conditions)


# A rule's titles for people (handoff mail and page, console): (language, title) pairs,
# from the rules file's [titles.<language>] tables.
Titles = tuple[tuple[str, str], ...]


def title_in(titles: Titles, lang: str) -> str | None:
    """The title in ``lang``; else the one in the default language (English); else the
    first the file gives."""
    by_language = dict(titles)
    for key in (lang, i18n.DEFAULT_LANGUAGE):
        if by_language.get(key):
            return by_language[key]
    return titles[0][1] if titles else None


@dataclasses.dataclass(frozen=True)
class EngagementRule:
    name: str
    event: str
    conditions: tuple[Condition, ...]
    points: float
    cap_per_day: float | None


@dataclasses.dataclass(frozen=True)
class FitRule:
    name: str
    conditions: tuple[Condition, ...]
    points: float


@dataclasses.dataclass(frozen=True)
class RoutingRule:
    name: str
    conditions: tuple[Condition, ...]
    salesperson: str | None
    team: str | None


@dataclasses.dataclass(frozen=True)
class Rules:
    version: int
    half_life_days: float
    mql_score: float
    mql_min_grade: str
    remind_after_hours: float
    accept_within_hours: float
    grades: dict[str, float]
    expected_value: dict[str, float]
    engagement: tuple[EngagementRule, ...]
    fit: tuple[FitRule, ...]
    routing: tuple[RoutingRule, ...]
    fallback_team: str | None
    fallback_salesperson: str | None
    event_types: frozenset[str]
    by_event: dict[str, tuple[EngagementRule, ...]]
    titles: dict[str, Titles] = dataclasses.field(default_factory=dict)  # by rule name

    @property
    def half_life_seconds(self) -> float:
        return self.half_life_days * 86400.0

    def titles_of(self, name: str) -> Titles | None:
        """An engagement or fit rule's titles (``()``: none given); None: no such rule."""
        if name in self.titles:
            return self.titles[name]
        if any(rule.name == name for rule in (*self.engagement, *self.fit)):
            return ()
        return None

    def grade_for(self, points: float) -> str:
        for grade in GRADES[:-1]:
            if points >= self.grades[grade]:
                return grade
        return "D"


def grade_at_least(grade: str, minimum: str) -> bool:
    return GRADES.index(grade) <= GRADES.index(minimum)
