"""Rules files: parse and validate the TOML, store it versioned, serve the active version.

Errors name the file and line (``leadvault.tomlfile``, shared with the nurture
sequences). The rule tables (engagement, fit, routing, titles) are checked by
``scoring.rule_tables``; what a parsed file becomes, and how it is evaluated, is
``scoring.rule_model``.
"""

from __future__ import annotations

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
from scoring import rule_tables
from scoring.models import RuleSet
from scoring.rule_model import GRADES, EngagementRule, Rules

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
        isinstance(t, str) and rule_tables.EVENT_NAME.match(t) for t in extra_types
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
    engagement = rule_tables.engagement_rules(check, data, seen)
    fit = rule_tables.fit_rules(check, data, seen)
    routing = rule_tables.routing_rules(check, data, seen)
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
        titles=rule_tables.titles(check, data, {rule.name for rule in (*engagement, *fit)}),
    )


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
