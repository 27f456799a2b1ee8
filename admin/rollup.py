"""The dashboard's daily aggregates: kept in the transaction of every change, read in a few
index range scans however many leads there are (``admin.rollup_reports``).

What a lead adds (its local creation day, first form, first UTM source, suspect flag,
the funnel stages it entered, sales' reject reasons, the time each funnel step took) is
stored per lead in ``report_leads`` / ``report_steps``; ``report_days`` and
``report_rejections`` hold the sums. A change of a lead takes back what it added and
adds what it adds now, so the sums stay exactly what :mod:`admin.reports` computes
from the source tables (tests/test_rollup.py compares the two).

Which leads changed is collected during the transaction and settled just before it
commits (``before_commit``), once per transaction and in bulk: a worker's batch of a
hundred submissions costs a handful of statements. Leads are marked by the signals
of the packages below (a lead created, a submission stored, a stage change, an
erasure) and by any flush that writes a scoring state or a handoff, so a new write
path is covered as long as it goes through the session.

``leadvault dashboard rebuild`` (and migration 0021) write everything afresh; the
aggregates count days in the zone they were built in (``report_state``): the
dashboard uses them only while that is the instance's zone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import uuid
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from admin import reports
from admin.models import ReportDay, ReportLead, ReportRejection, ReportState, ReportStep
from leadvault import batch, clock
from leadvault.db import dialect_of
from leadvault.models import Lead
from scoring.models import Handoff, HandoffStatus, LeadScore, Stage, StageChange

_LEADS = ReportLead.__table__
_STEPS = ReportStep.__table__
_DIRTY = "rollup.dirty"  # session.info: ids of leads whose aggregates are to be settled
# session.info: (its transaction, the leads it created and did not settle yet): such a
# lead has added nothing yet, so settling it reads and deletes nothing.
_CREATED = "rollup.created"
CHUNK = 500
STEPS = tuple(str(s) for s in reports.FUNNEL[1:])  # mql, sal, sql, won
NONE = reports.NONE_LABEL


@dataclasses.dataclass(frozen=True)
class LeadFacts:
    """What one lead adds to the aggregates."""

    day: dt.date
    form: str
    source: str
    suspect: bool
    reached: frozenset[str]
    rejected: frozenset[str]
    steps: tuple[tuple[str, float], ...]  # (stage, seconds from the stage before)

    def day_key(self) -> tuple[dt.date, str, str]:
        return (self.day, self.form, self.source)

    def day_values(self) -> tuple[int, int, int, int]:
        return (1, int(self.suspect), int("mql" in self.reached), int("sal" in self.reached))


# --- marking and settling -------------------------------------------------------------


def mark(session: Session, lead_ids: Iterable[uuid.UUID]) -> None:
    """The aggregates of these leads are settled before the transaction commits."""
    session.info.setdefault(_DIRTY, set()).update(lead_ids)


def _created(session: Session) -> set[uuid.UUID]:
    """The leads this transaction created (``lead_created``) and has not settled."""
    transaction = session.get_transaction()
    held = session.info.get(_CREATED)
    if held is None or transaction is None or held[0]() is not transaction:
        if transaction is None:
            return set()
        held = session.info[_CREATED] = (weakref.ref(transaction), set())
    created: set[uuid.UUID] = held[1]
    return created


def settle(session: Session) -> None:
    """Bring the marked leads' aggregates up to date (``before_commit``)."""
    if session.in_nested_transaction():
        # SQLAlchemy calls the hook on releasing a savepoint too: the leads stay marked and
        # are settled, with the rest, when the transaction commits (an import or an
        # isolated worker batch has a savepoint per line: settling each cost ten statements).
        # A lead marked in a savepoint rolled back later is settled from what is there then.
        return
    # The commit flushes after this hook: flush first, so its changes are marked too.
    session.flush()
    while session.info.get(_DIRTY):
        dirty: set[uuid.UUID] = session.info.pop(_DIRTY)
        zone = _zone(session)
        if zone is None:  # never built: nothing to keep up to date
            return
        ids = sorted(dirty)
        for start in range(0, len(ids), CHUNK):
            _refresh(session, ids[start : start + CHUNK], zone)


def forget(session: Session, lead_id: uuid.UUID) -> None:
    """Take back what an erased lead added (its rows go with it)."""
    dirty = session.info.get(_DIRTY)
    if dirty is not None:
        dirty.discard(lead_id)
    zone = _zone(session)
    if zone is not None:
        _apply(session, {lead_id: _stored(session, [lead_id]).get(lead_id)}, {lead_id: None})


def _zone(session: Session) -> ZoneInfo | None:
    name = session.scalar(sa.select(ReportState.time_zone).where(ReportState.id == 1))
    return ZoneInfo(name) if name else None


