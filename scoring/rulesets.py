"""Rule set versions as staff work with them: validate, dry-run, activate, history, diff.

The console, the admin API and ``leadvault scoring load`` go through these
functions; parsing stays in ``scoring.rules`` and replaying a lead's events in
``scoring.recompute``. Every version is a ``RuleSet`` row (the history); an
activation stores the text as the next version, makes it the active one,
re-grades every lead under it and records an audit entry, all in the caller's
transaction.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import uuid
from collections.abc import Iterator, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from leadvault import audit, clock, i18n
from leadvault.i18n import N_
from leadvault.models import Lead
from leadvault.refusals import RefusedRequest
from scoring import recompute, rules
from scoring.models import RuleSet

MAX_TEXT = 200_000  # characters; a rules file is a few kilobytes
DRY_RUN_DEFAULT = 20_000
DRY_RUN_MAX = 100_000
_CHUNK = 1000
ACTIVATED = audit.Action.RULES_ACTIVATED
TOO_LONG = N_("the rules file is longer than %(max)s characters")
LINE = N_("line %(line)s: %(message)s")


class RuleSetError(RefusedRequest):
    """A request about rule versions the service refuses (no such version, text too long)."""


class NoScoringRules(RefusedRequest):
    """A rules file without one scoring rule, activated without saying so on purpose.

    An empty or truncated file parses (every key has a default), but activating it
    re-grades every lead to score 0, grade D: a mistake far more often than a wish."""

    MESSAGE = N_(
        "the rules file has no scoring rule (no [[engagement]] or [[fit]]): "
        "every lead would score 0 and be graded D"
    )

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


def scores_nothing(text: str, source: str = "rules.toml") -> bool:
    """Whether a rules file has no engagement and no fit rule (RulesError: a bad file)."""
    parsed = rules.parse(text, source=source, version=1)
    return not parsed.engagement and not parsed.fit


@dataclasses.dataclass(frozen=True)
class Problem:
    """Why a rules file is refused: the 1-based line (None: the file as a whole) and the
    reason, a message id with its values; ``str`` is English (the command line),
    :meth:`translated` the reader's language (the console, the API)."""

    line: int | None
    message: str
    values: Mapping[str, object] = dataclasses.field(default_factory=dict)

    def reason(self, lang: str | None = None) -> str:
        """The reason alone; in English without ``lang``, else in ``lang``."""
        text = self.message if lang is None else i18n.translate(lang, self.message)
        return text % dict(self.values) if self.values else text

    def translated(self, lang: str | None = None) -> str:
        """``line 12: reason`` in ``lang``, by default the request's language."""
        lang = lang or i18n.current_language()
        if not self.line:
            return self.reason(lang)
        # Filled here: a value named ``message`` would collide with translate's parameter.
        return i18n.translate(lang, LINE) % {"line": self.line, "message": self.reason(lang)}

    def __str__(self) -> str:
        return LINE % {"line": self.line, "message": self.reason()} if self.line else self.reason()


def problem_of(error: rules.RulesError) -> Problem:
    """The refused file's line and reason."""
    return Problem(error.line, error.message, dict(error.values))


def validate(text: str) -> Problem | None:
    """The first problem of a candidate rules file, or None when it would load."""
    if len(text) > MAX_TEXT:
        return Problem(None, TOO_LONG, {"max": MAX_TEXT})
    try:
        rules.parse(text, source="rules.toml", version=1)
    except rules.RulesError as exc:
        return problem_of(exc)
    return None


def _parsed(text: str) -> rules.Rules:
    problem = validate(text)
    if problem is not None:
        raise rules.RulesError(
            problem.message, source="rules.toml", line=problem.line, **problem.values
        )
    return rules.parse(text, source="rules.toml", version=1)


# --- dry run ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DryRun:
    """What activating a candidate would change, over the first ``checked`` leads."""

    checked: int
    total: int
    grade_changes: int
    grade_moves: dict[str, int]  # "B>A": how many leads
    promotions: int  # new or recycled leads that would become MQL
    score_changes: int

    @property
    def complete(self) -> bool:
        return self.checked >= self.total


def dry_run(session: Session, text: str, *, limit: int = DRY_RUN_DEFAULT) -> DryRun:
    """Replay up to ``limit`` leads (oldest id first) under the candidate without writing.

    The lead's stored state (stage, grade, suspicion) is compared with its state
    replayed under the candidate, exactly as the activation would compute it;
    a chunk at a time so memory stays flat. Raises RulesError for a bad file.
    """
    candidate = _parsed(text)
    limit = max(1, min(limit, DRY_RUN_MAX))
    total = session.scalar(sa.select(sa.func.count()).select_from(Lead)) or 0
    now = clock.now()
    moves: collections.Counter[str] = collections.Counter()
    checked = promotions = score_changes = 0
    for ids in lead_id_chunks(session, limit):
        for outcome in recompute.replay(session, ids, candidate):
            stored = outcome.stored
            old_grade = stored.fit_grade if stored is not None else "D"
            if outcome.fit_grade != old_grade:
                moves[f"{old_grade}>{outcome.fit_grade}"] += 1
            if recompute.would_qualify(outcome, candidate, now):
                promotions += 1
            old_score = stored.score if stored is not None else 0.0
            if abs(outcome.state.score - old_score) > 1e-6:
                score_changes += 1
        checked += len(ids)
    return DryRun(
        checked=checked,
        total=total,
        grade_changes=sum(moves.values()),
        grade_moves=dict(sorted(moves.items())),
        promotions=promotions,
        score_changes=score_changes,
    )


