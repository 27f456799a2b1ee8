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
hundred submissions costs a handful of statements. On SQLite the commit holds the
database's one write lock, which capture's requests queue for (issue 13.3): the
statements are built once, and a set of leads is one parameter (a JSON array through
``json_each``; PostgreSQL an array: ``admin.rollup_facts``), so no id is coerced,
rendered and bound one by one while the lock is held. Leads are marked by the signals
of the packages below (a lead created, a submission stored, a stage change, an
erasure) and by any flush that writes a scoring state or a handoff, so a new write
path is covered as long as it goes through the session.

``leadvault dashboard rebuild`` (and migration 0021) write everything afresh; the
aggregates count days in the zone they were built in (``report_state``): the
dashboard uses them only while that is the instance's zone.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from admin import rollup_facts
from admin.models import ReportDay, ReportLead, ReportRejection, ReportState, ReportStep
from admin.rollup_facts import LeadFacts
from leadvault import batch, clock
from leadvault.db import dialect_of
from leadvault.models import Lead
from scoring.models import Handoff, LeadScore, StageChange

_LEADS = ReportLead.__table__
_STEPS = ReportStep.__table__
_DIRTY = "rollup.dirty"  # session.info: ids of leads whose aggregates are to be settled
# session.info: (its transaction, the leads it created and did not settle yet): such a
# lead has added nothing yet, so settling it reads and deletes nothing.
_CREATED = "rollup.created"
CHUNK = 500
_as_int = attrgetter("int")


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
        ids = sorted(dirty, key=_as_int)  # UUIDs' order, without UUID.__lt__ per comparison
        for start in range(0, len(ids), CHUNK):
            _refresh(session, ids[start : start + CHUNK], zone)


def forget(session: Session, lead_id: uuid.UUID) -> None:
    """Take back what an erased lead added (its rows go with it)."""
    dirty = session.info.get(_DIRTY)
    if dirty is not None:
        dirty.discard(lead_id)
    zone = _zone(session)
    if zone is not None:
        _apply(
            session,
            {lead_id: rollup_facts.stored(session, [lead_id]).get(lead_id)},
            {lead_id: None},
        )


def _zone(session: Session) -> ZoneInfo | None:
    name = session.connection().scalar(_ZONE)
    return ZoneInfo(name) if name else None


_STATE = ReportState.__table__
_ZONE = sa.select(_STATE.c.time_zone).where(_STATE.c.id == 1)


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
    now = rollup_facts.facts(session, ids, zone)  # an erased lead is missing: it adds nothing now
    before = rollup_facts.stored(session, known) if known else {}
    # Each lead whose facts changed takes back what it added and adds what it adds now.
    same = {i for i, facts in before.items() if now.get(i) == facts}
    after = {i: facts for i, facts in now.items() if i not in same} if same else now
    taken_back = {i: facts for i, facts in before.items() if i not in same}
    if after or taken_back:
        # Rows to replace: those of the known leads (the created ones have none).
        replaced = [i for i in {*after, *taken_back} if i not in created] if known else []
        _apply(session, taken_back, after, added=replaced)
    created.difference_update(ids)  # settled: from now on they have added their part


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
        dialect = dialect_of(session)
        statements = rollup_facts.Statements.of(dialect)
        params = rollup_facts.parameters(ids, dialect)
        connection = session.connection()
        connection.execute(statements.delete_steps, params)
        connection.execute(statements.delete_leads, params)
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
    sums = tuple(name for name in rows[0] if name not in keys)
    upsert = _upsert(dialect_of(session), model.__table__, tuple(keys), sums)
    session.connection().execute(upsert, rows)


@functools.cache
def _upsert(dialect: str, table: sa.Table, keys: tuple[str, ...], sums: tuple[str, ...]) -> Any:
    """:func:`_add`'s statement, built once."""
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return insert.on_conflict_do_update(
        index_elements=list(keys), set_={n: table.c[n] + insert.excluded[n] for n in sums}
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
        _apply(session, {}, dict(rollup_facts.facts(session, ids, zone)))
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
