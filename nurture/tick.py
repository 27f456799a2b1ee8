"""The worker's tick: run every step that is due, in one transaction.

Due runs are found through the index on ``nurture_enrollments.due_at`` (set
only while a run is active), never by looking at every lead; on PostgreSQL
concurrent workers skip each other's leads and runs (``FOR UPDATE SKIP
LOCKED``, leads first, as requests lock them), so the frequency cap holds
across workers. What
the tick needs about the due leads (consent, scores, recent mails, bounce
suppressions, profiles) is read in bulk, once per tick.

A run moves step by step until it must wait: a wait step sets the next due
time; a branch jumps forward; a mail step queues its mail (outbox row and send
record in this transaction) or, when the cap or quiet hours forbid it now,
waits until the first allowed moment. Before each step the exit conditions
are checked again, so a run also ends when a signal was missed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from consent import service as consent_service
from leadvault import clock, leads
from leadvault.db import dialect_of, settings_of
from leadvault.models import Lead
from nurture import mails, sequences, service, timing
from nurture.definition import Condition, Sequence, Step
from nurture.models import Click, Enrollment, EnrollmentStatus, Send
from scoring import events as scoring_events
from scoring import handoff as scoring_handoff
from scoring import rules as scoring_rules
from scoring import scores

TICK_LIMIT = 5000  # due runs per tick; the rest wait for the next one
MAX_STEPS_PER_RUN = 64  # branches only jump forward, so a run has fewer steps anyway
TRACKING_PURPOSE = "tracking"


@dataclasses.dataclass
class TickResult:
    due: int = 0
    sent: int = 0
    held: int = 0
    waiting: int = 0
    exited: int = 0
    completed: int = 0


def _chunks(items: list[uuid.UUID], size: int = 500) -> list[list[uuid.UUID]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


class _Context:
    """What one tick knows about its due leads, read in bulk."""

    def __init__(self, session: Session, now: dt.datetime, due: list[Enrollment]) -> None:
        self.session = session
        self.now = now
        self.settings = settings_of(session)
        self.active = sequences.active(session)
        self.rules = scoring_rules.active(session)
        self.result = TickResult(due=len(due))
        ids = sorted({enrollment.lead_id for enrollment in due})
        self.lead_ids = ids
        self.leads: dict[uuid.UUID, Lead] = {}
        for chunk in _chunks(ids):
            query = sa.select(Lead).where(Lead.id.in_(chunk)).options(selectinload(Lead.attributes))
            self.leads.update({lead.id: lead for lead in session.scalars(query)})
        self.states = scores.load_states(session, ids)
        self.recent = timing.recent_sends(session, ids, now, self.settings)
        self.suppressed = service.suppressed_indexes(
            session, [lead.email_index for lead in self.leads.values()]
        )
        self._definitions: dict[tuple[str, int], Sequence | None] = {}
        self.pending: list[tuple[Send, Lead, Sequence]] = []
        self._granted: dict[str, set[uuid.UUID]] = {}
        self._handoffs: dict[uuid.UUID, set[str]] | None = None
        self._attributes: dict[uuid.UUID, dict[str, str]] = {}

    def definition(self, key: str, version: int) -> Sequence | None:
        if (key, version) not in self._definitions:
            try:
                found: Sequence | None = sequences.definition(self.session, key, version)
            except sequences.SequenceNotFound:
                found = None
            self._definitions[(key, version)] = found
        return self._definitions[(key, version)]

    def granted(self, purpose: str) -> set[uuid.UUID]:
        if purpose not in self._granted:
            self._granted[purpose] = consent_service.granted(self.session, self.lead_ids, purpose)
        return self._granted[purpose]

    def handoff_statuses(self, lead_id: uuid.UUID) -> set[str]:
        if self._handoffs is None:
            self._handoffs = {}
            for handoff in scoring_handoff.leads_in(self.session, self.lead_ids):
                self._handoffs.setdefault(handoff.lead_id, set()).add(handoff.status)
        return self._handoffs.get(lead_id, set())

    def attributes(self, lead: Lead) -> dict[str, str]:
        if lead.id not in self._attributes:
            self._attributes[lead.id] = leads.attributes_of(self.session, lead)
        return self._attributes[lead.id]

    def stage(self, lead_id: uuid.UUID) -> str:
        state = self.states.get(lead_id)
        return state.stage if state is not None else "new"

    def score(self, lead_id: uuid.UUID) -> float:
        state = self.states.get(lead_id)
        if state is None:
            return 0.0
        return scores.score_at(state.score, state.as_of, self.now, self.rules.half_life_seconds)


# --- one run -------------------------------------------------------------------------------


def _current(ctx: _Context, enrollment: Enrollment) -> Sequence | None:
    """The run's sequence; a run moves to the active version at a step of the same name.

    None when the sequence was disabled (the run ends)."""
    newest = ctx.active.by_key(enrollment.sequence_key)
    if newest is None:
        return None
    own = ctx.definition(enrollment.sequence_key, enrollment.version)
    if own is None or own.version == newest.version:
        return newest if own is None else own
    if enrollment.step < len(own.steps):
        moved = newest.step_index(own.steps[enrollment.step].name)
        if moved is not None:
            enrollment.version, enrollment.step = newest.version, moved
            return newest
    return own  # its step is gone in the new version: finish on the old one


def _exit_reason(ctx: _Context, enrollment: Enrollment, sequence: Sequence) -> str | None:
    lead_id = enrollment.lead_id
    if lead_id not in ctx.leads:
        return "erased"
    stage = ctx.stage(lead_id)
    if sequence.exit.on_stage(stage):
        return f"stage:{stage}"
    if sequence.exit.handoff is not None:
        statuses = ctx.handoff_statuses(lead_id)
        for status in ("accepted", "offered"):
            if status in statuses and sequence.exit.on_handoff(status):
                return f"handoff:{status}"
    goals = sequence.exit.goal_events
    if goals and scoring_events.occurred(ctx.session, lead_id, goals, enrollment.entered_at):
        return f"goal:{goals[0]}"
    return None


def _holds(ctx: _Context, enrollment: Enrollment, condition: Condition) -> bool:
    session, lead_id, since = ctx.session, enrollment.lead_id, enrollment.entered_at
    if condition.clicked is not None:
        query = (
            sa.select(Click.send_id)
            .join(Send, Send.id == Click.send_id)
            .where(Send.enrollment_id == enrollment.id)
        )
        if isinstance(condition.clicked, str):
            query = query.where(Send.step == condition.clicked)
        if session.scalar(query.limit(1)) is None:
            return False
    if condition.downloaded is not None:
        wanted = {"asset": condition.downloaded} if isinstance(condition.downloaded, str) else None
        if not scoring_events.occurred(session, lead_id, ["asset_downloaded"], since, wanted):
            return False
    score = ctx.score(lead_id)
    if condition.score_min is not None and score < condition.score_min:
        return False
    if condition.score_max is not None and score > condition.score_max:
        return False
    if condition.stages is not None and ctx.stage(lead_id) not in condition.stages:
        return False
    return not condition.events or scoring_events.occurred(
        session, lead_id, condition.events, since
    )


def _wait(ctx: _Context, enrollment: Enrollment, step: Step) -> None:
    assert step.wait is not None
    zone: ZoneInfo = ctx.settings.zone
    if step.wait.zone == "lead":
        lead = ctx.leads[enrollment.lead_id]
        zone = timing.lead_zone(ctx.attributes(lead), ctx.settings.zone)
    enrollment.step += 1
    enrollment.due_at = timing.wait_until(step.wait, ctx.now, zone)
    enrollment.held = None
    ctx.result.waiting += 1


def _mail(ctx: _Context, enrollment: Enrollment, sequence: Sequence, step: Step) -> str | None:
    """Queue the step's mail; returns why the run must end instead, or "held"."""
    lead = ctx.leads[enrollment.lead_id]
    if lead.id not in ctx.granted(sequence.purpose):
        return "consent"
    if lead.email_index in ctx.suppressed:
        return "bounced"
    recent = ctx.recent.setdefault(lead.id, [])
    allowed, why = timing.allowed_after(recent, ctx.now, ctx.settings)
    if allowed > ctx.now:
        enrollment.due_at = allowed
        enrollment.held = why
        ctx.result.held += 1
        return "held"
    assert step.mail is not None
    send = mails.new_send(
        lead=lead,
        sequence=sequence,
        enrollment_id=enrollment.id,
        step=step.name,
        mail=step.mail,
        tracked=lead.id in ctx.granted(TRACKING_PURPOSE),
    )
    ctx.session.add(send)
    ctx.pending.append((send, lead, sequence))  # rendered and queued after one flush
    recent.insert(0, send.queued_at)
    enrollment.last_mail = step.name
    enrollment.step += 1
    enrollment.held = None
    ctx.result.sent += 1
    return None