# --- activation ---------------------------------------------------------------------


def activate(
    session: Session,
    text: str,
    *,
    actor: str,
    ip: str | None = None,
    source: str = "console",
    allow_empty: bool = False,
) -> RuleSet:
    """Store ``text`` as the next version, make it active, re-grade every lead under
    it (promoting those now qualified) and record who did it. One transaction: the
    caller's. A file without a scoring rule raises NoScoringRules unless ``allow_empty``."""
    if len(text) > MAX_TEXT:
        raise rules.RulesError(TOO_LONG, source=source, max=MAX_TEXT)
    if not allow_empty and scores_nothing(text, source):
        raise NoScoringRules
    row = rules.load(session, text, source=source)
    regrade(session, rules.parse(text, source=source, version=row.version))
    audit.record(
        session,
        actor=actor,
        action=ACTIVATED,
        object_type=audit.ObjectType.RULE_SET,
        object_id=row.version,
        detail={"sha256": row.sha256[:16]},
        ip=ip,
    )
    return row


def restore(
    session: Session, version: int, *, actor: str, ip: str | None = None, allow_empty: bool = False
) -> RuleSet:
    """Activate an earlier version again: its text becomes the next version."""
    old = by_version(session, version)
    return activate(
        session,
        old.raw_text,
        actor=actor,
        ip=ip,
        source=f"v{version} restored",
        allow_empty=allow_empty,
    )


def regrade(session: Session, active_rules: rules.Rules) -> int:
    """Recompute every lead under ``active_rules``, a chunk at a time."""
    return sum(
        recompute.recompute_chunk(session, ids, active_rules) for ids in lead_id_chunks(session)
    )


def lead_id_chunks(session: Session, limit: int | None = None) -> Iterator[list[uuid.UUID]]:
    """Lead ids in order, a chunk at a time (keyset: each chunk one indexed query)."""
    after: uuid.UUID | None = None
    left = limit
    while left is None or left > 0:
        size = _CHUNK if left is None else min(_CHUNK, left)
        query = sa.select(Lead.id).order_by(Lead.id).limit(size)
        if after is not None:
            query = query.where(Lead.id > after)
        ids = list(session.scalars(query))
        if not ids:
            return
        after = ids[-1]
        if left is not None:
            left -= len(ids)
        yield ids


# --- history ------------------------------------------------------------------------


def by_version(session: Session, version: int) -> RuleSet:
    row = session.scalar(sa.select(RuleSet).where(RuleSet.version == version))
    if row is None:
        raise RuleSetError(N_("there is no rules version %(version)s"), version=version)
    return row


def history(session: Session, *, limit: int = 50, before: int | None = None) -> list[RuleSet]:
    """Versions newest first, a page at a time."""
    query = sa.select(RuleSet).order_by(RuleSet.version.desc()).limit(max(1, min(limit, 200)))
    if before is not None:
        query = query.where(RuleSet.version < before)
    return list(session.scalars(query))


def active_row(session: Session) -> RuleSet | None:
    return session.scalar(sa.select(RuleSet).where(RuleSet.active.is_(True)))


def current_text(session: Session) -> str:
    """The active rules file, or the shipped example before the first activation."""
    row = active_row(session)
    return row.raw_text if row is not None else rules.example_text()


@dataclasses.dataclass(frozen=True)
class DiffLine:
    kind: str  # "add", "remove", "context", "hunk"
    text: str


def diff(session: Session, version: int, against: int | None = None) -> list[DiffLine]:
    """``version`` against ``against`` (default: the version before it) as a unified diff."""
    new = by_version(session, version)
    if against is None:
        previous = session.scalar(
            sa.select(RuleSet).where(RuleSet.version < version).order_by(RuleSet.version.desc())
        )
        old_text, old_name = (previous.raw_text, f"v{previous.version}") if previous else ("", "-")
    else:
        old = by_version(session, against)
        old_text, old_name = old.raw_text, f"v{old.version}"
    return diff_texts(old_text, new.raw_text, old_name, f"v{new.version}")


def diff_texts(old: str, new: str, old_name: str = "old", new_name: str = "new") -> list[DiffLine]:
    kinds = {"+": "add", "-": "remove", " ": "context", "@": "hunk"}
    lines = difflib.unified_diff(
        old.splitlines(), new.splitlines(), old_name, new_name, n=3, lineterm=""
    )
    result = []
    for line in lines:
        if line.startswith(("---", "+++")):
            continue
        result.append(
            DiffLine(kinds.get(line[:1], "context"), line[1:] if line[:1] != "@" else line)
        )
    return result
