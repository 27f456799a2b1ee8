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

from scoring.rule_model import Rules, Titles, title_in


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