def _refresh(session: Session, ids: list[uuid.UUID], zone: ZoneInfo) -> None:
    created = _created(session)
    # A lead this transaction created has added nothing yet, and no other transaction
    # sees it (a worker's batch: every lead, mostly).
    known = [i for i in ids if i not in created]
    if known and dialect_of(session) == "postgresql":
        # One settling per lead at a time: what it added is read and changed under the lock.
        session.execute(
            sa.select(Lead.id).where(Lead.id.in_(known)).order_by(Lead.id).with_for_update()
        )
    now = _facts(session, ids, zone)
    before = _stored(session, known) if known else {}
    changed = [i for i in ids if before.get(i) != now.get(i)]
    if changed:
        _apply(
            session,
            {i: before.get(i) for i in changed},
            {i: now.get(i) for i in changed},
            added=[i for i in changed if i not in created],
        )
    created.difference_update(ids)  # settled: from now on they have added their part


def _facts(session: Session, ids: list[uuid.UUID], zone: ZoneInfo) -> dict[uuid.UUID, LeadFacts]:
    """What the leads add now, from the source tables (erased leads are missing)."""
    entered: dict[uuid.UUID, dict[str, dt.datetime]] = defaultdict(dict)
    for lead_id, stage, at in session.execute(
        sa.select(StageChange.lead_id, StageChange.to_stage, StageChange.at).where(
            StageChange.lead_id.in_(ids), StageChange.to_stage.in_(STEPS)
        )
    ):
        first = entered[lead_id].get(stage)
        entered[lead_id][stage] = at if first is None else min(first, at)
    rejected: dict[uuid.UUID, set[str]] = defaultdict(set)
    for lead_id, reason in session.execute(
        sa.select(Handoff.lead_id, Handoff.reject_reason).where(
            Handoff.lead_id.in_(ids),
            Handoff.status == HandoffStatus.REJECTED.value,
            Handoff.reject_reason.is_not(None),
        )
    ):
        rejected[lead_id].add(reason)
    facts = {}
    for lead_id, created, form, source, suspect in session.execute(
        sa.select(
            Lead.id, Lead.created_at, LeadScore.first_form, LeadScore.utm_source, LeadScore.suspect
        )
        .outerjoin(LeadScore, LeadScore.lead_id == Lead.id)
        .where(Lead.id.in_(ids))
    ):
        times = {str(Stage.NEW): created, **entered.get(lead_id, {})}
        steps = tuple(
            (after, (times[after] - times[before]).total_seconds())
            for before, after in itertools.pairwise((str(Stage.NEW), *STEPS))
            if before in times and after in times
        )
        facts[lead_id] = LeadFacts(
            day=created.astimezone(zone).date(),
            form=form or NONE,
            source=source or NONE,
            suspect=bool(suspect),
            reached=frozenset(entered.get(lead_id, {})),
            rejected=frozenset(rejected.get(lead_id, ())),
            steps=steps,
        )
    return facts


def _stored(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, LeadFacts]:
    """What the leads added when last settled."""
    steps: dict[uuid.UUID, list[tuple[str, float]]] = defaultdict(list)
    for lead_id, stage, seconds in session.execute(
        sa.select(ReportStep.lead_id, ReportStep.stage, ReportStep.seconds).where(
            ReportStep.lead_id.in_(ids)
        )
    ):
        steps[lead_id].append((stage, seconds))
    order = {stage: i for i, stage in enumerate(STEPS)}
    return {
        row.lead_id: LeadFacts(
            day=row.day,
            form=row.form,
            source=row.source,
            suspect=row.suspect,
            reached=_set(row.reached),
            rejected=_set(row.rejected),
            steps=tuple(sorted(steps.get(row.lead_id, ()), key=lambda s: order[s[0]])),
        )
        for row in session.execute(
            sa.select(ReportLead).where(ReportLead.lead_id.in_(ids))
        ).scalars()
    }


def _set(text: str) -> frozenset[str]:
    return frozenset(text.split(",")) if text else frozenset()


