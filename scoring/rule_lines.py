"""Why a lead has its score and fit, as people read it: each rule's title and points.

The handoff mail and page and the console's lead page show a rule by the title the
rules file gives it (``title``, per language), not by its name. A rule that is no
longer in the active rules (its points stay until they decay or a recompute) shows
its name, marked as retired. ``share`` is the bar's length: the rule's points
against the largest of its list (0 to 1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from leadvault.i18n import N_
from scoring.rule_model import Rules, Titles, title_in

# What the plausibility checks (scoring.enrichment) found, as people read it.
CHECKS = {
    "disposable": N_("Disposable address"),
    "free_mail": N_("Free mail address"),
    "company_mail": N_("Company address"),
    "role_address": N_("Role address (info@, sales@ …)"),
    "phone_valid": N_("Phone number valid"),
    "phone_invalid": N_("Phone number not valid"),
    "phone_country_mismatch": N_("Phone number of another country"),
}
ENRICHED = N_("Completed by %(provider)s")


@dataclasses.dataclass(frozen=True)
class RuleLine:
    name: str
    points: float
    titles: Titles
    retired: bool  # not in the active rules any more
    share: float  # abs(points) / the largest abs(points) of the list

    def title(self, lang: str) -> str:
        return title_in(self.titles, lang) or self.name

    @property
    def negative(self) -> bool:
        return self.points < 0


def lines(rules: Rules, points: Iterable[tuple[str, float]]) -> list[RuleLine]:
    """One line per (rule name, points), in the given order."""
    pairs = list(points)
    largest = max((abs(value) for _name, value in pairs), default=0.0)
    found = []
    for name, value in pairs:
        titles = rules.titles_of(name)
        found.append(
            RuleLine(
                name=name,
                points=value,
                titles=titles or (),
                retired=titles is None,
                share=abs(value) / largest if largest else 0.0,
            )
        )
    return found


def checks(flags: Iterable[str]) -> list[tuple[str | None, dict[str, str]]]:
    """(message id, values) per flag, for ``_(message, **values)``; a flag without a
    message is (None, {"flag": flag}) and shows as it is."""
    found: list[tuple[str | None, dict[str, str]]] = []
    for flag in flags:
        if flag in CHECKS:
            found.append((CHECKS[flag], {}))
        elif flag.startswith("enriched:"):
            found.append((ENRICHED, {"provider": flag.partition(":")[2]}))
        else:
            found.append((None, {"flag": flag}))
    return found


def event_titles(rules: Rules, event_type: str) -> Titles:
    """The titles of the one engagement rule that scores every ``event_type`` event (no
    conditions), for a journey step without a line of its own; else none."""
    scoring = rules.by_event.get(event_type, ())
    if len(scoring) == 1 and not scoring[0].conditions:
        return rules.titles.get(scoring[0].name, ())
    return ()