def _advance(ctx: _Context, enrollment: Enrollment) -> None:
    for _ in range(MAX_STEPS_PER_RUN):
        sequence = _current(ctx, enrollment)
        reason = "disabled" if sequence is None else _exit_reason(ctx, enrollment, sequence)
        if reason is not None or sequence is None:
            service.finish(ctx.session, enrollment, EnrollmentStatus.EXITED, reason)
            ctx.result.exited += 1
            return
        if enrollment.step >= len(sequence.steps):
            service.finish(ctx.session, enrollment, EnrollmentStatus.COMPLETED, None)
            ctx.result.completed += 1
            return
        step = sequence.steps[enrollment.step]
        if step.kind == "wait":
            _wait(ctx, enrollment, step)
            return
        if step.kind == "branch":
            assert step.condition is not None and step.then is not None
            holds = _holds(ctx, enrollment, step.condition)
            enrollment.step = step.then if holds else (step.otherwise or enrollment.step + 1)
            continue
        outcome = _mail(ctx, enrollment, sequence, step)
        if outcome == "held":
            return
        if outcome is not None:
            service.finish(ctx.session, enrollment, EnrollmentStatus.EXITED, outcome)
            ctx.result.exited += 1
            return
    enrollment.due_at = ctx.now  # pragma: no cover - more steps than a sequence can have