def _apply(
    session: Session,
    before: dict[uuid.UUID, LeadFacts | None],
    after: dict[uuid.UUID, LeadFacts | None],
    *,
    added: list[uuid.UUID] | None = None,
) -> None:
    """Replace each lead's ``before`` by its ``after`` (None: nothing) in every table.
    ``added``: the leads that may have rows to replace (default: all)."""
    days: dict[tuple[dt.date, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    rejections: Counter[tuple[dt.date, str, str]] = Counter()
    for facts, sign in [(f, -1) for f in before.values()] + [(f, 1) for f in after.values()]:
        if facts is None:
            continue
        totals = days[facts.day_key()]
        for i, value in enumerate(facts.day_values()):
            totals[i] += sign * value
        for reason in facts.rejected:
            rejections[(facts.day, facts.source, reason)] += sign
    ids = list(after) if added is None else added
    if ids:
        session.execute(sa.delete(ReportStep).where(ReportStep.lead_id.in_(ids)))
        session.execute(sa.delete(ReportLead).where(ReportLead.lead_id.in_(ids)))
    rows = [(i, f) for i, f in after.items() if f is not None]
    if rows:
        # Core rows in one bulk write (no ORM bulk insert: a batch of new leads' hundred).
        batch.write_rows(
            session,
            _LEADS,
            [
                {
                    "lead_id": i,
                    "day": f.day,
                    "form": f.form,
                    "source": f.source,
                    "suspect": f.suspect,
                    "reached": ",".join(sorted(f.reached)),
                    "rejected": ",".join(sorted(f.rejected)),
                }
                for i, f in rows
            ],
        )
    step_rows = [
        {"lead_id": i, "stage": stage, "day": f.day, "seconds": seconds}
        for i, f in rows
        for stage, seconds in f.steps
    ]
    batch.write_rows(session, _STEPS, step_rows)
    _add(
        session,
        ReportDay,
        ["day", "form", "source"],
        [
            {"day": k[0], "form": k[1], "source": k[2], **dict(zip(_DAY_SUMS, v, strict=True))}
            for k, v in sorted(days.items())
            if any(v)
        ],
    )
    _add(
        session,
        ReportRejection,
        ["day", "source", "reason"],
        [
            {"day": k[0], "source": k[1], "reason": k[2], "leads": n}
            for k, n in sorted(rejections.items())
            if n
        ],
    )


_DAY_SUMS = ("leads", "suspect", "mql", "sal")


def _add(session: Session, model: Any, keys: list[str], rows: list[dict[str, Any]]) -> None:
    """Add ``rows``' numbers to the rows with the same keys, inserting the missing ones
    (one upsert; in key order, so concurrent transactions lock rows in the same order)."""
    if not rows:
        return
    insert = (postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert)(
        model.__table__
    )
    sums = [name for name in rows[0] if name not in keys]
    table = model.__table__
    session.execute(
        insert.on_conflict_do_update(
            index_elements=keys, set_={n: table.c[n] + insert.excluded[n] for n in sums}
        ),
        rows,
    )


# --- building from scratch -----------------------------------------------------------------


def rebuild(
    session: Session, zone: ZoneInfo, *, progress: Callable[[int], None] | None = None
) -> int:
    """Write the aggregates afresh from every lead, their days counted in ``zone``;
    returns the number of leads. ``progress`` is told how many leads each chunk had."""
    for model in (ReportStep, ReportLead, ReportDay, ReportRejection, ReportState):
        session.execute(sa.delete(model))
    session.execute(sa.insert(ReportState).values(id=1, time_zone=zone.key, built_at=clock.now()))
    session.info.pop(_DIRTY, None)
    session.info.pop(_CREATED, None)  # every lead's rows are written below
    count = 0
    last: uuid.UUID | None = None
    while True:
        query = sa.select(Lead.id).order_by(Lead.id).limit(CHUNK)
        if last is not None:
            query = query.where(Lead.id > last)
        ids = list(session.scalars(query))
        if not ids:
            return count
        _apply(session, {}, dict(_facts(session, ids, zone)))
        count += len(ids)
        last = ids[-1]
        if progress is not None:
            progress(len(ids))


# --- wiring ------------------------------------------------------------------------------------

# A flush that writes one of these marks the lead; for a scoring state only when a
# column the aggregates read changed (a new score alone does not move them).
_STATE_COLUMNS = ("first_form", "utm_source", "suspect", "stage")


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    touched = []
    for obj in session.new:
        if isinstance(obj, LeadScore | Handoff | StageChange):
            touched.append(obj.lead_id)
    for obj in session.dirty:
        if isinstance(obj, Handoff):
            touched.append(obj.lead_id)
        elif isinstance(obj, LeadScore):
            attrs = sa.inspect(obj).attrs
            if any(attrs[name].history.has_changes() for name in _STATE_COLUMNS):
                touched.append(obj.lead_id)
    if touched:
        mark(session, touched)


def _on_lead(session: Session, *, lead_id: uuid.UUID, **_: Any) -> None:
    mark(session, [lead_id])


def _on_created(session: Session, *, lead_id: uuid.UUID, **_: Any) -> None:
    mark(session, [lead_id])
    _created(session).add(lead_id)


def _on_erasing(session: Session, *, lead_id: uuid.UUID, **_: Any) -> None:
    forget(session, lead_id)


def init_app(app: Any) -> None:
    """Connect the signals and the session events (once per process)."""
    from capture.signals import form_submitted
    from leadvault.signals import lead_created, lead_erasing
    from scoring.signals import stage_changed

    for signal in (form_submitted, stage_changed):
        signal.connect(_on_lead)
    lead_created.connect(_on_created)
    lead_erasing.connect(_on_erasing)
    for name, handler in (("before_flush", _before_flush), ("before_commit", settle)):
        if not sa.event.contains(Session, name, handler):
            sa.event.listen(Session, name, handler)
