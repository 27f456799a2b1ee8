"""A sequence in memory: trigger, audience, exit conditions, steps and mail templates.

Built by ``nurture.parser.parse`` from a TOML file; kept free of TOML and the
database so the tick can evaluate it without knowing how it was loaded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from nurture.render import CompiledMail

TRIGGERS = ("purpose_confirmed", "form_submitted", "asset_downloaded", "stage_entered", "event")
# Stage order for "this stage or later"; recycled leads are back in nurturing.
STAGE_RANK = {
    "new": 0,
    "recycled": 0,
    "mql": 1,
    "sal": 2,
    "sql": 3,
    "won": 4,
    "lost": 4,
    "disqualified": 4,
}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclasses.dataclass(frozen=True)
class Trigger:
    on: str
    purpose: str | None = None  # purpose_confirmed
    form: str | None = None  # form_submitted (None: any form)
    asset: str | None = None  # asset_downloaded (None: any asset)
    stage: str | None = None  # stage_entered
    event: str | None = None  # event

    @property
    def event_types(self) -> frozenset[str]:
        """Scoring event types this trigger listens to."""
        if self.on == "asset_downloaded":
            return frozenset({"asset_downloaded"})
        if self.on == "event" and self.event:
            return frozenset({self.event})
        return frozenset()


@dataclasses.dataclass(frozen=True)
class Audience:
    grades: frozenset[str] | None = None
    score_min: float | None = None
    score_max: float | None = None
    forms: frozenset[str] | None = None
    languages: frozenset[str] | None = None

    def admits(
        self, *, grade: str, score: float, forms: set[str], language: str
    ) -> tuple[bool, str]:
        """Whether a lead belongs to the audience, and if not, which condition failed."""
        if self.grades is not None and grade not in self.grades:
            return False, "grade"
        if self.score_min is not None and score < self.score_min:
            return False, "score"
        if self.score_max is not None and score > self.score_max:
            return False, "score"
        if self.forms is not None and not (self.forms & forms):
            return False, "form"
        if self.languages is not None and language not in self.languages:
            return False, "language"
        return True, ""


@dataclasses.dataclass(frozen=True)
class Exit:
    stage: str | None = "sal"  # leave on reaching this stage or a later one
    handoff: str | None = "accepted"  # "offered", "accepted" or None
    goal_events: tuple[str, ...] = ()

    def on_stage(self, stage: str) -> bool:
        if self.stage is None:
            return False
        return STAGE_RANK.get(stage, 0) >= STAGE_RANK[self.stage]

    def on_handoff(self, status: str) -> bool:
        if self.handoff is None:
            return False
        return status == "accepted" or (self.handoff == "offered" and status == "offered")


@dataclasses.dataclass(frozen=True)
class Wait:
    delay: dt.timedelta | None = None
    weekday: int | None = None  # 0 = Monday; None: any day
    weekdays_only: bool = False  # "weekday": Monday to Friday
    at: dt.time | None = None
    zone: str = "instance"  # "lead" or "instance"


@dataclasses.dataclass(frozen=True)
class Condition:
    """A branch condition; every given part must hold. There is no "opened"."""

    clicked: str | bool | None = None  # a mail step's name, or True: any link of this run
    downloaded: str | bool | None = None  # an asset id, or True: any asset
    score_min: float | None = None
    score_max: float | None = None
    stages: frozenset[str] | None = None
    events: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value not in (None, ()):
                shown = sorted(value) if isinstance(value, frozenset) else value
                parts.append(f"{field.name}={shown}")
        return ", ".join(parts)


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    kind: str  # wait, mail, branch
    wait: Wait | None = None
    mail: str | None = None
    condition: Condition | None = None
    then: int | None = None  # step index to go to; len(steps) ends the sequence
    otherwise: int | None = None

    def describe(self) -> str:
        if self.kind == "mail":
            return f"send mail {self.mail!r}"
        if self.kind == "branch" and self.condition is not None:
            return f"if {self.condition.describe()}"
        wait = self.wait
        if wait is None:
            return self.kind
        if wait.delay is not None:
            return f"wait {wait.delay}"
        day = WEEKDAYS[wait.weekday] if wait.weekday is not None else "any day"
        day = "weekday" if wait.weekdays_only else day
        at = wait.at.strftime("%H:%M") if wait.at else ""
        return f"wait until {day} {at} ({wait.zone} time zone)"


@dataclasses.dataclass(frozen=True)
class Sequence:
    key: str
    version: int
    name: str
    purpose: str
    reentry: bool
    trigger: Trigger
    audience: Audience
    exit: Exit
    steps: tuple[Step, ...]
    # (mail name, language) -> compiled template
    mails: dict[tuple[str, str], CompiledMail]
    languages: tuple[str, ...]

    def step_index(self, name: str) -> int | None:
        for index, step in enumerate(self.steps):
            if step.name == name:
                return index
        return None

    def mail_for(self, name: str, language: str) -> CompiledMail:
        found = self.mails.get((name, language)) or self.mails.get((name, self.languages[0]))
        if found is None:  # the parser makes sure every mail has its languages
            raise KeyError(name)
        return found

    @property
    def event_types(self) -> frozenset[str]:
        """Event types that matter to this sequence (trigger, goal, branch conditions)."""
        types = set(self.trigger.event_types) | set(self.exit.goal_events)
        for step in self.steps:
            if step.condition is not None:
                types.update(step.condition.events)
        return frozenset(types)

    def summary(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "version": self.version,
            "name": self.name,
            "purpose": self.purpose,
            "trigger": dataclasses.asdict(self.trigger),
            "steps": [(step.name, step.describe()) for step in self.steps],
        }