def due_query(now: dt.datetime, limit: int) -> sa.Select[tuple[Enrollment]]:
    """Runs with a step due: an index range scan on ``due_at``."""
    return (
        sa.select(Enrollment)
        .where(Enrollment.due_at <= now)
        .order_by(Enrollment.due_at, Enrollment.id)
        .limit(limit)
    )


def _claim(session: Session, now: dt.datetime, limit: int) -> list[Enrollment]:
    """The due runs this worker may work on.

    PostgreSQL: lock their leads first (``SKIP LOCKED``: a lead busy elsewhere waits for
    the next tick), then the runs, in the order a request does (a confirmation locks
    the lead, then writes runs), so a tick and a request never deadlock; two workers
    never both pass one lead's frequency cap. SQLite lets one writer in anyway.
    """
    if dialect_of(session) != "postgresql":
        return list(session.scalars(due_query(now, limit)))
    candidates = session.execute(
        due_query(now, limit).with_only_columns(Enrollment.id, Enrollment.lead_id)
    ).all()
    lead_ids = sorted({row.lead_id for row in candidates})
    locked: set[uuid.UUID] = set()
    for chunk in _chunks(lead_ids):
        locked.update(
            session.scalars(
                sa.select(Lead.id)
                .where(Lead.id.in_(chunk))
                .order_by(Lead.id)
                .with_for_update(skip_locked=True)
            )
        )
    ids = [row.id for row in candidates if row.lead_id in locked]
    due: list[Enrollment] = []
    for start in range(0, len(ids), 500):
        due.extend(
            session.scalars(
                sa.select(Enrollment)
                .where(Enrollment.id.in_(ids[start : start + 500]), Enrollment.due_at <= now)
                .order_by(Enrollment.due_at, Enrollment.id)
                .with_for_update(skip_locked=True)
            )
        )
    return due


def run(session: Session, *, limit: int = TICK_LIMIT) -> TickResult:
    """Run every due step (at most ``limit`` runs); the caller commits."""
    now = clock.now()
    due = _claim(session, now, limit)
    if not due:
        return TickResult()
    ctx = _Context(session, now, due)
    with session.no_autoflush:
        for enrollment in due:
            if enrollment.status == EnrollmentStatus.ACTIVE:
                _advance(ctx, enrollment)
    session.flush()  # every send of the tick in one batch: their ids go into links
    queued = []
    with session.no_autoflush:  # the tick's outbox rows go in one flush, not one each
        for send, lead, sequence in ctx.pending:
            row = mails.queue_send(
                session, send, lead=lead, attributes=ctx.attributes(lead), sequence=sequence
            )
            queued.append((send, row))
    session.flush()
    for send, row in queued:
        send.outbox_id = row.id
    session.flush()
    return ctx.result
